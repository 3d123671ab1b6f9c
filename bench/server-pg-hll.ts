// Does the `hll` extension (Debian's postgresql-15-hll) help the PostgreSQL
// store's aggregation, and at which size? (issue 19). Standalone:
//   node dist/bench/server-pg-hll.js [sightings in millions; default 1 (10 takes about 20 minutes)]
// On a throwaway cluster (the bench's settings), synthetic sightings shaped as
// the fleet simulator's (1,000 observers, skewed sha256s, a tail of rare
// combos), three ways to count each combo's distinct observers over the window:
//   exact:  DISTINCT (observer, combo), then count per combo (what the store does);
//   hll:    one sketch per combo over the raw sightings, no DISTINCT;
//   rollup: sketches per (day, combo) made once as the days come in, and the
//           window a union of 30 days' sketches (the only way hll saves a re-read).
// Prints times and how many combos hll counts differently, below 10 observers
// (where the tiers are decided) and overall. Never fails on a time.
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { pgMissingReason, startPgCluster } from '../test/support/postgres.js';

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; v: T }> {
  const t = performance.now();
  const v = await fn();
  return { ms: performance.now() - t, v };
}

export async function benchHll(millions: number[], out: (l: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  const missing = pgMissingReason();
  if (missing !== null) return out(`hll bench not run: ${missing}`);
  const cluster = await startPgCluster({
    durable: true,
    settings: {
      shared_buffers: "'4GB'",
      work_mem: "'1GB'",
      maintenance_work_mem: "'1GB'",
      max_wal_size: "'16GB'",
      max_parallel_workers_per_gather: 2,
    },
  });
  const c = new pg.Client({ connectionString: await cluster.createDatabase('hll') });
  await c.connect();
  try {
    try {
      await c.query('CREATE EXTENSION hll');
    } catch (e) {
      return out(`hll bench not run: the hll extension is missing (apt-get install postgresql-15-hll): ${(e as Error).message}`);
    }
    for (const m of millions) {
      const n = Math.round(m * 1_000_000);
      await c.query('DROP TABLE IF EXISTS s, d');
      // 30 days; observers 1..1000; a skewed head of 200k sha256s on popular domains, 9 % a long tail of rare combos.
      await c.query(
        `CREATE UNLOGGED TABLE s AS
         SELECT (g % 30) AS day, 1 + (hashint4(g) & 1023) % 1000 AS observer,
                CASE WHEN (hashint4(g + 7) & 1023) < 92 THEN 1000000 + g ELSE floor(200000 * power(random(), 3))::int END AS sha,
                floor(5000 * power(random(), 2))::int AS root, 443 AS port
         FROM generate_series(1, $1) g`,
        [n],
      );
      await c.query('ANALYZE s');
      const exact = await timed(() =>
        c.query(`CREATE TEMP TABLE e AS SELECT sha, root, port, count(*)::int AS n
                 FROM (SELECT DISTINCT observer, sha, root, port FROM s) x GROUP BY sha, root, port`),
      );
      const hll = await timed(() =>
        c.query(`CREATE TEMP TABLE h AS SELECT sha, root, port, hll_cardinality(hll_add_agg(hll_hash_integer(observer)))::int AS n
                 FROM s GROUP BY sha, root, port`),
      );
      const daily = await timed(() =>
        c.query(`CREATE UNLOGGED TABLE d AS SELECT day, sha, root, port, hll_add_agg(hll_hash_integer(observer)) AS sk
                 FROM s GROUP BY day, sha, root, port`),
      );
      const rollup = await timed(() =>
        c.query(`CREATE TEMP TABLE r AS SELECT sha, root, port, hll_cardinality(hll_union_agg(sk))::int AS n
                 FROM d GROUP BY sha, root, port`),
      );
      const diff = (
        await c.query<{ combos: number; low: number; off_low: number; off: number; worst: number }>(
          `SELECT count(*)::int AS combos, count(*) FILTER (WHERE e.n < 10)::int AS low,
                  count(*) FILTER (WHERE e.n < 10 AND h.n <> e.n)::int AS off_low,
                  count(*) FILTER (WHERE h.n <> e.n)::int AS off,
                  coalesce(max(abs(h.n - e.n)::float / e.n), 0) AS worst
           FROM e JOIN h USING (sha, root, port)`,
        )
      ).rows[0] as { combos: number; low: number; off_low: number; off: number; worst: number };
      out(
        `hll at ${m}M sightings, ${diff.combos.toLocaleString('en-US')} combos: exact DISTINCT ${(exact.ms / 1000).toFixed(1)} s; ` +
          `hll over the sightings ${(hll.ms / 1000).toFixed(1)} s; daily sketches ${(daily.ms / 1000).toFixed(1)} s once, then the window's union ${(rollup.ms / 1000).toFixed(1)} s; ` +
          `hll differs on ${diff.off_low} of ${diff.low.toLocaleString('en-US')} combos under 10 observers and ${diff.off.toLocaleString('en-US')} overall (worst ${(diff.worst * 100).toFixed(1)} %)`,
      );
      await c.query('DROP TABLE e, h, r');
    }
  } finally {
    await c.end();
    await cluster.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv
    .slice(2)
    .map(Number)
    .filter((x) => x > 0);
  await benchHll(args.length > 0 ? args : [1]);
}
