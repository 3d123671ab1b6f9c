// What both server stores (SQLite and PostgreSQL) read out of their rows the same way: the
// tables share column names, so a row means one thing whichever database answered it, and
// enrolment is judged from the same facts (security-rules.ts decides).
import { secretHash } from '../common/secrets.js';
import type { EnrolFacts } from './security-rules.js';
import type { HostRow, TokenRow } from './store.js';

export type Row = Record<string, unknown>;

/** Hosts with their org's name; each store adds its WHERE. */
export const HOST_SELECT = 'SELECT host.*, org.name AS org FROM host JOIN org ON org.id = host.org_id';

/** A token's public name: the start of its sha256, enough to list and revoke it by, useless to enrol with. */
export function tokenIdOf(hash: Buffer): string {
  return hash.subarray(0, 6).toString('hex');
}

export function hostFrom(r: Row): HostRow {
  return {
    ref: r.id as number,
    orgId: r.org_id as number,
    org: r.org as string,
    hostId: r.host_id as string,
    name: (r.name as string | null) ?? null,
    enrolledMs: r.enrolled_ms as number,
    revokedMs: (r.revoked_ms as number | null) ?? null,
    lastSeenMs: (r.last_seen_ms as number | null) ?? null,
    credentialIssuedMs: r.cred_issued_ms as number,
    uploadDays: r.upload_days as number,
    lastUploadDay: (r.last_upload_day as number | null) ?? null,
    tokenId: r.token_hash === null || r.token_hash === undefined ? null : tokenIdOf(r.token_hash as Buffer),
  };
}

/** A token row with its org's name and the count of hosts it admitted (column `hosts`). */
export function tokenFrom(r: Row): TokenRow {
  return {
    id: tokenIdOf(r.hash as Buffer),
    org: r.org as string,
    createdMs: r.created_ms as number,
    revokedMs: (r.revoked_ms as number | null) ?? null,
    maxHosts: r.max_hosts as number,
    hostsAdmitted: r.hosts as number,
  };
}

/**
 * The facts an enrolment is judged on, from the token's row and the host's row (when the host id
 * is enrolled already): the credential offered as proof matches the current one, or the previous
 * one while its overlap lasts.
 */
export function enrolmentFacts(token: Row | undefined, existing: Row | undefined, proof: string | null, nowMs: number): EnrolFacts {
  let proofMatches = false;
  if (existing !== undefined && proof !== null) {
    const p = secretHash(proof);
    proofMatches =
      p.equals(existing.cred_hash as Buffer) ||
      (existing.prev_cred_hash !== null &&
        p.equals(existing.prev_cred_hash as Buffer) &&
        nowMs < ((existing.prev_cred_until_ms as number | null) ?? 0));
  }
  return {
    token: token === undefined ? null : tokenFrom(token),
    host:
      existing === undefined
        ? null
        : {
            revokedMs: (existing.revoked_ms as number | null) ?? null,
            proofMatches,
            reenrolAllowedUntilMs: (existing.reenrol_until_ms as number | null) ?? null,
          },
    nowMs,
  };
}

/** A bounded id cache in front of a dictionary table: cleared when full rather than grown without end. */
export class IdCache<K> {
  private map = new Map<K, number>();
  constructor(private readonly maxEntries: number) {}
  get(k: K): number | undefined {
    return this.map.get(k);
  }
  set(k: K, id: number): void {
    if (this.map.size >= this.maxEntries) this.map = new Map();
    this.map.set(k, id);
  }
  clear(): void {
    this.map = new Map();
  }
}
