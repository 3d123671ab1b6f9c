// What the server publishes (`<stateDir>/publish.db`): every combo and process
// of the current baseline keyed by sha256, each with the version in which its
// count last changed. That one table answers the ways an endpoint asks:
//   a bucket   = rows whose sha256 starts with a prefix (a primary-key range),
//                less the combos of heavy processes (`bits` > 0),
//   a cell     = combos of one heavy process whose root-domain hash `rh` falls
//                in the cell's range (a primary-key range too),
//   a delta    = rows changed after version V (a removed row stays, with 0
//                observers, for `deltaHistoryVersions` versions),
//   both       = rows of some buckets changed after V.
// The snapshot itself is the baseline file the builder wrote, kept beside it.
// The aggregation writes one version in one transaction, so a reader sees the
// old version or the new one, never half of one.
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';
import type { BaselineMeta } from '../model/baseline.js';
import { parseKey, prefixRange } from '../baseline/bucket-keys.js';
import type { Awaitable } from './store.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE version (version INTEGER PRIMARY KEY, meta TEXT NOT NULL, published_ms INTEGER NOT NULL,
                         snapshot_file TEXT NOT NULL, snapshot_sha256 TEXT NOT NULL, snapshot_bytes INTEGER NOT NULL,
                         snapshot_envelope TEXT NOT NULL, changed_processes INTEGER NOT NULL, changed_combos INTEGER NOT NULL);
   CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE pub_process (sha BLOB PRIMARY KEY, observers INTEGER NOT NULL, changed INTEGER NOT NULL,
                             bits INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
   CREATE TABLE pub_combo (sha BLOB NOT NULL, rh INTEGER NOT NULL, root TEXT NOT NULL, port INTEGER NOT NULL,
                           observers INTEGER NOT NULL, changed INTEGER NOT NULL, PRIMARY KEY (sha, rh, root, port)) WITHOUT ROWID;
   CREATE INDEX pub_process_changed ON pub_process (changed);
   CREATE INDEX pub_combo_changed ON pub_combo (changed);`,
];

export interface PublishedVersion {
  version: number;
  meta: BaselineMeta;
  publishedMs: number;
  snapshotFile: string;
  snapshotSha256: string;
  snapshotBytes: number;
  /** The signed envelope line of the snapshot (with its newline). */
  snapshotEnvelope: string;
  changedProcesses: number;
  changedCombos: number;
}

/** Rows as shipped: [sha256 hex, observers, cell bits when heavy] and [sha256 hex, root, port, observers]; 0 observers = removed. */
export type ProcessRow = [string, number] | [string, number, number];
export type ComboRow = [string, string, number, number];

export interface RowsContent {
  processes: ProcessRow[];
  combos: ComboRow[];
}

/**
 * Opens publish.db, creating and migrating it. `queryOnly` is the HTTP side's
 * guard; it is set after the migrations, which openSqlite's pragmas precede.
 */
export function openPublishDb(path: string, opts: { queryOnly: boolean; cacheSizeKiB?: number }): SqliteDatabase {
  const db = openSqlite(path, { what: 'publish.db', migrations: MIGRATIONS, busyTimeoutMs: 10_000, cacheSizeKiB: opts.cacheSizeKiB });
  if (opts.queryOnly) db.pragma('query_only = 1');
  return db;
}

function versionFrom(r: Record<string, unknown>): PublishedVersion {
  return {
    version: r.version as number,
    meta: JSON.parse(r.meta as string) as BaselineMeta,
    publishedMs: r.published_ms as number,
    snapshotFile: r.snapshot_file as string,
    snapshotSha256: r.snapshot_sha256 as string,
    snapshotBytes: r.snapshot_bytes as number,
    snapshotEnvelope: r.snapshot_envelope as string,
    changedProcesses: r.changed_processes as number,
    changedCombos: r.changed_combos as number,
  };
}

/** What the HTTP handlers read of the published baselines: publish.db here, PostgreSQL tables in pg-publication.ts. */
export interface Publication {
  current(): Awaitable<PublishedVersion | null>;
  /** Deltas can start from this version or later. */
  deltaHorizon(): Awaitable<number>;
  buckets(keys: readonly string[], since: number | null, hexChars: number): Awaitable<RowsContent>;
  delta(since: number): Awaitable<RowsContent>;
  /** The snapshot file's bytes of a published version; null when they are gone. */
  snapshot(v: PublishedVersion): Awaitable<{ size: number; stream: Readable } | null>;
  /** A version was published by this node: forget what was read before it. */
  published(): void;
  close(): Awaitable<void>;
}

/** Read side, used by the HTTP handlers (main thread). */
export class PublicationReader implements Publication {
  private readonly db: SqliteDatabase;
  private readonly stmts;
  private closed = false;

  constructor(path: string) {
    this.db = openPublishDb(path, { queryOnly: true });
    const db = this.db;
    this.stmts = {
      current: db.prepare('SELECT * FROM version ORDER BY version DESC LIMIT 1'),
      byVersion: db.prepare('SELECT * FROM version WHERE version = ?'),
      horizon: db.prepare("SELECT value FROM kv WHERE key = 'deltaHorizon'").pluck(),
      procRange: db.prepare(
        'SELECT sha, observers, bits FROM pub_process WHERE sha >= ? AND sha < ? AND changed > ? AND (observers > 0 OR ? > 0)',
      ),
      procFrom: db.prepare('SELECT sha, observers, bits FROM pub_process WHERE sha >= ? AND changed > ? AND (observers > 0 OR ? > 0)'),
      comboRange: db.prepare(
        `SELECT c.sha, c.root, c.port, c.observers FROM pub_combo c JOIN pub_process p ON p.sha = c.sha
         WHERE c.sha >= ? AND c.sha < ? AND c.changed > ? AND (c.observers > 0 OR ? > 0) AND p.bits = 0`,
      ),
      comboFrom: db.prepare(
        `SELECT c.sha, c.root, c.port, c.observers FROM pub_combo c JOIN pub_process p ON p.sha = c.sha
         WHERE c.sha >= ? AND c.changed > ? AND (c.observers > 0 OR ? > 0) AND p.bits = 0`,
      ),
      comboCell: db.prepare(
        'SELECT sha, root, port, observers FROM pub_combo WHERE sha = ? AND rh >= ? AND rh < ? AND changed > ? AND (observers > 0 OR ? > 0)',
      ),
      procChanged: db.prepare('SELECT sha, observers, bits FROM pub_process WHERE changed > ?'),
      comboChanged: db.prepare('SELECT sha, root, port, observers FROM pub_combo WHERE changed > ?'),
      changedCount: db
        .prepare('SELECT (SELECT count(*) FROM pub_process WHERE changed > ?) + (SELECT count(*) FROM pub_combo WHERE changed > ?)')
        .pluck(),
    };
    for (const s of [
      this.stmts.procRange,
      this.stmts.procFrom,
      this.stmts.comboRange,
      this.stmts.comboFrom,
      this.stmts.comboCell,
      this.stmts.procChanged,
      this.stmts.comboChanged,
    ])
      s.raw(true);
  }

  current(): PublishedVersion | null {
    const r = this.stmts.current.get() as Record<string, unknown> | undefined;
    return r === undefined ? null : versionFrom(r);
  }

  version(v: number): PublishedVersion | null {
    const r = this.stmts.byVersion.get(v) as Record<string, unknown> | undefined;
    return r === undefined ? null : versionFrom(r);
  }

  /** Deltas can start from this version or later. */
  deltaHorizon(): number {
    const v = this.stmts.horizon.get() as string | undefined;
    return v === undefined ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  /**
   * Rows of the given buckets: all present rows (since null), or those changed
   * after `since`, removals included. One read transaction, so every bucket is
   * of the same version.
   */
  buckets(keys: readonly string[], since: number | null, hexChars: number): RowsContent {
    return this.db.transaction((): RowsContent => {
      const out: RowsContent = { processes: [], combos: [] };
      const after = since ?? -1;
      const withRemoved = since === null ? 0 : 1;
      for (const key of keys) {
        const k = parseKey(key, hexChars);
        if (k === null) continue;
        if (k.kind === 'cell') {
          for (const [sha, root, port, n] of this.stmts.comboCell.all(
            Buffer.from(k.sha256, 'hex'),
            k.rhLo,
            k.rhHi,
            after,
            withRemoved,
          ) as Array<[Buffer, string, number, number]>) {
            out.combos.push([sha.toString('hex'), root, port, n]);
          }
          continue;
        }
        const { lo, hi } = prefixRange(k.prefix);
        const procs = (
          hi === null ? this.stmts.procFrom.all(lo, after, withRemoved) : this.stmts.procRange.all(lo, hi, after, withRemoved)
        ) as Array<[Buffer, number, number]>;
        for (const [sha, n, bits] of procs) out.processes.push(bits > 0 ? [sha.toString('hex'), n, bits] : [sha.toString('hex'), n]);
        const combos = (
          hi === null ? this.stmts.comboFrom.all(lo, after, withRemoved) : this.stmts.comboRange.all(lo, hi, after, withRemoved)
        ) as Array<[Buffer, string, number, number]>;
        for (const [sha, root, port, n] of combos) out.combos.push([sha.toString('hex'), root, port, n]);
      }
      return out;
    })();
  }

  snapshot(v: PublishedVersion): { size: number; stream: Readable } | null {
    try {
      const size = statSync(v.snapshotFile).size;
      return { size, stream: createReadStream(v.snapshotFile) };
    } catch {
      return null;
    }
  }

  published(): void {
    // every read goes to publish.db: nothing held to forget
  }

  changedSinceCount(since: number): number {
    return this.stmts.changedCount.get(since, since) as number;
  }

  /** Every row changed after `since`, removals included. */
  delta(since: number): RowsContent {
    return this.db.transaction((): RowsContent => {
      const out: RowsContent = { processes: [], combos: [] };
      for (const [sha, n, bits] of this.stmts.procChanged.all(since) as Array<[Buffer, number, number]>) {
        out.processes.push(bits > 0 ? [sha.toString('hex'), n, bits] : [sha.toString('hex'), n]);
      }
      for (const [sha, root, port, n] of this.stmts.comboChanged.all(since) as Array<[Buffer, string, number, number]>)
        out.combos.push([sha.toString('hex'), root, port, n]);
      return out;
    })();
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/** Serialises rows compactly; `JSON.parse` reads them back. */
export function encodeRows(c: RowsContent): Buffer {
  return Buffer.from(JSON.stringify(c), 'utf8');
}
