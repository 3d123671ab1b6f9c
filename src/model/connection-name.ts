// The name behind a connection's remote address and its root domain, worked
// out once per connection by the enrich stage (enrich/connection-names.ts)
// and set on the event (ConnectionEvent.name). Detection, the sightings rules
// and the daemon's bucket hold read it instead of asking a DNS cache and
// working out the root domain each.
import type { RootDomainPolicy } from './baseline.js';
import type { RootDomainResolver, RootDomainResult } from './root-domain.js';

export interface ConnectionName {
  /**
   * The record's own remote hostname unless it is absent, empty or `-`;
   * otherwise the latest DNS answer of the host for the remote address that
   * is still valid at the connection's time; null when there is neither.
   */
  readonly hostname: string | null;
  /**
   * The root domain of `hostname` (with the hostname normalised) under
   * `allowPrivateDomains` and the configured internal domains, or why it has
   * none; null when there is no hostname to work it out from (null, empty or `-`).
   */
  readonly root: RootDomainResult | null;
  /** The root-domain policy `root` was worked out under (the baseline's). */
  readonly allowPrivateDomains: boolean;
}

/** Whether a hostname names something: not null, empty or `-` (the placeholder some logs write). */
export function isHostname(hostname: string | null): hostname is string {
  return hostname !== null && hostname !== '' && hostname !== '-';
}

/**
 * The root domain of a named connection under `policy`: the one the enrich
 * stage worked out when it was under the same policy, else worked out again
 * with `resolve` (a reader whose policy is not the baseline's). Null without
 * a hostname.
 */
export function rootDomainUnder(
  name: ConnectionName,
  policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>,
  resolve: RootDomainResolver,
): RootDomainResult | null {
  if (name.root === null || name.allowPrivateDomains === policy.allowPrivateDomains) return name.root;
  return resolve(name.hostname as string, policy);
}
