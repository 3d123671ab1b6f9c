// Start-up cost of `rarecon score` (issue 14): wall time to score an empty
// file and a one-line file as a user runs it, a fresh process each time.
// Prints figures; fails nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BaselineBuilder } from '../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import { DAY_MS } from '../src/model/baseline.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';

const RUNS = 15;

function wallMs(args: string[]): number {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`rarecon ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function figures(label: string, args: string[]): void {
  const times = Array.from({ length: RUNS }, () => wallMs(args)).sort((a, b) => a - b);
  const at = (q: number): string => (times[Math.min(times.length - 1, Math.floor(q * times.length))]! / 1000).toFixed(2);
  console.log(`  ${label}: median ${at(0.5)} s, min ${at(0)} s, max ${at(1)} s wall (${RUNS} runs)`);
}

export async function benchScoreStart(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-start-'));
  try {
    const end = Date.UTC(2026, 9, 1);
    const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    b.add({ observer: 'o/h1', dayMs: end - 20 * DAY_MS, sha256: 'ab'.repeat(32), rootDomain: 'example.com', port: 443 });
    const baseline = join(dir, 'base.db');
    const w = b.write(baseline, { version: 1, builtAtMs: end, windowEndMs: end });
    if (!w.ok) throw new Error(w.error);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '');
    const one = join(dir, 'one.jsonl');
    const rec = { type: 'connection', time: end, host: { id: 'h1' }, process: { pid: 1, sha256: 'ab'.repeat(32) }, protocol: 'tcp' };
    writeFileSync(one, JSON.stringify({ ...rec, remote: { ip: '203.0.113.1', port: 443, hostname: 'www.example.com' } }) + '\n');
    console.log('score-start: `rarecon score` of a small input, a fresh process each run (target: under 0.5 s)');
    figures('empty file', ['score', '--baseline', baseline, empty]);
    figures('one connection', ['score', '--baseline', baseline, one]);
    figures('rarecon version (the command alone)', ['version']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
