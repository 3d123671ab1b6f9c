// Baseline store benchmark: builds a baseline of N combos, then measures the
// read path in a child process (so its peak RSS is the read path's alone).
// Prints figures; fails nothing on a time.
//   node dist/bench/baseline-store.js [combos]      (default 10,000,000)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BaselineBuilder } from '../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';
import { DAY_MS, type Sighting } from '../src/model/baseline.js';
import {
  BENCH_DAY0_MS,
  BENCH_DAYS,
  BENCH_ORGS,
  comboParts,
  mix32,
  observersOf,
  processCountFor,
  rootName,
  shaHex,
  type ComboParts,
} from './baseline-data.js';
import type { ReadFigures } from './baseline-read-child.js';

const READ_RSS_LIMIT_MIB = 200;

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export async function benchBaseline(opts: { combos: number }): Promise<void> {
  const combos = Math.max(1, Math.floor(opts.combos));
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-baseline-'));
  try {
    const path = join(dir, 'baseline.db');
    const shas = processCountFor(combos);
    const shaPool: string[] = [];
    for (let j = 0; j < shas; j++) shaPool.push(shaHex(j));
    const rootPool = new Map<number, string>();
    const orgPool: string[] = [];
    for (let o = 0; o < BENCH_ORGS; o++) orgPool.push(`org-${o}`);

    const builder = new BaselineBuilder({ unit: 'org', windowDays: BENCH_DAYS, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    // One mutable sighting: add() keeps nothing of the object it is given.
    const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };
    const parts: ComboParts = { sha: 0, root: 0, port: 0 };
    let sightings = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < combos; i++) {
      comboParts(i, combos, parts);
      let root = rootPool.get(parts.root);
      if (root === undefined) rootPool.set(parts.root, (root = rootName(parts.root)));
      s.sha256 = shaPool[parts.sha] as string;
      s.rootDomain = root;
      s.port = parts.port;
      const k = observersOf(i);
      const h = mix32(i);
      for (let j = 0; j < k; j++) {
        s.observer = orgPool[(h + j * 7) % BENCH_ORGS] as string;
        s.dayMs = BENCH_DAY0_MS + (((h >>> 3) + j) % BENCH_DAYS) * DAY_MS;
        builder.add(s);
        sightings++;
      }
    }
    // Each process also runs somewhere without any connection.
    s.rootDomain = null;
    s.port = null;
    for (let j = 0; j < shas; j++) {
      s.sha256 = shaPool[j] as string;
      s.observer = orgPool[mix32(j) % BENCH_ORGS] as string;
      s.dayMs = BENCH_DAY0_MS;
      builder.add(s);
      sightings++;
    }
    const addMs = performance.now() - t0;
    const addCpuMs = process.cpuUsage(cpu0).user / 1000;
    const stats = builder.stats();
    const w = builder.write(path, { version: 1, builtAtMs: Date.now() });
    if (!w.ok) throw new Error(w.error);
    const buildRssMiB = process.resourceUsage().maxRSS / 1024;

    console.log(`baseline store, ${fmt(combos)} combos, ${fmt(shas)} processes, ${fmt(BENCH_ORGS)} orgs`);
    console.log(
      `  build: ${fmt(sightings)} sightings added in ${fmt(addMs / 1000, 1)} s = ${fmt(sightings / (addMs / 1000))} sightings/s wall, ${fmt(sightings / (addCpuMs / 1000))} per CPU-second (incl. generating them)`,
    );
    console.log(
      `         ${fmt(stats.comboObserverPairs)} combo-observer pairs, ${fmt(stats.processObserverPairs)} process-observer pairs, builder arrays ${fmt(stats.arrayBytes / 1_048_576)} MiB`,
    );
    console.log(
      `  write: ${fmt(w.meta.comboCount)} combo rows, ${fmt(w.meta.processCount)} process rows in ${fmt(w.elapsedMs / 1000, 1)} s; ${fmt(w.collidingComboKeys)} colliding keys (${fmt(w.exactCombos)} exact rows)`,
    );
    console.log(
      `  file: ${fmt(w.sizeBytes / 1_048_576, 1)} MiB (${fmt(w.sizeBytes / (w.meta.comboCount + w.meta.processCount), 1)} B a row)`,
    );
    console.log(`  build process peak RSS: ${fmt(buildRssMiB)} MiB`);

    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    const child = fileURLToPath(new URL(`./baseline-read-child${ext}`, import.meta.url));
    const r = spawnSync(process.execPath, [...process.execArgv, child, path, String(combos)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) {
      console.log(`  read path: child failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
      return;
    }
    const f = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ReadFigures;
    console.log(`  read (child process, cache_size ${fmt(16)} MiB, no mmap, 200k-entry lookup caches):`);
    console.log(`    RSS after open ${fmt(f.rssAfterOpenMiB)} MiB`);
    console.log(
      `    combo cold, batches of 256:  ${fmt(f.comboColdBatchedPerSec)} lookups/s  (p50 ${fmt(f.comboColdP50Us, 1)} us, p99 ${fmt(f.comboColdP99Us, 1)} us)`,
    );
    console.log(`    combo cold, autocommit:      ${fmt(f.comboColdAutocommitPerSec)} lookups/s`);
    console.log(`    process cold, batches:       ${fmt(f.processColdBatchedPerSec)} lookups/s`);
    console.log(
      `    Zipf(1) stream, batches:     ${fmt(f.zipfEventsPerSec)} events/s (process + combo), hit rate combo ${fmt(f.zipfComboHitRate * 100, 1)}% process ${fmt(f.zipfProcessHitRate * 100, 1)}%, combo p99 ${fmt(f.zipfComboP99Us, 1)} us`,
    );
    console.log(`    absent combo reads 0: ${f.absentReadZero ? 'yes' : 'NO'}`);
    const peak = f.peakRssMiB ?? f.maxRssMiB;
    console.log(
      `    read path peak RSS ${fmt(peak)} MiB (VmHWM; getrusage maxRSS ${fmt(f.maxRssMiB)} MiB includes the forking parent's): ${peak < READ_RSS_LIMIT_MIB ? 'under' : 'OVER'} the ${READ_RSS_LIMIT_MIB} MiB budget`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = process.argv[2];
  await benchBaseline({ combos: arg === undefined ? 10_000_000 : Number(arg) });
}
