// What the daemon tells about itself: written to <state>/status.json every few
// seconds, read by `rarecon status` in another process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LiveSourceStats } from '../sources/source.js';
import type { ScoreCounters } from '../detect/scorer.js';
import type { ConnectionEnricherStats } from '../enrich/connection-enricher.js';
import type { ReportStats } from '../report/reporter.js';
import type { SyncStatus } from '../sync/status.js';
import type { WatchdogStats } from './watchdog.js';
import type { StateHealthStats } from './state-health.js';

export interface CacheCounts {
  hitsTotal: number;
  missesTotal: number;
}

export const STATUS_FILE = 'status.json';

export interface DaemonStatus {
  pid: number;
  startedMs: number;
  updatedMs: number;
  host: string;
  source: LiveSourceStats | null;
  queue: {
    size: number;
    capacity: number;
    droppedTotal: number;
    inFlight: number;
    /** Of droppedTotal, older connections shed to make room for newer ones of at least their value (absent in older status files). */
    shedOldestTotal?: number;
    droppedByValue?: { notCommon: number; notJudged: number; common: number };
  };
  counters: Record<string, number>;
  score: ScoreCounters;
  enrich: ConnectionEnricherStats;
  learningDaysLeft: number;
  baseline: {
    version: number;
    builtAtMs: number;
    ageMs: number;
    unit: string;
    windowStartMs: number;
    windowEndMs: number;
    path: string | null;
  } | null;
  alertsLast24h: number;
  lastAlertMs: number | null;
  report: ReportStats;
  sync: SyncStatus | null;
  rssBytes: number;
  /** The V8 heap (used and reserved) and the buffers outside it (absent in older status files). */
  memory?: { heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number };
  cpu: { user: number; system: number };
  /** Absent in status files of older versions. */
  watchdog?: WatchdogStats;
  stateDir?: StateHealthStats;
  caches?: Record<string, CacheCounts>;
}

export function readStatus(stateDir: string): DaemonStatus | null {
  try {
    return JSON.parse(readFileSync(join(stateDir, STATUS_FILE), 'utf8')) as DaemonStatus;
  } catch {
    return null;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const n = (x: number): string => x.toLocaleString('en-US');
function age(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} days`;
}

/** One screen for an operator. */
export function formatStatus(s: DaemonStatus, nowMs = Date.now()): string {
  const alive = running(s.pid) && nowMs - s.updatedMs < 60_000;
  const src = s.source;
  const sc = s.score;
  const outbox = s.report.outbox;
  const lines = [
    `rarecon daemon: ${alive ? `running (pid ${s.pid}, up ${age(nowMs - s.startedMs)})` : `NOT RUNNING (last status ${age(nowMs - s.updatedMs)} ago, pid ${s.pid})`}`,
    `host:      ${s.host}`,
    `source:    ${src === null ? 'none' : `${src.name} (${src.reason})`}`,
  ];
  if (src?.misses) lines.push(`           misses: ${src.misses}`);
  if (src !== null) {
    lines.push(
      `events:    ${n(src.receivedTotal)} received, ${n(sc.connectionsTotal)} connections scored, ${n(sc.dnsAnswersTotal)} DNS answers; ` +
        `dropped ${n(src.droppedTotal + s.queue.droppedTotal)} (kernel ${n(src.kernelDropsTotal)}, queue ${n(s.queue.droppedTotal)}), decode errors ${n(src.decodeErrorsTotal)}`,
    );
    const paused = (s.counters['valveCountedTotal'] ?? 0) + sc.pausedTotal;
    if (paused > 0) lines.push(`           ${n(paused)} connections counted while the safety valve paused the detector for this host`);
  }
  lines.push(
    `detector:  ${s.learningDaysLeft > 0 ? `learning, ${s.learningDaysLeft} day${s.learningDaysLeft === 1 ? '' : 's'} left` : 'active'}; ${n(sc.eligibleTotal)} eligible`,
    `baseline:  ${s.baseline === null ? 'none yet' : `version ${s.baseline.version}, unit ${s.baseline.unit}, built ${age(nowMs - s.baseline.builtAtMs)} ago${s.baseline.path ? `, ${s.baseline.path}` : ''}`}` +
      (s.sync === null
        ? ''
        : `; sync ${s.sync.mode}${s.sync.stale ? ', STALE: no newer baseline since it was due' : ''}${s.sync.lastError ? `, last error: ${s.sync.lastError}` : ''}`),
    `alerts:    ${n(s.alertsLast24h)} in the last 24 h${s.lastAlertMs === null ? '' : `, last ${age(nowMs - s.lastAlertMs)} ago`}`,
  );
  lines.push(
    `outbox:    ${n(outbox.rows)} waiting${outbox.oldestAgeMs ? `, oldest ${age(outbox.oldestAgeMs)}` : ''}, ${n(outbox.deadLetteredTotal)} dead-lettered`,
  );
  lines.push(
    `resources: ${(s.rssBytes / 2 ** 20).toFixed(0)} MiB resident, CPU ${((s.cpu.user + s.cpu.system) / 1e6).toFixed(1)} s since start`,
  );
  const w = s.watchdog;
  if (w !== undefined) {
    const shed = Object.entries(w.shedByReason)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(', ');
    const head = !w.enabled
      ? 'off'
      : w.level === 0
        ? `within budget (CPU ${w.cpuPercent.toFixed(1)} % of ${w.budget.cpuPercent} %, ${(w.liveBytes / 2 ** 20).toFixed(0)} of ${(w.budget.memoryBytes / 2 ** 20).toFixed(0)} MiB in use)`
        : `SHEDDING level ${w.level} for ${age(nowMs - w.sinceMs)}, over ${w.overBudget ?? 'budget'} (CPU ${w.cpuPercent.toFixed(1)} % of ${w.budget.cpuPercent} %, ${(w.liveBytes / 2 ** 20).toFixed(0)} of ${(w.budget.memoryBytes / 2 ** 20).toFixed(0)} MiB in use): ${w.shedding}`;
    lines.push(`watchdog:  ${head}${shed === '' ? '' : `; shed so far: ${shed}`}`);
  }
  const sd = s.stateDir;
  if (sd !== undefined && (Object.keys(sd.failing).length > 0 || sd.heldAlerts > 0 || sd.heldSightings > 0)) {
    const failing = Object.entries(sd.failing)
      .map(([k, v]) => `${k} (${v})`)
      .join('; ');
    lines.push(
      `state:     ${sd.diskFull ? 'DISK FULL' : 'WRITES FAILING'}${failing === '' ? '' : `: ${failing}`}; holding ${n(sd.heldAlerts)} alerts and ${n(sd.heldSightings)} sightings in memory` +
        ((sd.alertsLostTotal ?? 0) > 0 ? `; ${n(sd.alertsLostTotal ?? 0)} alerts dropped at the memory bound` : ''),
    );
  }
  const caches = Object.entries(s.caches ?? {}).filter(([, c]) => c.hitsTotal + c.missesTotal > 0);
  if (caches.length > 0) {
    lines.push(
      `caches:    ${caches.map(([k, c]) => `${k} ${Math.round((100 * c.hitsTotal) / (c.hitsTotal + c.missesTotal))} %`).join(', ')} hits`,
    );
  }
  return lines.join('\n') + '\n';
}
