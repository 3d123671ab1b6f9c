// The PostgreSQL store's schema and connections (server.store postgresql):
// the same rows as server.db and publish.db, shared by every server node.
//
// Sightings are integer ids of two dictionaries (sha256, root domain), packed
// as arrays: one row per (day, host, part), part = the sha256's first hex
// digit, holding that host-day's (sha, root, port) triples of that part
// (root 0 and port 0: a process run). One row of ~20 sightings costs the
// database far less than 20 rows, at intake and on disk (measured: 33,000
// sightings/s as a row each, see docs/deployment.md); the aggregation unnests
// them. The table is partitioned by day: the window slides by creating the
// coming days' partitions and dropping expired ones, never by deleting rows. A
// re-upload of a host-day deletes that host-day's rows and writes the new ones.
//
// The tables that grow with the fleet carry the sha256's bucket (`part` in
// sighting, the first 16 bits elsewhere): the column a Citus-style
// distribution would use (docs/deployment.md).
import pg from 'pg';
import type { ServerPostgresConfig } from '../config/defaults.js';
import type { LogFn } from '../common/log.js';

export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE org (id serial PRIMARY KEY, name text NOT NULL UNIQUE, created_ms bigint NOT NULL);
   CREATE TABLE enrol_token (hash bytea PRIMARY KEY, org_id int NOT NULL REFERENCES org(id), created_ms bigint NOT NULL,
                             revoked_ms bigint, max_hosts int NOT NULL);
   CREATE TABLE host (id serial PRIMARY KEY, org_id int NOT NULL REFERENCES org(id), host_id text NOT NULL, name text,
                      cred_hash bytea NOT NULL UNIQUE, enrolled_ms bigint NOT NULL, revoked_ms bigint, last_seen_ms bigint,
                      token_hash bytea, cred_issued_ms bigint NOT NULL, prev_cred_hash bytea, prev_cred_until_ms bigint,
                      reenrol_until_ms bigint, upload_days int NOT NULL DEFAULT 0, last_upload_day int,
                      UNIQUE (org_id, host_id));
   CREATE INDEX host_by_token ON host (token_hash);
   CREATE INDEX host_by_prev_cred ON host (prev_cred_hash);
   CREATE INDEX host_by_host_id ON host (host_id);
   CREATE TABLE sha (id serial PRIMARY KEY, bucket int NOT NULL, sha bytea NOT NULL UNIQUE);
   CREATE TABLE root (id serial PRIMARY KEY, rh bigint NOT NULL, name text COLLATE "C" NOT NULL UNIQUE);
   CREATE TABLE host_day (host int NOT NULL, day int NOT NULL, process_count int NOT NULL,
                          combo_count int NOT NULL, received_ms bigint NOT NULL, PRIMARY KEY (host, day));
   CREATE INDEX host_day_by_day ON host_day (day);
   -- shas[i], roots[i], ports[i]: one sighting; root 0 and port 0 a process run that day (no connection).
   CREATE TABLE sighting (day int NOT NULL, host int NOT NULL, part int NOT NULL, shas int[] NOT NULL, roots int[] NOT NULL,
                          ports int[] NOT NULL, PRIMARY KEY (day, host, part)) PARTITION BY RANGE (day);
   CREATE TABLE alert (seq bigserial PRIMARY KEY, uid text NOT NULL, host int NOT NULL, org_id int NOT NULL, time_ms bigint,
                       severity_id int, received_ms bigint NOT NULL, body text NOT NULL, UNIQUE (host, uid));
   CREATE INDEX alert_by_org ON alert (org_id, seq);
   CREATE TABLE pub_version (version bigint PRIMARY KEY, meta text NOT NULL, published_ms bigint NOT NULL,
                             snapshot_sha256 text NOT NULL, snapshot_bytes bigint NOT NULL, snapshot_envelope text NOT NULL,
                             changed_processes int NOT NULL, changed_combos int NOT NULL);
   CREATE TABLE pub_snapshot (version bigint NOT NULL, n int NOT NULL, bytes bytea NOT NULL, PRIMARY KEY (version, n));
   CREATE TABLE pub_kv (key text PRIMARY KEY, value text NOT NULL);
   CREATE TABLE pub_process (bucket int NOT NULL, sha bytea NOT NULL, observers int NOT NULL, changed bigint NOT NULL,
                             bits int NOT NULL DEFAULT 0, PRIMARY KEY (bucket, sha));
   CREATE TABLE pub_combo (bucket int NOT NULL, sha bytea NOT NULL, rh bigint NOT NULL, root text COLLATE "C" NOT NULL,
                           port int NOT NULL, observers int NOT NULL, changed bigint NOT NULL,
                           PRIMARY KEY (bucket, sha, rh, root, port));
   CREATE INDEX pub_process_changed ON pub_process (changed);
   CREATE INDEX pub_combo_changed ON pub_combo (changed);`,
  // The snapshot's bytes (a baseline file, tens of MB at fleet scale) stored as they are: no pglz
  // compression of them at each build, no decompression at each download.
  `ALTER TABLE pub_snapshot ALTER COLUMN bytes SET STORAGE EXTERNAL;`,
];

/** Advisory lock keys (pg_advisory_lock): schema changes, and the one aggregation at a time. */
export const MIGRATE_LOCK = 0x7261_7265_01;
export const BUILD_LOCK = 0x7261_7265_02;
/** Partitions are created and dropped by one session at a time. */
export const PARTITION_LOCK = 0x7261_7265_03;

/** The bucket (distribution column) of a sha256: its first 16 bits. */
export function bucketOf(sha: Buffer): number {
  return ((sha[0] as number) << 8) | (sha[1] as number);
}

// bigint (int8) columns hold epoch ms, versions and sequence numbers: all well inside 2^53.
const INT8_OID = 20;
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as never,
};

export function clientConfig(url: string, statementTimeoutMs: number, appName: string): pg.ClientConfig {
  return {
    connectionString: url,
    types: TYPES,
    application_name: appName,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
  };
}

/** A pool on one server; an idle connection that breaks is logged, not thrown. */
export function openPool(url: string, cfg: ServerPostgresConfig, log: LogFn, role: 'primary' | 'read'): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(url, cfg.statementTimeoutMs, `rarecon-server-${role}`),
    max: cfg.poolSize,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', (e) =>
    log('warn', 'A PostgreSQL connection of the pool broke; the next request opens another.', { role, error: e.message }),
  );
  return pool;
}

/**
 * Runs `fn` in one transaction on a pooled connection: committed when it returns, rolled back
 * when it throws (the error passes on), the connection given back either way.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query(begin);
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

/** Creates or brings the schema up to date, one node at a time. */
export async function migrate(pool: pg.Pool): Promise<void> {
  await inTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
    await c.query('CREATE TABLE IF NOT EXISTS rarecon_schema (version int NOT NULL)');
    const r = await c.query<{ version: number }>('SELECT version FROM rarecon_schema');
    let from = r.rows[0]?.version ?? 0;
    if (r.rows.length === 0) await c.query('INSERT INTO rarecon_schema (version) VALUES (0)');
    for (; from < MIGRATIONS.length; from++) await c.query(MIGRATIONS[from] as string);
    await c.query('UPDATE rarecon_schema SET version = $1', [MIGRATIONS.length]);
  });
}

function partitionName(day: number): string {
  return `sighting_d${day}`;
}

/**
 * The day partitions from `fromDay` to `toDay` inclusive exist afterwards
 * (made when missing), and those wholly before `dropBeforeDay` are dropped.
 * Returns the partitions dropped.
 */
export async function maintainPartitions(
  q: pg.Pool | pg.ClientBase,
  fromDay: number,
  toDay: number,
  dropBeforeDay: number | null,
): Promise<number> {
  const pooled = q instanceof pg.Pool ? await q.connect() : null;
  const c: pg.ClientBase = pooled ?? (q as pg.ClientBase);
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
    const have = await c.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'sighting'::regclass`,
    );
    const names = new Set(have.rows.map((r) => r.name));
    for (let d = fromDay; d <= toDay; d++) {
      if (!names.has(partitionName(d)))
        await c.query(`CREATE TABLE ${partitionName(d)} PARTITION OF sighting FOR VALUES FROM (${d}) TO (${d + 1})`);
    }
    let dropped = 0;
    if (dropBeforeDay !== null) {
      for (const n of names) {
        const m = /^sighting_d(\d+)$/.exec(n);
        if (m !== null && Number(m[1]) < dropBeforeDay) {
          await c.query(`DROP TABLE ${n}`);
          dropped++;
        }
      }
    }
    await c.query('COMMIT');
    return dropped;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    pooled?.release();
  }
}
