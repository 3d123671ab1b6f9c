// `npm run bench`: every benchmark, one after another, printing figures.
// `npm run bench -- score outbox` runs only those named. Nothing here fails on a time.
//   score     offline scoring against a 10M-combo baseline (issue 2)
//   score-5m  the whole `rarecon score` command on 5M events: events/s and peak RSS (issue 17)
//   score-start  start-up cost of `rarecon score` on an empty and a one-line file (issue 14)
//   baseline  baseline build and read path at 10M combos (issue 2)
//   replay    log reading and parsing (issue 2)
//   capture   eBPF capture rate and loss point (issue 3; root)
//   daemon    daemon idle cost, load, connect-to-alert latency (issue 3; root), then daemon-storm
//   daemon-storm  an alert storm of 10,000 new alerting connections/s against the daemon's safety valve (issue 18; root)
//   server    baseline server intake, aggregation, endpoint cache (issue 4); under attack: memory, rate limits (issue 15)
//             `server --store postgresql`: the PostgreSQL store, two nodes and a standby (issue 19)
//   outbox    durable enqueue and drain to HTTP (issue 5)
const benches: Record<string, () => Promise<void>> = {
  score: async () => (await import('./score.js')).benchScore({ combos: 10_000_000, events: 1_000_000 }),
  'score-5m': async () => (await import('./score.js')).benchScore({ combos: 10_000_000, events: 5_000_000, cliOnly: true }),
  'score-start': async () => (await import('./score-start.js')).benchScoreStart(),
  baseline: async () => (await import('./baseline-store.js')).benchBaseline({ combos: 10_000_000 }),
  replay: async () => (await import('./replay-read.js')).benchReplay(),
  capture: async () => (await import('./capture.js')).benchCapture(),
  daemon: async () => {
    const m = (await import('./daemon.js' as string)) as { benchDaemon: () => Promise<void> };
    await m.benchDaemon();
    // The storm too, unless the steps were narrowed to a quick run (RARECON_BENCH_DAEMON_STEPS).
    if ((process.env['RARECON_BENCH_DAEMON_STEPS'] ?? '').trim() === '') await (await import('./daemon-storm.js')).benchDaemonStorm();
  },
  'daemon-storm': async () => (await import('./daemon-storm.js')).benchDaemonStorm(),
  server: async () => {
    if (store === 'postgresql') return (await import('./server-pg.js')).benchServerPg();
    await (await import('./server-aggregate.js')).benchServer();
    await (await import('./server-hostile.js')).benchServerHostile();
  },
  outbox: async () => (await import('./outbox.js')).benchOutbox(),
};

const argv = process.argv.slice(2);
const storeAt = argv.indexOf('--store');
const store = storeAt >= 0 ? argv.splice(storeAt, 2)[1] : 'sqlite';
const asked = argv;
const unknown = asked.filter((a) => !(a in benches));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  process.exit(1);
}
for (const name of asked.length > 0 ? asked : Object.keys(benches)) {
  console.log(`\n== ${name} ==`);
  const t0 = Date.now();
  try {
    await benches[name]!();
  } catch (err) {
    console.log(`${name}: could not run: ${(err as Error).message}`);
  }
  console.log(`(${name} took ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
