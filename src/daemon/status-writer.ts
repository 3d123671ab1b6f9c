// The daemon's status built from the stats of its parts, and written to
// <state>/status.json so that a full disk does not silence it.
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { replaceFile } from '../common/private-files.js';
import type { BaselineCacheStats } from '../baseline/store.js';
import type { CacheStats } from '../common/bounded-cache.js';
import type { ConnectionEnricherStats } from '../enrich/connection-enricher.js';
import type { ReportStats } from '../report/reporter.js';
import type { LiveSourceStats } from '../sources/source.js';
import type { SyncStatus } from '../sync/status.js';
import type { PipelineStats } from './pipeline.js';
import type { StateHealth, StateHealthStats } from './state-health.js';
import type { CacheCounts, DaemonStatus } from './status.js';
import type { WatchdogStats } from './watchdog.js';

/** Everything the status is made of, read from the running parts at one moment. */
export interface StatusInputs extends PipelineStats {
  startedMs: number;
  host: string;
  baselinePath: string | null;
  source: LiveSourceStats | null;
  reloadsTotal: number;
  alertsLast24h: number;
  report: ReportStats;
  sync: SyncStatus | null;
  watchdog: WatchdogStats;
  stateDir: StateHealthStats;
}

export function buildStatus(i: StatusInputs, nowMs: number): DaemonStatus {
  const meta = i.baseline;
  const c = i.counters;
  return {
    pid: process.pid,
    startedMs: i.startedMs,
    updatedMs: nowMs,
    host: i.host,
    source: i.source,
    queue: i.queue,
    counters: {
      alertsTotal: c.alertsTotal,
      heldTotal: c.heldTotal,
      heldExpiredTotal: c.heldExpiredTotal,
      selfSkippedTotal: c.selfSkippedTotal,
      scoredTotal: c.scoredTotal,
      reloadsTotal: i.reloadsTotal,
      stateWriteFailedTotal: c.stateWriteFailedTotal,
      valveCountedTotal: c.valveCountedTotal,
    },
    score: i.score,
    enrich: i.enrich,
    learningDaysLeft: i.learningDaysLeft,
    baseline:
      meta.version === 0
        ? null
        : {
            version: meta.version,
            builtAtMs: meta.builtAtMs,
            ageMs: nowMs - meta.builtAtMs,
            unit: meta.observerUnit,
            windowStartMs: meta.windowStartMs,
            windowEndMs: meta.windowEndMs,
            path: i.baselinePath,
          },
    alertsLast24h: i.alertsLast24h,
    lastAlertMs: i.lastAlertMs,
    report: i.report,
    sync: i.sync,
    ...memory(),
    cpu: process.cpuUsage(),
    watchdog: i.watchdog,
    stateDir: i.stateDir,
    caches: caches(i.dns, i.enrich, i.baselineCache),
  };
}

/** Resident memory, and the V8 heap against the buffers outside it: where the memory of a storm sits. */
function memory(): Pick<DaemonStatus, 'rssBytes' | 'memory'> {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    memory: { heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers },
  };
}

function caches(dns: CacheCounts, e: ConnectionEnricherStats, b: BaselineCacheStats | null): Record<string, CacheCounts> {
  const out: Record<string, CacheCounts> = {
    dns,
    image_hash: counts(e.hash.cache),
    signer: counts(e.signer.cache),
    injection_maps: counts(e.injection.mapsCache),
  };
  if (b !== null) {
    out['baseline_process'] = { hitsTotal: b.processHits, missesTotal: b.processMisses };
    out['baseline_combo'] = { hitsTotal: b.comboHits, missesTotal: b.comboMisses };
  }
  return out;
}

function counts(c: CacheStats): CacheCounts {
  return { hitsTotal: c.hitsTotal, missesTotal: c.missesTotal };
}

/**
 * Writes the status file (0600, through an exclusive temp file of a random
 * name, so a planted link cannot redirect it); a failure is told to `health`,
 * and the file is then rewritten in place if it can be.
 */
export function writeStatusFile(file: string, status: DaemonStatus, health: StateHealth): void {
  const text = JSON.stringify(status, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
  // Padded to whole 4 KiB pages plus one (JSON allows trailing spaces), so on a full disk the
  // file can still be rewritten in place in the blocks it already holds.
  const padded = text.padEnd((Math.ceil(text.length / 4096) + 1) * 4096, ' ');
  try {
    replaceFile(file, padded);
    health.ok('status');
  } catch (err) {
    health.failed('status', err);
    try {
      const fd = openSync(file, constants.O_RDWR | constants.O_NOFOLLOW);
      try {
        // Within the size it has: no new block is needed.
        const size = fstatSync(fd).size;
        if (text.length <= size) {
          writeSync(fd, text.padEnd(size, ' '), 0);
        }
      } finally {
        closeSync(fd);
      }
    } catch {
      // Counted and logged above; the metrics endpoint still tells.
    }
  }
}
