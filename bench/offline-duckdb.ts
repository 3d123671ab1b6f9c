// The whole offline job of issue 17 written in DuckDB (@duckdb/node-api, a
// devDependency), as an analyst would: over the raw NDJSON of a fleet log,
// distinct hosts per binary and per (binary, root, port) over the training
// days, then the test connections of common binaries to uncommon combinations,
// one row per (host, sha256, root, port, UTC day). A lighter job than rarecon's
// (root domain as the last two labels, no DNS naming, no address checks, no
// alert records), timed for a ratio.
// Run: node dist/bench/offline-duckdb.js TRAIN.jsonl TEST.jsonl [threads=1]
import { pathToFileURL } from 'node:url';

export interface DuckJob {
  seconds: number;
  alertKeys: number;
  threads: number;
}

export async function duckdbOfflineJob(train: string, test: string, threads: number): Promise<DuckJob> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const t0 = performance.now();
  const db = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const c = await db.connect();
  const conns = (file: string): string =>
    `SELECT host.org || '/' || host.id AS host, process.sha256 AS sha, remote.port AS port, ` +
    `array_to_string(list_slice(string_split(lower(trim(remote.hostname, ' .')), '.'), -2, -1), '.') AS root, ` +
    `CAST(time AS BIGINT) AS t FROM read_ndjson('${file}', columns = {type: 'VARCHAR', time: 'BIGINT', ` +
    `host: 'STRUCT(id VARCHAR, org VARCHAR)', process: 'STRUCT(sha256 VARCHAR)', remote: 'STRUCT(port INTEGER, hostname VARCHAR)'}) ` +
    `WHERE type = 'connection' AND process.sha256 IS NOT NULL`;
  const sql = `
    WITH train AS (${conns(train)}),
    procs AS (SELECT sha, count(DISTINCT host) AS n FROM train GROUP BY sha),
    combos AS (SELECT sha, root, port, count(DISTINCT host) AS n FROM train WHERE root <> '' GROUP BY ALL),
    test AS (${conns(test)})
    SELECT count(*) FROM (
      SELECT DISTINCT t.host, t.sha, t.root, t.port, t.t // 86400000 AS day
      FROM test t JOIN procs p ON p.sha = t.sha AND p.n >= 10
      LEFT JOIN combos k ON k.sha = t.sha AND k.root = t.root AND k.port = t.port
      WHERE t.root <> '' AND coalesce(k.n, 0) < 10)`;
  const rows = (await c.runAndReadAll(sql)).getRows();
  c.closeSync();
  return { seconds: (performance.now() - t0) / 1000, alertKeys: Number(rows[0]![0]), threads };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [train, test, threads] = process.argv.slice(2);
  if (train === undefined || test === undefined) throw new Error('usage: offline-duckdb.js TRAIN.jsonl TEST.jsonl [threads]');
  console.log(JSON.stringify(await duckdbOfflineJob(train, test, Number(threads ?? 1))));
}
