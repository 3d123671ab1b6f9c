// The measuring side of bench/score.ts, in a process of its own so its peak
// RSS (VmHWM) is the scorer's alone. Prints one JSON line of figures.
import { readFileSync } from 'node:fs';
import { openBaseline } from '../src/baseline/store.js';
import { DEFAULT_BASELINE_STORE, DEFAULT_DETECT } from '../src/config/defaults.js';
import { Scorer } from '../src/detect/scorer.js';
import { StateStore } from '../src/detect/state-store.js';
import type { SourceRecord } from '../src/model/records.js';
import { readLogFiles } from '../src/sources/replay/log-reader.js';

export interface ScoreFigures {
  events: number;
  endToEndPerSec: number;
  scoringOnlyPerSec: number;
  lookupsPerSec: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  alerts: number;
  peakRssMiB: number | null;
}

function vmHwmMiB(): number | null {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m === null ? null : Number(m[1]) / 1024;
}

function scorer(baselinePath: string): { s: Scorer; close: () => void; lookups: () => number } {
  const b = openBaseline(baselinePath, DEFAULT_BASELINE_STORE);
  if (!b.ok) throw new Error(b.error);
  const state = StateStore.open(null);
  let n = 0;
  const counted = {
    process: (sha: string) => (n++, b.baseline.process(sha)),
    combo: (sha: string, root: string, port: number) => (n++, b.baseline.combo(sha, root, port)),
    meta: () => b.baseline.meta(),
  };
  const s = new Scorer({ baseline: counted, config: DEFAULT_DETECT, state, nowMs: 0 });
  return { s, close: () => (state.close(), b.baseline.close()), lookups: () => n };
}

async function main(): Promise<void> {
  const [baselinePath, eventsPath] = process.argv.slice(2) as [string, string];
  // 1. End to end: read, parse, score.
  const a = scorer(baselinePath);
  let events = 0;
  const t0 = performance.now();
  for await (const item of readLogFiles([eventsPath])) {
    if (item.type === 'error') continue;
    events++;
    a.s.handle(item);
  }
  const endToEndPerSec = events / ((performance.now() - t0) / 1000);
  const alerts = a.s.finish().length;
  a.close();

  // 2. Scoring alone on pre-parsed records, timed one by one.
  const records: SourceRecord[] = [];
  for await (const item of readLogFiles([eventsPath])) if (item.type !== 'error') records.push(item);
  const b = scorer(baselinePath);
  const lat = new Float64Array(records.length);
  const t1 = performance.now();
  for (let i = 0; i < records.length; i++) {
    const s0 = process.hrtime.bigint();
    b.s.handle(records[i]!);
    lat[i] = Number(process.hrtime.bigint() - s0) / 1000;
  }
  const secs = (performance.now() - t1) / 1000;
  const lookups = b.lookups();
  b.close();
  lat.sort();
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!;
  const figures: ScoreFigures = {
    events,
    endToEndPerSec,
    scoringOnlyPerSec: records.length / secs,
    lookupsPerSec: lookups / secs,
    p50Us: q(0.5),
    p99Us: q(0.99),
    p999Us: q(0.999),
    alerts,
    peakRssMiB: null,
  };
  records.length = 0;
  figures.peakRssMiB = vmHwmMiB();
  process.stdout.write(JSON.stringify(figures) + '\n');
}

await main();
