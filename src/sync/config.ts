// The `sync:` section's shape for the one config validator and the checks a
// shape cannot make (defaults: config/defaults.ts).
import { count, cronExpression, MAX_TIMER_MS, nullableString, timerMs, windowMs, type Spec } from '../config/spec.js';
import type { SyncConfig } from '../config/defaults.js';

const nullable = nullableString;

export const SYNC_SPEC: Spec = {
  kind: 'object',
  fields: {
    serverUrl: { kind: 'string', nullable: true, pattern: /^https?:\/\/[^\s/]+(\/.*)?$/, patternText: 'an http:// or https:// URL' },
    enrolTokenEnv: nullable,
    enrolTokenFile: nullable,
    serverPublicKey: nullable,
    serverPublicKeyFile: nullable,
    mode: { kind: 'string', oneOf: ['buckets', 'snapshot'] },
    syncCron: cronExpression,
    jitterMs: timerMs(0),
    backoffInitialMs: timerMs(1),
    backoffMaxMs: timerMs(1),
    // The client gives a whole request ten times this before it gives up: that deadline is a timer too.
    requestTimeoutMs: timerMs(100, Math.floor(MAX_TIMER_MS / 10), "ten times it is a request's whole deadline, and Node's longest timer"),
    maxDownloadBytes: count(1024, 2 ** 40),
    caFile: nullable,
    serverCertSha256: {
      kind: 'string',
      nullable: true,
      pattern: /^(sha256:)?[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}$/,
      patternText: 'a certificate pin as "rarecon server enroll" prints it: sha256:<64 hex digits>',
    },
    allowInsecureHttp: { kind: 'boolean' },
    staleGraceMs: count(0, 2_147_483_647),
    serverName: nullable,
    pendingMaxEvents: count(0, 100_000_000),
    pendingTimeoutMs: windowMs(0, 366),
    bucketIdleMs: windowMs(0, 3660),
    bucketFetchLingerMs: timerMs(0),
    standaloneWindowDays: count(1, 365),
    sightingsRetentionDays: count(1, 3650),
  },
};

/** What a shape check cannot see; empty when usable. */
export function syncConfigProblems(c: SyncConfig): string[] {
  const out: string[] = [];
  if (c.serverUrl === null) return out;
  if (c.serverPublicKey === null && c.serverPublicKeyFile === null) {
    out.push(
      'sync.serverPublicKey (or sync.serverPublicKeyFile) is required with sync.serverUrl: the endpoint pins the server key and refuses unsigned baselines',
    );
  }
  if (c.backoffMaxMs < c.backoffInitialMs) out.push('sync.backoffMaxMs must be at least sync.backoffInitialMs');
  const t = transportOf(c);
  if (t.kind === 'plain-remote' && !c.allowInsecureHttp)
    out.push(
      `sync.serverUrl ${c.serverUrl} is plain http:// to another host: the enrolment token, this host's credential, its sightings and alerts would cross the network readable; use https:// (the server's default), or set sync.allowInsecureHttp: true to accept that`,
    );
  if (t.kind !== 'https' && c.serverCertSha256 !== null)
    out.push('sync.serverCertSha256 pins an HTTPS certificate: it needs an https:// sync.serverUrl');
  return out;
}

/** How the endpoint reaches its server: HTTPS, plain HTTP on this host, or plain HTTP across the network. */
export type SyncTransport = { kind: 'none' } | { kind: 'https' } | { kind: 'plain-loopback' } | { kind: 'plain-remote'; host: string };

export function transportOf(c: Pick<SyncConfig, 'serverUrl'>): SyncTransport {
  if (c.serverUrl === null) return { kind: 'none' };
  let u: URL;
  try {
    u = new URL(c.serverUrl);
  } catch {
    return { kind: 'none' };
  }
  if (u.protocol === 'https:') return { kind: 'https' };
  return isLoopbackHost(u.hostname) ? { kind: 'plain-loopback' } : { kind: 'plain-remote', host: u.hostname };
}

/** localhost, 127.0.0.0/8 and ::1: traffic that never leaves this host. */
export function isLoopbackHost(hostname: string): boolean {
  // URL has already normalised the forms (127.1, 0x7f000001 -> 127.0.0.1; ::ffff:127.0.0.1 -> ::ffff:7f00:1).
  const h = hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === '::1' ||
    /^127(\.\d{1,3}){3}$/.test(h) ||
    /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h)
  );
}
