// The `sync:` section's shape for the one config validator and the checks a
// shape cannot make (defaults: config/defaults.ts).
import { count, nullableString, type Spec } from '../config/spec.js';
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
    syncCron: { kind: 'string' },
    jitterMs: count(0),
    backoffInitialMs: count(1),
    backoffMaxMs: count(1),
    requestTimeoutMs: count(100),
    maxDownloadBytes: count(1024),
    caFile: nullable,
    serverName: nullable,
    pendingMaxEvents: count(0),
    pendingTimeoutMs: count(0),
    bucketIdleMs: count(0),
    bucketFetchLingerMs: count(0),
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
  return out;
}
