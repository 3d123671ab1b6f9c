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
  return out;
}
