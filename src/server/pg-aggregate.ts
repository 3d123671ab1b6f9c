// One aggregation on PostgreSQL, by one node at a time (an advisory lock):
// distinct observers counted by SQL inside the database (exact: a parallel
// DISTINCT over the window's partitions), the counts read out once to write
// the signed baseline file, and the publication (changed rows, version,
// snapshot bytes, delta horizon) written by SQL in one transaction. A node
// killed mid-build loses its sessions: the transaction rolls back, the lock is
// released, the last published version stays served.
//
// Steps, as in aggregate.ts: count (SQL into scratch tables), build (the file
// from the counts), publish (SQL), then the scratch tables go. The publish's
// rows are written by a second session while the first reads the counts out
// and the node writes the file; its transaction waits for the file, then adds
// the version and swaps the tables in.
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { signHeader, signingKeyFromPem } from '../baseline/signature.js';
import { SHA256_BYTES } from '../baseline/hex.js';
import type { ServerPostgresConfig } from '../config/defaults.js';
import { DAY_MS } from '../model/baseline.js';
import type { AggregateFigures, AggregateOptions, AggregateResult } from './aggregate.js';
import { writeCountedBaseline } from './counts-baseline.js';
import { BUILD_LOCK, clientConfig, maintainPartitions } from './pg-schema.js';

export interface PgAggregateOptions extends Omit<AggregateOptions, 'intakePath' | 'publishPath' | 'baselinesDir'> {
  postgres: ServerPostgresConfig;
  /** Where the snapshot file is written before its bytes go into the database (removed after). */
  scratchDir: string;
  /** Skip when a version was published at or after this time (another node built this scheduled run); null = build. */
  skipIfPublishedSinceMs: number | null;
  /** Build only when nothing is published yet (the first build at start, which every node may try). */
  onlyIfNone: boolean;
}

// agg_pub_combo: no longer made, but a build of an older version killed midway may have left it.
const SCRATCH = ['agg_obs', 'agg_pair', 'agg_proc', 'agg_combo', 'agg_root', 'agg_pub_proc', 'agg_pub_combo'];
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/**
 * Each row of a COPY ... TO STDOUT in binary format, whatever the chunk
 * boundaries: `onRow` gets the bytes and, per field, where its value starts
 * and how long it is (valid during the call only). Binary: ids and counts come
 * as 4 bytes and sha256s as 32, not as text to print and parse again. The
 * queries read here have no NULLs.
 */
async function copyRows(
  c: pg.ClientBase,
  sql: string,
  fields: number,
  onRow: (b: Buffer, start: Int32Array, len: Int32Array) => void,
): Promise<void> {
  const stream = c.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`));
  const start = new Int32Array(fields);
  const len = new Int32Array(fields);
  let rest: Buffer = Buffer.alloc(0);
  let header = true;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const b = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    let at = 0;
    if (header) {
      // Signature (11 bytes), flags (4), header extension length (4) and the extension.
      if (b.length < 19 || b.length < 19 + b.readUInt32BE(15)) {
        rest = b;
        continue;
      }
      at = 19 + b.readUInt32BE(15);
      header = false;
    }
    for (;;) {
      if (b.length - at < 2) break;
      const n = b.readInt16BE(at);
      if (n === -1) {
        at = b.length;
        break;
      }
      if (n !== fields) throw new Error(`COPY gave ${n} fields a row, expected ${fields}`);
      let p = at + 2;
      let whole = true;
      for (let f = 0; f < n; f++) {
        if (p + 4 > b.length) {
          whole = false;
          break;
        }
        const l = b.readInt32BE(p);
        if (l < 0) throw new Error('COPY gave a NULL where none can be');
        start[f] = p + 4;
        len[f] = l;
        p += 4 + l;
        if (p > b.length) {
          whole = false;
          break;
        }
      }
      if (!whole) break;
      onRow(b, start, len);
      at = p;
    }
    rest = b.subarray(at);
  }
}

export async function aggregatePg(opts: PgAggregateOptions): Promise<AggregateResult> {
  const started = performance.now();
  const url = opts.postgres.url;
  if (url === null) return { ok: false, error: 'server.postgres.url is not set' };
  const key = signingKeyFromPem(opts.signingKeyPem);
  const c = buildClient(url, opts);
  // The second session writes the next publication while this one reads the counts out and the node
  // writes the file: PostgreSQL's work and the node's overlap (two cores, not one after the other).
  let pc: pg.Client | null = null;
  let fileDone: (f: SnapshotFile | null) => void = () => undefined;
  const fileReady = new Promise<SnapshotFile | null>((resolve) => (fileDone = resolve));
  let publishing: Promise<Published | null> | null = null;
  let snapshotPath: string | null = null;
  try {
    await connectBuild(c, opts);
    await c.query('SELECT pg_advisory_lock($1)', [BUILD_LOCK]);
    const last = (
      await c.query<{ v: number | null; p: number | null }>('SELECT max(version) AS v, max(published_ms) AS p FROM pub_version')
    ).rows[0] as { v: number | null; p: number | null };
    if (opts.onlyIfNone && last.v !== null)
      return { ok: false, skipped: true, error: `version ${last.v} is already published (by another node)` };
    if (opts.skipIfPublishedSinceMs !== null && last.p !== null && last.p >= opts.skipIfPublishedSinceMs)
      return { ok: false, skipped: true, error: `version ${last.v} was published for this scheduled run by another node` };

    const today = Math.floor(opts.nowMs / DAY_MS);
    const endDay = today + 1;
    const windowStart = endDay - opts.windowDays;
    // The coming days' partitions, made ahead of the uploads that will need them.
    await maintainPartitions(c, today, today + 2, null);

    // 1. count
    for (const t of SCRATCH) await c.query(`DROP TABLE IF EXISTS ${t}`);
    const eligible =
      opts.unit === 'org'
        ? 'SELECT id AS host, org_id AS observer FROM host WHERE revoked_ms IS NULL'
        : `SELECT id AS host, id AS observer FROM host WHERE revoked_ms IS NULL AND upload_days >= ${Number(opts.hostMinUploadDays)}`;
    await c.query(`CREATE UNLOGGED TABLE agg_obs AS ${eligible}`);
    await c.query('ANALYZE agg_obs');
    const win = (
      await c.query<{ read: number; host_days: number; first: number | null; population: number }>(
        `SELECT coalesce(sum(hd.process_count + hd.combo_count), 0)::bigint AS read, count(*)::int AS host_days,
                min(hd.day) FILTER (WHERE hd.process_count + hd.combo_count > 0) AS first,
                count(DISTINCT o.observer) FILTER (WHERE hd.process_count + hd.combo_count > 0)::int AS population
         FROM host_day hd JOIN agg_obs o ON o.host = hd.host WHERE hd.day >= $1 AND hd.day < $2`,
        [windowStart, endDay],
      )
    ).rows[0] as { read: number; host_days: number; first: number | null; population: number };
    const omitSingles = opts.omitSingleObserverCombos && opts.thresholds.veryRareMaxObservers >= 1;
    const minObservers = omitSingles ? 2 : 1;
    // Each observer's things once: a parallel DISTINCT over the window's partitions, their arrays unnested.
    // The unnests in the select list run in step (a ProjectSet streaming each row's elements); as a
    // LATERAL unnest(a, b, c) in FROM they went through a tuplestore per row: twice the time at 10M sightings.
    const pairs = await c.query(
      `CREATE UNLOGGED TABLE agg_pair AS SELECT DISTINCT observer, sha, root, port FROM (
         SELECT o.observer, unnest(s.shas) AS sha, unnest(s.roots) AS root, unnest(s.ports) AS port
         FROM sighting s JOIN agg_obs o ON o.host = s.host WHERE s.day >= $1 AND s.day < $2) x`,
      [windowStart, endDay],
    );
    await c.query('ANALYZE agg_pair');
    await c.query(
      `CREATE UNLOGGED TABLE agg_combo AS SELECT sha, root, port, count(*)::int AS observers FROM agg_pair
       WHERE root <> 0 GROUP BY sha, root, port HAVING count(*) >= ${minObservers}`,
    );
    // A combo's sha256 counts as run by its observer too (the builder's rule); idx orders the file's arrays.
    await c.query(
      `CREATE UNLOGGED TABLE agg_proc AS SELECT (row_number() OVER (ORDER BY sha) - 1)::int AS idx, sha, observers
       FROM (SELECT sha, count(*)::int AS observers FROM (SELECT DISTINCT observer, sha FROM agg_pair) x GROUP BY sha) g`,
    );
    await c.query(
      `CREATE UNLOGGED TABLE agg_root AS SELECT (row_number() OVER (ORDER BY root) - 1)::int AS idx, root
       FROM (SELECT DISTINCT root FROM agg_combo) r`,
    );
    const countedAt = performance.now();
    const version = Math.max((last.v ?? 0) + 1, opts.nowMs);
    // Under this session's build lock: the other session only runs while this one holds it.
    const p2 = buildClient(url, opts);
    pc = p2;
    await connectBuild(p2, opts);
    publishing = (async () => {
      await p2.query(
        `CREATE UNLOGGED TABLE agg_pub_proc AS
         SELECT s.bucket, s.sha, a.observers,
                CASE WHEN coalesce(k.n, 0) <= $1 THEN 0
                     ELSE coalesce((SELECT min(b) FROM generate_series(1, 16) b WHERE ($2::bigint << b) >= k.n), 16) END AS bits
         FROM agg_proc a JOIN sha s ON s.id = a.sha LEFT JOIN (SELECT sha, count(*) AS n FROM agg_combo GROUP BY sha) k ON k.sha = a.sha`,
        [opts.heavyProcessCombos, opts.combosPerCell],
      );
      return publish(p2, opts, version, fileReady);
    })();
    // Awaited below; a failure meanwhile must not go unhandled.
    publishing.catch(() => undefined);

    // 2. build: the counts out once, into the file's arrays
    const procN = ((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM agg_proc')).rows[0] as { n: number }).n;
    const comboN = ((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM agg_combo')).rows[0] as { n: number }).n;
    const shaBytes = new Uint8Array(procN * SHA256_BYTES);
    const procObservers = new Int32Array(procN);
    let i = 0;
    await copyRows(c, 'SELECT s.sha, a.observers FROM agg_proc a JOIN sha s ON s.id = a.sha ORDER BY a.idx', 2, (b, at) => {
      b.copy(shaBytes, i * SHA256_BYTES, at[0] as number, (at[0] as number) + SHA256_BYTES);
      procObservers[i++] = b.readInt32BE(at[1] as number);
    });
    const roots: string[] = [];
    await copyRows(c, 'SELECT r.name FROM agg_root a JOIN root r ON r.id = a.root ORDER BY a.idx', 1, (b, at, len) => {
      roots.push(b.toString('utf8', at[0] as number, (at[0] as number) + (len[0] as number)));
    });
    const cSha = new Int32Array(comboN);
    const cRoot = new Int32Array(comboN);
    const cPort = new Uint16Array(comboN);
    const cObs = new Int32Array(comboN);
    let k = 0;
    await copyRows(
      c,
      'SELECT p.idx, r.idx, c.port, c.observers FROM agg_combo c JOIN agg_proc p ON p.sha = c.sha JOIN agg_root r ON r.root = c.root',
      4,
      (b, at) => {
        cSha[k] = b.readInt32BE(at[0] as number);
        cRoot[k] = b.readInt32BE(at[1] as number);
        cPort[k] = b.readInt32BE(at[2] as number);
        cObs[k++] = b.readInt32BE(at[3] as number);
      },
    );
    const readAt = performance.now();
    mkdirSync(opts.scratchDir, { recursive: true, mode: 0o700 });
    snapshotPath = join(opts.scratchDir, `baseline-${version}.db`);
    const written = writeCountedBaseline(
      snapshotPath,
      {
        unit: opts.unit,
        thresholds: opts.thresholds,
        policy: { allowPrivateDomains: opts.policy.allowPrivateDomains, pslVersion: opts.policy.pslVersion },
        omitsSingleObserverCombos: omitSingles,
        startDay: Math.min(endDay, Math.max(win.first ?? windowStart, windowStart)),
        endDay,
        populationSize: win.population,
        version,
        builtAtMs: opts.nowMs,
        serverMeta: {
          ...(opts.unit === 'host' ? { observerMinUploadDays: opts.hostMinUploadDays } : {}),
          ...(opts.nextBuildByMs === null ? {} : { nextBuildByMs: opts.nextBuildByMs }),
        },
      },
      { shaBytes, observers: procObservers },
      { sha: cSha, root: cRoot, port: cPort, observers: cObs, roots },
    );
    if (!written.ok) return { ok: false, error: `the baseline file could not be written: ${written.error}` };
    const bytes = readFileSync(snapshotPath);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const { line } = signHeader(
      {
        kind: 'snapshot',
        meta: written.meta,
        fromVersion: null,
        prefixes: null,
        bucketHexChars: opts.bucketHexChars,
        contentSha256: sha256,
        contentBytes: bytes.length,
      },
      key,
    );
    const writtenAt = performance.now();

    // 3. publish: the other session has written the next publication meanwhile; now the version and the swap.
    fileDone({ meta: written.meta, bytes, sha256, envelope: line.toString('utf8') });
    const published = await publishing;
    if (published === null) throw new Error('the publication was abandoned');
    const publishedAt = performance.now();
    for (const t of SCRATCH) await c.query(`DROP TABLE IF EXISTS ${t}`);
    const figures: AggregateFigures = {
      hostDays: win.host_days,
      sightingsRead: win.read,
      sightingsFed: pairs.rowCount ?? 0,
      readAndFeedMs: Math.round(countedAt - started),
      lookupMs: Math.round(readAt - countedAt),
      writeMs: Math.round(writtenAt - readAt),
      publishMs: Math.round(publishedAt - writtenAt),
      totalMs: Math.round(performance.now() - started),
      changedProcesses: published.changedProcesses,
      changedCombos: published.changedCombos,
      snapshotBytes: bytes.length,
      countMismatches: 0,
    };
    return { ok: true, version, meta: written.meta, figures };
  } catch (e) {
    return { ok: false, error: `aggregation failed: ${(e as Error).message}` };
  } finally {
    // A build given up before its file: the other session rolls its publication back.
    fileDone(null);
    await publishing?.catch(() => undefined);
    if (snapshotPath !== null) rmSync(snapshotPath, { force: true });
    await pc?.end().catch(() => undefined);
    await c.end().catch(() => undefined);
  }
}

function buildClient(url: string, opts: PgAggregateOptions): pg.Client {
  const c = new pg.Client(clientConfig(url, opts.postgres.aggregateTimeoutMs, 'rarecon-server-build'));
  // A broken connection fails the query in progress; the error event must not throw on top.
  c.on('error', () => undefined);
  return c;
}

async function connectBuild(c: pg.Client, opts: PgAggregateOptions): Promise<void> {
  await c.connect();
  // The backend notices a vanished node (killed mid-build) within seconds, and gives up its work and the lock.
  await c.query("SET client_connection_check_interval = '2s'");
  await c.query(`SET work_mem = '${opts.postgres.aggregateWorkMemMiB}MB'`);
  // The publication's indexes are built by sorts too: in memory, not spilled (PostgreSQL's default is 64 MB).
  await c.query(`SET maintenance_work_mem = '${opts.postgres.aggregateWorkMemMiB}MB'`);
}

/** The signed snapshot file the publication's version row carries. */
interface SnapshotFile {
  meta: object;
  bytes: Buffer;
  sha256: string;
  envelope: string;
}

interface Published {
  changedProcesses: number;
  changedCombos: number;
}

/**
 * The next publication written beside the served one and swapped in: the
 * merged rows (new counts, removals kept for the delta history, changed marks)
 * go into fresh tables with no index, the indexes are built once (a sort, not
 * a b-tree insert per row), and one transaction replaces the served tables by
 * them and adds the version, its snapshot bytes and the delta horizon. Readers
 * take their locks before their snapshot (pg-publication.ts), so each sees the
 * old tables or the new ones whole. Measured at 10M sightings: docs/deployment.md.
 */
async function publish(
  c: pg.ClientBase,
  opts: PgAggregateOptions,
  version: number,
  fileReady: Promise<SnapshotFile | null>,
): Promise<Published | null> {
  // The horizon the new version makes: removals at or before it have no delta that needs them.
  const kept = Math.max(1, opts.deltaHistoryVersions);
  const older = (await c.query<{ version: number }>('SELECT version FROM pub_version ORDER BY version DESC LIMIT $1', [kept - 1])).rows.map(
    (r) => r.version,
  );
  const versions = [version, ...older];
  const horizon =
    versions.length >= kept
      ? (versions[kept - 1] as number)
      : Math.min(
          version,
          ((await c.query<{ v: number | null }>('SELECT min(version) AS v FROM pub_version')).rows[0]?.v ?? version) as number,
        );
  await c.query('BEGIN');
  try {
    for (const t of ['pub_process_next', 'pub_combo_next']) await c.query(`DROP TABLE IF EXISTS ${t}`);
    // Processes whose cells changed size send all their combos again.
    await c.query(
      `CREATE TEMP TABLE agg_resized ON COMMIT DROP AS
       SELECT coalesce(n.bucket, o.bucket) AS bucket, coalesce(n.sha, o.sha) AS sha
       FROM (SELECT bucket, sha, bits FROM pub_process WHERE bits > 0) o
       FULL JOIN agg_pub_proc n ON n.bucket = o.bucket AND n.sha = o.sha
       WHERE coalesce(n.bits, 0) <> coalesce(o.bits, 0)`,
    );
    await c.query('ANALYZE agg_resized');
    await c.query('CREATE TABLE pub_process_next (LIKE pub_process INCLUDING DEFAULTS)');
    await c.query('CREATE TABLE pub_combo_next (LIKE pub_combo INCLUDING DEFAULTS)');
    // A row is changed when new, when its count or cell size changed, or when it was removed now.
    // The changed rows are counted afterwards (a scan), not through RETURNING (a row kept per row written).
    await c.query(
      `INSERT INTO pub_process_next (bucket, sha, observers, changed, bits)
       SELECT * FROM (
         SELECT coalesce(n.bucket, o.bucket), coalesce(n.sha, o.sha), coalesce(n.observers, 0) AS observers,
                CASE WHEN o.sha IS NULL OR (n.sha IS NULL AND o.observers > 0) OR n.observers <> o.observers OR n.bits <> o.bits
                     THEN $1::bigint ELSE o.changed END AS changed,
                CASE WHEN n.sha IS NULL THEN o.bits ELSE n.bits END
         FROM pub_process o FULL JOIN agg_pub_proc n ON n.bucket = o.bucket AND n.sha = o.sha) x
       WHERE NOT (observers = 0 AND changed <= $2)`,
      [version, horizon],
    );
    // The new counts joined to their sha256 and root names on the way in (no copy of them first).
    await c.query(
      `INSERT INTO pub_combo_next (bucket, sha, rh, root, port, observers, changed)
       SELECT * FROM (
         SELECT coalesce(n.bucket, o.bucket) AS bucket, coalesce(n.sha, o.sha) AS sha, coalesce(n.rh, o.rh), coalesce(n.root, o.root),
                coalesce(n.port, o.port), coalesce(n.observers, 0) AS observers,
                CASE WHEN o.sha IS NULL OR (n.sha IS NULL AND o.observers > 0) OR n.observers <> o.observers OR r.sha IS NOT NULL
                     THEN $1::bigint ELSE o.changed END AS changed
         FROM pub_combo o FULL JOIN (SELECT s.bucket, s.sha, r.rh, r.name AS root, c.port, c.observers
                                     FROM agg_combo c JOIN sha s ON s.id = c.sha JOIN root r ON r.id = c.root) n
           ON n.bucket = o.bucket AND n.sha = o.sha AND n.rh = o.rh AND n.root = o.root AND n.port = o.port
         LEFT JOIN agg_resized r ON r.bucket = coalesce(n.bucket, o.bucket) AND r.sha = coalesce(n.sha, o.sha)) x
       WHERE NOT (observers = 0 AND changed <= $2)`,
      [version, horizon],
    );
    const changed = (
      await c.query<{ p: number; c: number }>(
        `SELECT (SELECT count(*) FROM pub_process_next WHERE changed = $1::bigint)::int AS p,
                (SELECT count(*) FROM pub_combo_next WHERE changed = $1::bigint)::int AS c`,
        [version],
      )
    ).rows[0] as { p: number; c: number };
    await c.query('ALTER TABLE pub_process_next ADD CONSTRAINT pub_process_next_pkey PRIMARY KEY (bucket, sha)');
    await c.query('ALTER TABLE pub_combo_next ADD CONSTRAINT pub_combo_next_pkey PRIMARY KEY (bucket, sha, rh, root, port)');
    await c.query('CREATE INDEX pub_process_next_changed ON pub_process_next (changed)');
    await c.query('CREATE INDEX pub_combo_next_changed ON pub_combo_next (changed)');
    // The version row needs the file, which the other session's counts are written into meanwhile.
    const file = await fileReady;
    if (file === null) {
      await c.query('ROLLBACK');
      return null;
    }
    const { meta, bytes: snapshot, sha256, envelope } = file;
    // The swap: readers wait for these few catalog changes, not for the rows above.
    await c.query('LOCK TABLE pub_process, pub_combo IN ACCESS EXCLUSIVE MODE');
    await c.query('DROP TABLE pub_process, pub_combo');
    for (const t of ['pub_process', 'pub_combo']) {
      await c.query(`ALTER TABLE ${t}_next RENAME TO ${t}`);
      await c.query(`ALTER TABLE ${t} RENAME CONSTRAINT ${t}_next_pkey TO ${t}_pkey`);
      await c.query(`ALTER INDEX ${t}_next_changed RENAME TO ${t}_changed`);
    }
    const procN = changed.p;
    const comboN = changed.c;
    await c.query(
      `INSERT INTO pub_version (version, meta, published_ms, snapshot_sha256, snapshot_bytes, snapshot_envelope, changed_processes, changed_combos)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [version, JSON.stringify(meta), opts.nowMs, sha256, snapshot.length, envelope, procN, comboN],
    );
    for (let n = 0, off = 0; off < snapshot.length || n === 0; n++, off += SNAPSHOT_CHUNK_BYTES)
      await c.query('INSERT INTO pub_snapshot (version, n, bytes) VALUES ($1, $2, $3)', [
        version,
        n,
        snapshot.subarray(off, off + SNAPSHOT_CHUNK_BYTES),
      ]);
    await c.query("INSERT INTO pub_kv (key, value) VALUES ('deltaHorizon', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [
      String(horizon),
    ]);
    await c.query('DELETE FROM pub_snapshot WHERE version NOT IN (SELECT version FROM pub_version ORDER BY version DESC LIMIT $1)', [
      opts.keepSnapshots,
    ]);
    await c.query('COMMIT');
    return { changedProcesses: procN, changedCombos: comboN };
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
