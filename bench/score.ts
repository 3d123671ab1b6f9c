// Scoring benchmark (issue 2): rarecon NDJSON scored against a baseline of N
// combos. Builds the baseline once into /tmp (reused on later runs), writes the
// events, and measures in a child process. Prints figures; fails nothing.
//   node dist/bench/score.js [combos=10000000] [events=1000000] [cli]
// With `cli`, only the whole `rarecon score` command (events/s, CPU s, peak
// RSS): the measuring child holds every record at once, too much at 5M events.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildScoreBaseline, writeScoreEvents } from './score-data.js';
import type { ScoreFigures } from './score-child.js';
import { SCORE_NODE_FLAGS } from '../src/cli/score.js';

const fmt = (n: number, d = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

export async function benchScore(opts: { combos: number; events: number; cliOnly?: boolean }): Promise<void> {
  const dir = '/tmp/rarecon-bench';
  mkdirSync(dir, { recursive: true });
  const baseline = join(dir, `score-baseline-${opts.combos}.db`);
  if (!existsSync(baseline)) {
    const b = buildScoreBaseline(baseline, opts.combos);
    console.log(
      `score: built a ${fmt(opts.combos)}-combo baseline from ${fmt(b.sightings)} sightings in ${fmt(b.seconds, 1)} s (${fmt(b.sightings / b.seconds)} sightings/s)`,
    );
  }
  console.log(`score: baseline ${baseline} ${fmt(statSync(baseline).size / 2 ** 20)} MiB`);
  const events = join(dir, `score-events-${opts.combos}-${opts.events}.jsonl`);
  if (!existsSync(events)) await writeScoreEvents(events, opts.combos, opts.events);
  if (opts.cliOnly === true) {
    console.log(`score: ${fmt(opts.events)} NDJSON events against ${fmt(opts.combos)} combos`);
    console.log(`  ${cliRun(baseline, events, opts.events)}`);
    return;
  }
  const child = fileURLToPath(new URL('./score-child.js', import.meta.url));
  // With the Node flags `rarecon score` runs with, unless NODE_OPTIONS chose a young generation size.
  const flags = (process.env.NODE_OPTIONS ?? '').includes('--max-semi-space-size') ? [] : SCORE_NODE_FLAGS;
  const r = spawnSync(process.execPath, [...flags, child, baseline, events], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    console.log(`score: the measuring process failed: ${r.stderr}`);
    return;
  }
  const f = JSON.parse(r.stdout) as ScoreFigures;
  console.log(`score: ${fmt(f.events)} NDJSON events against ${fmt(opts.combos)} combos, one core`);
  const mib = (x: number | null): string => (x === null ? 'n/a' : fmt(x) + ' MiB');
  console.log(`  reader: ${f.reader}`);
  console.log(
    `  end to end (read + parse + score): ${fmt(f.endToEndPerSec)} events/s (${fmt(f.endToEndPerCpuSec)} per CPU second); reading and parsing alone ${fmt(f.readOnlyPerSec)} records/s`,
  );
  console.log(`  end to end with every line parsed in JavaScript (--js-reader): ${fmt(f.endToEndJsPerSec)} events/s`);
  console.log(`  scoring alone (parsed records):    ${fmt(f.scoringOnlyPerSec)} events/s, ${fmt(f.lookupsPerSec)} baseline lookups/s`);
  console.log(`  baseline lookups alone (the same, fresh store): ${fmt(f.lookupOnlyPerSec)} lookups/s`);
  console.log(
    `  scoring again, caches already filled: ${fmt(f.warmScoringPerSec)} events/s; SQLite reads end to end: ${fmt(f.sqliteReads)} (about one per distinct sha256 and combo)`,
  );
  console.log(`  per-event scoring latency: p50 ${fmt(f.p50Us, 1)} us, p99 ${fmt(f.p99Us, 1)} us, p99.9 ${fmt(f.p999Us, 1)} us`);
  console.log(
    `  alerts: ${fmt(f.alerts)}; peak RSS: end to end ${mib(f.endToEndPeakRssMiB)}, with all records held for the scoring pass ${mib(f.peakRssMiB)}`,
  );
  console.log(`  ${cliRun(baseline, events, f.events)}`);
}

/** The whole `rarecon score` command as a user runs it, alerts rendered as OCSF (to /dev/null): its own summary gives the figures. */
function cliRun(baseline: string, events: string, records: number): string {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [main, 'score', '--baseline', baseline, events], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 20,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const res = /resources: ([\d.]+) CPU s, peak resident memory (\d+) MiB/.exec(r.stderr ?? '');
  if (r.status !== 0 || res === null) return `rarecon score (the CLI): failed: ${r.stderr}`;
  return (
    `rarecon score (the CLI, OCSF to /dev/null): ${fmt(records / seconds)} events/s including start-up ` +
    `(${fmt(records / Number(res[1]))} per CPU second), ${res[1]} CPU s, peak RSS ${res[2]} MiB`
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchScore({
    combos: Number(process.argv[2] ?? 10_000_000),
    events: Number(process.argv[3] ?? 1_000_000),
    cliOnly: process.argv[4] === 'cli',
  });
}
