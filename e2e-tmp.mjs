import { openBaseline } from './dist/src/baseline/store.js';
import { StateStore } from './dist/src/detect/state-store.js';
import { Scorer } from './dist/src/detect/scorer.js';
import { DEFAULT_DETECT } from './dist/src/config/defaults.js';
import { readLogFiles } from './dist/src/sources/replay/log-reader.js';
import { loadLineScanner } from './dist/src/sources/replay/native-scan.js';
const b = openBaseline('/tmp/rarecon-bench/score-baseline-10000000.db');
const state = StateStore.open(null);
const s = new Scorer({ baseline: b.baseline, config: DEFAULT_DETECT, state, nowMs: 0, alertWrites: 'never' });
const scanner = process.argv[2] === 'js' ? null : loadLineScanner().scanner;
let peak = { rss: 0 }; const iv = setInterval(() => { const m = process.memoryUsage(); if (m.rss > peak.rss) peak = m; }, 20); iv.unref();
const t0 = performance.now(); const c0 = process.cpuUsage(); let n = 0;
for await (const { items, scanned } of readLogFiles([process.argv[3] ?? '/tmp/rarecon-bench/score-events-10000000-1000000.jsonl']).scanBatches(scanner)) {
  b.baseline.beginBatch();
  for (let j = 0; j < items.length; j++) { const it = items[j]; if (typeof it === 'number') s.handleScanned(scanned, it); else if (it.type !== 'error') s.handle(it); n++; }
  b.baseline.endBatch();
}
const alerts = s.finish().length;
const ms = performance.now() - t0; const cpu = process.cpuUsage(c0);
console.log(`${n} events ${alerts} alerts ${(n / ms * 1000).toFixed(0)} ev/s wall, ${(n / ((cpu.user + cpu.system) / 1e6)).toFixed(0)} per CPU s, rss max ${process.resourceUsage().maxRSS >> 10} MiB; at sampled peak: ${Object.entries(peak).map(([k, v]) => k + " " + (v >> 20)).join(", ")}`);
