// The read side of bench/baseline-store.ts, in a process of its own so that its
// peak RSS is the read path's alone (VmHWM: getrusage's maxRSS survives fork and
// exec on Linux, so a child's reads the builder's peak). Prints one JSON line.
import { readFileSync } from 'node:fs';
import { openBaseline } from '../src/baseline/store.js';
import { DEFAULT_BASELINE_STORE } from '../src/config/defaults.js';
import { comboParts, mix32, processCountFor, rootName, shaHex, type ComboParts } from './baseline-data.js';

export interface ReadFigures {
  rssAfterOpenMiB: number;
  comboColdBatchedPerSec: number;
  comboColdAutocommitPerSec: number;
  processColdBatchedPerSec: number;
  comboColdP50Us: number;
  comboColdP99Us: number;
  zipfEventsPerSec: number;
  zipfComboHitRate: number;
  zipfProcessHitRate: number;
  zipfComboP99Us: number;
  absentReadZero: boolean;
  /** Peak RSS of this process's own memory (VmHWM); null off Linux. */
  peakRssMiB: number | null;
  /** getrusage maxRSS: on Linux it keeps the peak of the parent that forked us, so it reads high. */
  maxRssMiB: number;
}

function vmHwmMiB(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m === null ? null : Number(m[1]) / 1024;
  } catch {
    return null;
  }
}

const BATCH = 256;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b_79f5) >>> 0;
    return mix32(s) / 4_294_967_296;
  };
}

/**
 * One batch of queries at a time, in reused arrays, generated outside the timed
 * loop: holding a million query strings would inflate the RSS this bench reports.
 */
class QueryBatch {
  readonly sha: string[] = new Array<string>(BATCH).fill('');
  readonly root: string[] = new Array<string>(BATCH).fill('');
  readonly port = new Int32Array(BATCH);
  private readonly parts: ComboParts = { sha: 0, root: 0, port: 0 };
  constructor(private readonly combos: number) {}

  fill(next: () => number, count: number): void {
    for (let k = 0; k < count; k++) {
      comboParts(next(), this.combos, this.parts);
      this.sha[k] = shaHex(this.parts.sha);
      this.root[k] = rootName(this.parts.root);
      this.port[k] = this.parts.port;
    }
  }
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

function run(path: string, combos: number): ReadFigures {
  const opened = openBaseline(path, DEFAULT_BASELINE_STORE);
  if (!opened.ok) throw new Error(opened.error);
  const b = opened.baseline;
  const rssAfterOpenMiB = process.memoryUsage.rss() / 1_048_576;
  const rand = rng(42);
  const uniform = (): number => Math.floor(rand() * combos);
  const q = new QueryBatch(combos);
  let sink = 0;

  /** Runs `total` combo lookups (plus process lookups when withProcess) in batches; returns lookups/s. */
  const comboRun = (next: () => number, total: number, batched: boolean, withProcess: boolean, lat?: Float64Array): number => {
    let ms = 0;
    for (let i = 0; i < total; i += BATCH) {
      const n = Math.min(BATCH, total - i);
      q.fill(next, n);
      const t = performance.now();
      if (batched) b.beginBatch();
      for (let k = 0; k < n; k++) {
        const s = q.sha[k] as string;
        if (withProcess) sink += b.process(s) ?? 0;
        if (lat === undefined) {
          sink += b.combo(s, q.root[k] as string, q.port[k] as number);
        } else {
          const t0 = performance.now();
          sink += b.combo(s, q.root[k] as string, q.port[k] as number);
          lat[i + k] = (performance.now() - t0) * 1000;
        }
      }
      if (batched) b.endBatch();
      ms += performance.now() - t;
    }
    return total / (ms / 1000);
  };

  // Cold: uniform random combos over the whole file, so nearly every lookup misses the caches.
  const comboColdBatchedPerSec = comboRun(uniform, 200_000, true, false);
  const lat = new Float64Array(100_000);
  comboRun(uniform, lat.length, true, false, lat);
  lat.sort();
  const comboColdAutocommitPerSec = comboRun(uniform, 50_000, false, false);

  const shas = processCountFor(combos);
  let ms = 0;
  for (let i = 0; i < 100_000; i += BATCH) {
    for (let k = 0; k < BATCH; k++) q.sha[k] = shaHex(Math.floor(rand() * shas));
    const t = performance.now();
    b.beginBatch();
    for (let k = 0; k < BATCH; k++) sink += b.process(q.sha[k] as string) ?? 0;
    b.endBatch();
    ms += performance.now() - t;
  }
  const processColdBatchedPerSec = (Math.ceil(100_000 / BATCH) * BATCH) / (ms / 1000);

  // Zipf (s = 1) over all combos: rank r has weight 1/r, drawn by inverting the continuous
  // CDF; ranks are scattered over the file by a multiplicative permutation mod n.
  const logN = Math.log(combos + 1);
  const bigN = BigInt(combos);
  const zipf = (): number => {
    const rank = Math.min(combos - 1, Math.max(0, Math.floor(Math.exp(rand() * logN)) - 1));
    return Number((BigInt(rank) * 2_654_435_761n) % bigN);
  };
  comboRun(zipf, 500_000, true, true); // warm the caches as a running endpoint would have
  const before = b.cacheStats();
  const zipfEventsPerSec = comboRun(zipf, 1_000_000, true, true);
  const zlat = new Float64Array(200_000);
  comboRun(zipf, zlat.length, true, false, zlat);
  const after = b.cacheStats();
  zlat.sort();

  const absentReadZero = b.combo(shaHex(shas + 7), 'absent.example', 443) === 0 && b.process(shaHex(shas + 7)) === undefined;
  b.close();
  if (sink < 0) console.error('unreachable');
  const zc = after.comboHits - before.comboHits + after.comboMisses - before.comboMisses;
  const zp = after.processHits - before.processHits + after.processMisses - before.processMisses;
  return {
    rssAfterOpenMiB,
    comboColdBatchedPerSec,
    comboColdAutocommitPerSec,
    processColdBatchedPerSec,
    comboColdP50Us: percentile(lat, 0.5),
    comboColdP99Us: percentile(lat, 0.99),
    zipfEventsPerSec,
    zipfComboHitRate: (after.comboHits - before.comboHits) / zc,
    zipfProcessHitRate: (after.processHits - before.processHits) / zp,
    zipfComboP99Us: percentile(zlat, 0.99),
    absentReadZero,
    peakRssMiB: vmHwmMiB(),
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

const [path, combos] = process.argv.slice(2);
if (path !== undefined && combos !== undefined) {
  process.stdout.write(JSON.stringify(run(path, Number(combos))) + '\n');
}
