// The measuring side of bench/score.ts, in a process of its own so its peak
// RSS (VmHWM) is the scorer's alone. Prints one JSON line of figures.
// Scoring runs as `rarecon score` does: reader batches of 256 records, one
// baseline read transaction each, no state kept, finish() timed.
import { readFileSync } from 'node:fs';
import { openBaseline, type SqliteBaseline } from '../src/baseline/store.js';
import { DEFAULT_BASELINE_STORE, DEFAULT_DETECT } from '../src/config/defaults.js';
import { Scorer } from '../src/detect/scorer.js';
import { StateStore } from '../src/detect/state-store.js';
import { ConnectionNames } from '../src/enrich/connection-names.js';
import type { SourceRecord } from '../src/model/records.js';
import { isScannedLine, readLogFiles } from '../src/sources/replay/log-reader.js';
import { loadLineScanner, type LineScanner } from '../src/sources/replay/fast/native-scan.js';
import { scoreRecord, scoreScannedLine } from '../src/cli/score.js';

export interface ScoreFigures {
  events: number;
  /** How lines were read end to end: the native line scanner, or JavaScript and why. */
  reader: string;
  endToEndPerSec: number;
  /** End to end with every line parsed in JavaScript (`rarecon score --js-reader`). */
  endToEndJsPerSec: number;
  /** Events per second of the process's own CPU time (user + system): steadier on a shared machine. */
  endToEndPerCpuSec: number;
  /** Reading and parsing alone (no scoring), same file. */
  readOnlyPerSec: number;
  scoringOnlyPerSec: number;
  /** Baseline lookups per second of scoring time (share of the scoring pass). */
  lookupsPerSec: number;
  /** The scoring pass's lookups replayed alone against a fresh store. */
  lookupOnlyPerSec: number;
  /** Scoring the same records again with a new scorer on the same store: its caches already hold the answers. */
  warmScoringPerSec: number;
  /** SQLite reads of the end-to-end pass (lookups no cache answered: about one per distinct sha256 and combo). */
  sqliteReads: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  alerts: number;
  /** Peak RSS after the end-to-end pass (what `rarecon score` needs). */
  endToEndPeakRssMiB: number | null;
  /** Peak RSS of the whole process, including the scoring pass's pre-parsed records. */
  peakRssMiB: number | null;
}

const BATCH_RECORDS = 256;

function vmHwmMiB(): number | null {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m === null ? null : Number(m[1]) / 1024;
}

interface Lookups {
  shas: string[];
  roots: (string | null)[];
  ports: number[];
}

function scorer(
  baselinePath: string,
  record: Lookups | null,
): { s: Scorer; names: ConnectionNames; baseline: SqliteBaseline; close: () => void; lookups: () => number } {
  const b = openBaseline(baselinePath, DEFAULT_BASELINE_STORE);
  if (!b.ok) throw new Error(b.error);
  const state = StateStore.open(null);
  let n = 0;
  const note = (sha: string, root: string | null, port: number): void => {
    n++;
    if (record === null) return;
    record.shas.push(sha);
    record.roots.push(root);
    record.ports.push(port);
  };
  const counted = {
    process: (sha: string) => {
      note(sha, null, 0);
      return b.baseline.process(sha);
    },
    combo: (sha: string, root: string, port: number) => {
      note(sha, root, port);
      return b.baseline.combo(sha, root, port);
    },
    meta: () => b.baseline.meta(),
    // As the store offers them to the detector's per-id caches.
    uncached: {
      process: (sha: string) => {
        note(sha, null, 0);
        return b.baseline.uncached.process(sha);
      },
      combo: (sha: string, root: string, port: number) => {
        note(sha, root, port);
        return b.baseline.uncached.combo(sha, root, port);
      },
    },
  };
  // As `rarecon score` without --state: the in-memory state is thrown away, so alerts are not written to it.
  const s = new Scorer({ baseline: counted, config: DEFAULT_DETECT, state, nowMs: 0, alertWrites: 'never' });
  // The enrich stage's naming, as `rarecon score` runs it before the scorer.
  const names = new ConnectionNames(DEFAULT_DETECT, b.baseline.meta().policy);
  return { s, names, baseline: b.baseline, close: () => (state.close(), b.baseline.close()), lookups: () => n };
}

async function endToEnd(
  baselinePath: string,
  eventsPath: string,
  scanner: LineScanner | null,
): Promise<{ events: number; perSec: number; perCpuSec: number; alerts: number; sqliteReads: number }> {
  const a = scorer(baselinePath, null);
  let events = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  // As `rarecon score` reads: batches of at most 256 lines, one read transaction each.
  for await (const { items, scanned } of readLogFiles([eventsPath]).scanBatches(scanner)) {
    a.baseline.beginBatch();
    for (let j = 0; j < items.length; j++) {
      const item = items[j]!;
      if (isScannedLine(item)) scoreScannedLine(a.s, a.names, scanned!, item);
      else if (item.type === 'error') continue;
      else scoreRecord(a.s, a.names, item);
      events++;
    }
    a.baseline.endBatch();
  }
  const alerts = a.s.finish().length;
  const perSec = events / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(c0);
  const cache = a.baseline.cacheStats();
  a.close();
  return {
    events,
    perSec,
    perCpuSec: events / ((cpu.user + cpu.system) / 1e6),
    alerts,
    sqliteReads: cache.processMisses + cache.comboMisses,
  };
}

async function readOnly(eventsPath: string, scanner: LineScanner | null): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  for await (const batch of readLogFiles([eventsPath]).scanBatches(scanner)) n += batch.items.length;
  return n / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const [baselinePath, eventsPath] = process.argv.slice(2) as [string, string];
  // 1. End to end: read, parse, score, as `rarecon score` does (native line scanner when built).
  const loaded = loadLineScanner();
  const scanner = loaded.ok ? loaded.scanner : null;
  const e2e = await endToEnd(baselinePath, eventsPath, scanner);
  const endToEndPeakRssMiB = vmHwmMiB();
  const readOnlyPerSec = await readOnly(eventsPath, scanner);
  const js = await endToEnd(baselinePath, eventsPath, null);

  // 2. Scoring alone on pre-parsed records, timed one by one.
  const records: SourceRecord[] = [];
  for await (const item of readLogFiles([eventsPath])) if (item.type !== 'error') records.push(item);
  const b = scorer(baselinePath, null);
  const lat = new Float64Array(records.length);
  const t1 = performance.now();
  for (let i = 0; i < records.length; i++) {
    if (i % BATCH_RECORDS === 0) b.baseline.beginBatch();
    const s0 = process.hrtime.bigint();
    scoreRecord(b.s, b.names, records[i]!);
    lat[i] = Number(process.hrtime.bigint() - s0) / 1000;
    if (i % BATCH_RECORDS === BATCH_RECORDS - 1 || i === records.length - 1) b.baseline.endBatch();
  }
  b.s.finish();
  const secs = (performance.now() - t1) / 1000;
  const lookups = b.lookups();
  // Again with warm caches: what scoring costs once the working set has been seen.
  const state = StateStore.open(null);
  const warm = new Scorer({ baseline: b.baseline, config: DEFAULT_DETECT, state, nowMs: 0, alertWrites: 'never' });
  const tw = performance.now();
  for (let i = 0; i < records.length; i += BATCH_RECORDS) {
    b.baseline.beginBatch();
    for (let j = i; j < Math.min(records.length, i + BATCH_RECORDS); j++) warm.handle(records[j]!);
    b.baseline.endBatch();
  }
  warm.finish();
  const warmScoringPerSec = records.length / ((performance.now() - tw) / 1000);
  state.close();
  b.close();
  // The lookups the scorer makes, recorded in an untimed pass of their own.
  const recorded: Lookups = { shas: [], roots: [], ports: [] };
  const r = scorer(baselinePath, recorded);
  for (const rec of records) r.s.handle(rec);
  r.close();
  records.length = 0;

  // 3. The same lookups alone, against a fresh store (cold caches).
  const c = openBaseline(baselinePath, DEFAULT_BASELINE_STORE);
  if (!c.ok) throw new Error(c.error);
  const store = c.baseline;
  const { shas, roots, ports } = recorded;
  const t2 = performance.now();
  let sink = 0;
  for (let i = 0; i < shas.length; i++) {
    if (i % BATCH_RECORDS === 0) store.beginBatch();
    const root = roots[i]!;
    sink += root === null ? (store.process(shas[i]!) ?? 0) : store.combo(shas[i]!, root, ports[i]!);
    if (i % BATCH_RECORDS === BATCH_RECORDS - 1) store.endBatch();
  }
  store.endBatch();
  const lookupOnlyPerSec = shas.length / ((performance.now() - t2) / 1000);
  store.close();
  if (sink < 0) throw new Error('unreachable');

  lat.sort();
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!;
  const figures: ScoreFigures = {
    events: e2e.events,
    reader: loaded.ok ? 'native line scanner' : `JavaScript (native line scanner not loaded: ${loaded.reason})`,
    endToEndPerSec: e2e.perSec,
    endToEndJsPerSec: js.perSec,
    endToEndPerCpuSec: e2e.perCpuSec,
    readOnlyPerSec,
    scoringOnlyPerSec: lat.length / secs,
    lookupsPerSec: lookups / secs,
    lookupOnlyPerSec,
    warmScoringPerSec,
    sqliteReads: e2e.sqliteReads,
    p50Us: q(0.5),
    p99Us: q(0.99),
    p999Us: q(0.999),
    alerts: e2e.alerts,
    endToEndPeakRssMiB,
    peakRssMiB: vmHwmMiB(),
  };
  process.stdout.write(JSON.stringify(figures) + '\n');
}

await main();
