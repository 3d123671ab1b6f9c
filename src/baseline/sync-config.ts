// The `sync:` section: how an endpoint talks to the baseline server. Every
// default is here; SYNC_SPEC is its shape for the one config validator.
// No serverUrl = standalone: the endpoint learns a baseline from its own sightings.
import type { Spec } from '../config/schema.js';

export interface SyncConfig {
  /** Base URL of the baseline server, e.g. https://baseline.example.org:8787; null = standalone. */
  serverUrl: string | null;
  /** The org enrolment token (from `rarecon server enroll`), from this environment variable ... */
  enrolTokenEnv: string | null;
  /** ... or from this file. Used once: the per-host credential it buys is kept in the state folder. */
  enrolTokenFile: string | null;
  /** The server's public key as printed by `rarecon server` (`ed25519:...`) or a PEM; pinned. */
  serverPublicKey: string | null;
  serverPublicKeyFile: string | null;
  /** `buckets`: fetch only the sha256 prefixes this host has seen (large baselines); `snapshot`: the whole file. */
  mode: 'buckets' | 'snapshot';
  /** node-cron expression of the sync (baseline down, sightings up). */
  syncCron: string;
  /** Each scheduled sync waits a random 0..jitterMs first, so a fleet does not arrive at once. */
  jitterMs: number;
  /** After a failed sync: retry after a random wait up to initialMs * 2^(failures-1), capped at maxMs. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
  /** A download larger than this is cut and refused. */
  maxDownloadBytes: number;
  /** PEM CA bundle for an HTTPS server; null = the system's. */
  caFile: string | null;
  /** Name to check the server certificate against, when not the URL's host. */
  serverName: string | null;
  /** Events held while their bucket is on its way. */
  pendingMaxEvents: number;
  /** A held event is scored as not common after this long without its bucket. */
  pendingTimeoutMs: number;
  /** Buckets not used for this long are dropped from the cache at a sync. */
  bucketIdleMs: number;
  /** Wait this long to gather missing buckets into one request. */
  bucketFetchLingerMs: number;
  /** Standalone: days of own sightings learnt from (the training period). */
  standaloneWindowDays: number;
  /** Days of own sightings kept on disk. */
  sightingsRetentionDays: number;
}

export const DEFAULT_SYNC: SyncConfig = {
  serverUrl: null,
  enrolTokenEnv: null,
  enrolTokenFile: null,
  serverPublicKey: null,
  serverPublicKeyFile: null,
  mode: 'buckets',
  syncCron: '7 */4 * * *',
  jitterMs: 30 * 60_000,
  backoffInitialMs: 30_000,
  backoffMaxMs: 60 * 60_000,
  requestTimeoutMs: 60_000,
  maxDownloadBytes: 2 * 1024 * 1024 * 1024,
  caFile: null,
  serverName: null,
  pendingMaxEvents: 10_000,
  pendingTimeoutMs: 10 * 60_000,
  bucketIdleMs: 45 * 86_400_000,
  bucketFetchLingerMs: 200,
  standaloneWindowDays: 30,
  sightingsRetentionDays: 35,
};

const count = (min = 0, max?: number): Spec =>
  max === undefined ? { kind: 'number', integer: true, min } : { kind: 'number', integer: true, min, max };
const nullable: Spec = { kind: 'string', nullable: true };

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
