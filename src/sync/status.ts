// The sync status: what is in force and how syncing goes, kept in
// `<stateDir>/sync-status.json` so `rarecon status` in another process can read
// it. Counters survive a restart; what describes the baseline is read afresh.
import { readFileSync } from 'node:fs';
import { replaceFile } from '../common/private-files.js';
import { join } from 'node:path';
import { DAY_MS, type BaselineMeta } from '../model/baseline.js';
import type { BucketCacheStats } from './bucket-cache.js';
import type { Fail } from './step.js';

export const SYNC_STATUS_FILE = 'sync-status.json';

export type SyncMode = 'standalone' | 'snapshot' | 'buckets';

export interface SyncStatus {
  mode: SyncMode;
  serverUrl: string | null;
  org: string | null;
  hostId: string;
  version: number | null;
  builtAtMs: number | null;
  /** Now minus the baseline's built-at time. */
  ageMs: number | null;
  windowStartMs: number | null;
  windowEndMs: number | null;
  /**
   * When a newer baseline was due at the latest: the server's promise (its
   * next scheduled build plus grace, signed into the baseline) plus
   * sync.staleGraceMs. Null without a server baseline in force.
   */
  baselineDueMs: number | null;
  /** Past baselineDueMs with no newer baseline: the server, or something between, is holding baselines back. */
  stale: boolean;
  /** Credentials this host holds expire then (null: never, or not enrolled). */
  credentialExpiresMs: number | null;
  lastAttemptMs: number | null;
  lastSuccessMs: number | null;
  lastError: string | null;
  lastErrorCode: string | null;
  consecutiveFailures: number;
  nextAttemptMs: number | null;
  syncedTotal: number;
  failedTotal: number;
  refusedTotal: number;
  uploadedDaysTotal: number;
  uploadRejectedDaysTotal: number;
  buckets: {
    cached: number;
    pending: number;
    heldTotal: number;
    releasedTotal: number;
    expiredTotal: number;
    droppedTotal: number;
    sizeBytes: number;
  } | null;
  updatedMs: number;
}

/** What the status describes of the baseline in force, read when the status is. */
export interface StatusView {
  org: string | null;
  meta: BaselineMeta | null;
  /** sync.staleGraceMs; null in standalone mode (no server to fall behind). */
  staleGraceMs: number | null;
  credentialExpiresMs: number | null;
  /** Null outside buckets mode (the last figures then stay). */
  buckets: BucketCacheStats | null;
}

/** The last status a sync client wrote (for `rarecon status` in another process); null when none. */
export function readSyncStatus(stateDir: string): SyncStatus | null {
  try {
    return JSON.parse(readFileSync(join(stateDir, SYNC_STATUS_FILE), 'utf8')) as SyncStatus;
  } catch {
    return null;
  }
}

/** Written to a temp file and renamed, so a reader never sees half a file. Throws on a write failure. */
export function writeSyncStatus(stateDir: string, st: SyncStatus): void {
  // 0600 through an exclusive temp file (common/private-files.ts): a planted link cannot redirect it.
  replaceFile(join(stateDir, SYNC_STATUS_FILE), JSON.stringify(st, null, 2) + '\n');
}

/** A fresh status that carries on the counters and last outcome of `prev` (the file found at start). */
export function initialStatus(
  id: { mode: SyncMode; serverUrl: string | null; hostId: string },
  prev: SyncStatus | null,
  nowMs: number,
): SyncStatus {
  return {
    mode: id.mode,
    serverUrl: id.serverUrl,
    org: null,
    hostId: id.hostId,
    version: null,
    builtAtMs: null,
    ageMs: null,
    windowStartMs: null,
    windowEndMs: null,
    baselineDueMs: null,
    stale: false,
    credentialExpiresMs: null,
    lastAttemptMs: prev?.lastAttemptMs ?? null,
    lastSuccessMs: prev?.lastSuccessMs ?? null,
    lastError: prev?.lastError ?? null,
    lastErrorCode: prev?.lastErrorCode ?? null,
    consecutiveFailures: prev?.consecutiveFailures ?? 0,
    nextAttemptMs: null,
    syncedTotal: prev?.syncedTotal ?? 0,
    failedTotal: prev?.failedTotal ?? 0,
    refusedTotal: prev?.refusedTotal ?? 0,
    uploadedDaysTotal: prev?.uploadedDaysTotal ?? 0,
    uploadRejectedDaysTotal: prev?.uploadRejectedDaysTotal ?? 0,
    buckets: null,
    updatedMs: nowMs,
  };
}

export function refreshStatus(st: SyncStatus, view: StatusView, now: () => number): void {
  const meta = view.meta;
  st.org = view.org;
  st.version = meta?.version ?? null;
  st.builtAtMs = meta?.builtAtMs ?? null;
  st.ageMs = meta === null ? null : Math.max(0, now() - meta.builtAtMs);
  st.windowStartMs = meta?.windowStartMs ?? null;
  st.windowEndMs = meta?.windowEndMs ?? null;
  st.baselineDueMs = meta === null || view.staleGraceMs === null ? null : baselineDueMs(meta, view.staleGraceMs);
  st.stale = st.baselineDueMs !== null && now() > st.baselineDueMs;
  st.credentialExpiresMs = view.credentialExpiresMs;
  if (view.buckets !== null) {
    const s = view.buckets;
    st.buckets = {
      cached: s.buckets,
      pending: s.pending,
      heldTotal: s.heldTotal,
      releasedTotal: s.releasedTotal,
      expiredTotal: s.expiredTotal,
      droppedTotal: s.droppedTotal,
      sizeBytes: s.sizeBytes,
    };
  }
  st.updatedMs = now();
}

export function noteSyncSuccess(st: SyncStatus, nowMs: number): void {
  st.lastSuccessMs = nowMs;
  st.consecutiveFailures = 0;
  st.lastError = null;
  st.lastErrorCode = null;
  st.syncedTotal++;
  st.nextAttemptMs = null;
}

export function noteSyncFailure(st: SyncStatus, r: Fail): void {
  st.consecutiveFailures++;
  st.failedTotal++;
  if (r.refused === true) st.refusedTotal++;
  st.lastError = r.error;
  st.lastErrorCode = r.code;
}

/**
 * When a baseline from a server should have been replaced at the latest: the
 * time its signed metadata promises the next one, or (a baseline without the
 * promise) a day after it was built, plus the endpoint's grace.
 */
export function baselineDueMs(meta: BaselineMeta, staleGraceMs: number): number {
  return (meta.nextBuildByMs ?? meta.builtAtMs + DAY_MS) + staleGraceMs;
}
