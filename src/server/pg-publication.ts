// What the HTTP handlers read of the published baselines on PostgreSQL: the
// pub_* tables the aggregation writes in one transaction (pg-aggregate.ts),
// read from server.postgres.readUrl (a hot standby) when set. Every node reads
// the same rows in the same order, so it signs the same bytes. A build swaps
// whole tables in (pg-aggregate.ts): reads lock them before their snapshot.
import { Readable } from 'node:stream';
import type pg from 'pg';
import type { BaselineMeta } from '../model/baseline.js';
import { parseKey, prefixRange } from '../baseline/bucket-keys.js';
import type { Publication, PublishedVersion, RowsContent } from './publication.js';
import { bucketOf, inTransaction } from './pg-schema.js';

/** Every bucket and delta read sees one version: a read-only snapshot across its queries. */
const SNAPSHOT = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

/**
 * Taken before the snapshot (the first statement after BEGIN): a build swaps
 * in new pub_process and pub_combo tables (pg-aggregate.ts), and a snapshot
 * taken before the swap would see the new tables empty. Locked first, the
 * read sees the old tables or the new ones, each whole.
 */
async function lockPublished(c: pg.ClientBase): Promise<void> {
  await c.query('LOCK TABLE pub_process, pub_combo IN ACCESS SHARE MODE');
}

/** pub_process rows (sha, observers, bits) as the wire's process tuples: bits only when set. */
function pushProcesses(out: RowsContent, rows: unknown[]): void {
  for (const [sha, n, bits] of rows as Array<[Buffer, number, number]>)
    out.processes.push(bits > 0 ? [sha.toString('hex'), n, bits] : [sha.toString('hex'), n]);
}

/** pub_combo rows (sha, root, port, observers) as the wire's combo tuples. */
function pushCombos(out: RowsContent, rows: unknown[]): void {
  for (const [sha, root, port, n] of rows as Array<[Buffer, string, number, number]>) out.combos.push([sha.toString('hex'), root, port, n]);
}

/** The current version is asked by nearly every request: read at most this often (a new version shows within it). */
const CURRENT_TTL_MS = 1_000;

type Row = Record<string, unknown>;

function versionFrom(r: Row): PublishedVersion {
  return {
    version: r.version as number,
    meta: JSON.parse(r.meta as string) as BaselineMeta,
    publishedMs: r.published_ms as number,
    snapshotFile: `postgresql:pub_snapshot/${r.version as number}`,
    snapshotSha256: r.snapshot_sha256 as string,
    snapshotBytes: r.snapshot_bytes as number,
    snapshotEnvelope: r.snapshot_envelope as string,
    changedProcesses: r.changed_processes as number,
    changedCombos: r.changed_combos as number,
  };
}

export class PgPublication implements Publication {
  private cached: { at: number; v: PublishedVersion | null; horizon: number } | null = null;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number = Date.now,
  ) {}

  private async head(): Promise<{ v: PublishedVersion | null; horizon: number }> {
    const t = this.now();
    if (this.cached !== null && t - this.cached.at < CURRENT_TTL_MS && t >= this.cached.at) return this.cached;
    const r = await this.pool.query(
      `SELECT v.*, (SELECT value FROM pub_kv WHERE key = 'deltaHorizon') AS horizon
       FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM pub_version ORDER BY version DESC LIMIT 1) v ON true`,
    );
    const row = r.rows[0] as Row;
    const v = row.version === null ? null : versionFrom(row);
    const horizon = row.horizon === null ? Number.MAX_SAFE_INTEGER : Number(row.horizon);
    this.cached = { at: t, v, horizon };
    return this.cached;
  }

  async current(): Promise<PublishedVersion | null> {
    return (await this.head()).v;
  }

  async deltaHorizon(): Promise<number> {
    return (await this.head()).horizon;
  }

  published(): void {
    this.cached = null;
  }

  /** One read-only snapshot of the database for all keys: every bucket of the same version. */
  async buckets(keys: readonly string[], since: number | null, hexChars: number): Promise<RowsContent> {
    return inTransaction(
      this.pool,
      async (c) => {
        await lockPublished(c);
        const out: RowsContent = { processes: [], combos: [] };
        const after = since ?? -1;
        const withRemoved = since !== null;
        for (const key of keys) {
          const k = parseKey(key, hexChars);
          if (k === null) continue;
          if (k.kind === 'cell') {
            const sha = Buffer.from(k.sha256, 'hex');
            const r = await c.query({
              text: `SELECT sha, root, port, observers FROM pub_combo WHERE bucket = $1 AND sha = $2 AND rh >= $3 AND rh < $4
                   AND changed > $5 AND (observers > 0 OR $6) ORDER BY rh, root, port`,
              values: [bucketOf(sha), sha, k.rhLo, k.rhHi, after, withRemoved],
              rowMode: 'array',
            });
            pushCombos(out, r.rows);
            continue;
          }
          const { lo, hi } = prefixRange(k.prefix);
          const bLo = bucketOf(lo);
          const bHi = hi === null ? 65_535 : bucketOf(hi);
          const hiBound = hi ?? Buffer.alloc(33, 0xff);
          const procs = await c.query({
            text: `SELECT sha, observers, bits FROM pub_process WHERE bucket >= $1 AND bucket <= $2 AND sha >= $3 AND sha < $4
                 AND changed > $5 AND (observers > 0 OR $6) ORDER BY sha`,
            values: [bLo, bHi, lo, hiBound, after, withRemoved],
            rowMode: 'array',
          });
          pushProcesses(out, procs.rows);
          const combos = await c.query({
            text: `SELECT c.sha, c.root, c.port, c.observers FROM pub_combo c
                 JOIN pub_process p ON p.bucket = c.bucket AND p.sha = c.sha
                 WHERE c.bucket >= $1 AND c.bucket <= $2 AND c.sha >= $3 AND c.sha < $4 AND c.changed > $5
                 AND (c.observers > 0 OR $6) AND p.bits = 0 ORDER BY c.sha, c.rh, c.root, c.port`,
            values: [bLo, bHi, lo, hiBound, after, withRemoved],
            rowMode: 'array',
          });
          pushCombos(out, combos.rows);
        }
        return out;
      },
      SNAPSHOT,
    );
  }

  async delta(since: number): Promise<RowsContent> {
    return inTransaction(
      this.pool,
      async (c) => {
        await lockPublished(c);
        const out: RowsContent = { processes: [], combos: [] };
        const procs = await c.query({
          text: 'SELECT sha, observers, bits FROM pub_process WHERE changed > $1 ORDER BY bucket, sha',
          values: [since],
          rowMode: 'array',
        });
        pushProcesses(out, procs.rows);
        const combos = await c.query({
          text: 'SELECT sha, root, port, observers FROM pub_combo WHERE changed > $1 ORDER BY bucket, sha, rh, root, port',
          values: [since],
          rowMode: 'array',
        });
        pushCombos(out, combos.rows);
        return out;
      },
      SNAPSHOT,
    );
  }

  /** The snapshot file, streamed a stored chunk at a time. */
  async snapshot(v: PublishedVersion): Promise<{ size: number; stream: Readable } | null> {
    const r = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pub_snapshot WHERE version = $1', [v.version]);
    const chunks = (r.rows[0] as { n: number }).n;
    if (chunks === 0) return null;
    const pool = this.pool;
    async function* read(): AsyncGenerator<Buffer> {
      for (let n = 0; n < chunks; n++) {
        const c = await pool.query<{ bytes: Buffer }>('SELECT bytes FROM pub_snapshot WHERE version = $1 AND n = $2', [v.version, n]);
        const row = c.rows[0];
        if (row === undefined) throw new Error(`chunk ${n} of the snapshot of version ${v.version} is gone`);
        yield row.bytes;
      }
    }
    return { size: v.snapshotBytes, stream: Readable.from(read()) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
