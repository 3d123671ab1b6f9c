// The endpoint's slice of a large global baseline (`<stateDir>/bucket-cache.db`):
// only the buckets (sha256 prefixes) of the processes this host has run, so
// the cache grows with what the host runs, not with the size of the fleet.
//
// A bucket arrives signed (signature.ts) and is applied in one transaction: the
// cache holds the old rows or the new ones, never half. An event whose bucket
// is not here yet is held (bounded, persisted in the same file) until the
// bucket arrives, or until a timeout after which it is scored as not common;
// both outcomes are counted. `reader()` is a BaselineReader over the cache.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import { policyProblem } from '../enrich/root-domain.js';
import type { SignedHeader } from './signature.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE bucket (prefix TEXT PRIMARY KEY, version INTEGER NOT NULL, fetched_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE sha (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE, observers INTEGER);
   CREATE TABLE combo (sha_id INTEGER NOT NULL, root TEXT NOT NULL, port INTEGER NOT NULL, observers INTEGER NOT NULL,
                       PRIMARY KEY (sha_id, root, port)) WITHOUT ROWID;
   CREATE TABLE pending (id INTEGER PRIMARY KEY, prefix TEXT NOT NULL, held_ms INTEGER NOT NULL, payload TEXT NOT NULL);
   CREATE INDEX pending_by_prefix ON pending (prefix);`,
];

export interface RowsContent {
  processes: Array<[string, number]>;
  combos: Array<[string, string, number, number]>;
}

export type ApplyPurpose =
  /** Buckets asked for the first time: same version as the cache or newer. */
  | 'new-buckets'
  /** A refresh of cached buckets: must be newer than what the cache is synced to. */
  | 'refresh';

export type ApplyResult =
  | { ok: true; version: number; buckets: number; processRows: number; comboRows: number; skippedRows: number; elapsedMs: number }
  | { ok: false; code: 'older' | 'policy' | 'wrong-kind' | 'bad-content' | 'not-applicable'; error: string };

export interface HeldEvent<T = unknown> {
  id: number;
  prefix: string;
  heldMs: number;
  payload: T;
}

export interface BucketCacheStats {
  version: number | null;
  syncedVersion: number | null;
  bucketHexChars: number | null;
  buckets: number;
  processRows: number;
  comboRows: number;
  sizeBytes: number;
  pending: number;
  heldTotal: number;
  releasedTotal: number;
  expiredTotal: number;
  droppedTotal: number;
  lookupsWithoutBucketTotal: number;
}

export interface BucketCacheOptions {
  pendingMaxEvents: number;
  pendingTimeoutMs: number;
  /** SQLite page cache, KiB: bounded so resident memory does not grow with the cache. */
  cacheSizeKiB?: number;
  now?: () => number;
}

function prefixBounds(prefix: string): { lo: Buffer; hi: Buffer | null } {
  const lo = Buffer.from(prefix.padEnd(64, '0'), 'hex');
  const n = BigInt(`0x${prefix}`) + 1n;
  if (n >= 16n ** BigInt(prefix.length)) return { lo, hi: null };
  return { lo, hi: Buffer.from(n.toString(16).padStart(prefix.length, '0').padEnd(64, '0'), 'hex') };
}

const SHA_RE = /^[0-9a-f]{64}$/;

function contentProblem(c: unknown): string | null {
  if (c === null || typeof c !== 'object') return 'content is not an object';
  const x = c as Record<string, unknown>;
  if (!Array.isArray(x.processes) || !Array.isArray(x.combos)) return 'content has no processes and combos lists';
  for (const p of x.processes as unknown[]) {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || !SHA_RE.test(p[0]) || !Number.isSafeInteger(p[1]))
      return 'a process row is malformed';
  }
  for (const r of x.combos as unknown[]) {
    if (
      !Array.isArray(r) ||
      typeof r[0] !== 'string' ||
      !SHA_RE.test(r[0]) ||
      typeof r[1] !== 'string' ||
      !Number.isInteger(r[2]) ||
      !Number.isSafeInteger(r[3])
    ) {
      return 'a combo row is malformed';
    }
  }
  return null;
}

export class BucketCache {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly now: () => number;
  private metaValue: BaselineMeta | null = null;
  private syncedVersion: number | null = null;
  private hexChars: number | null = null;
  private readonly cached = new Map<string, number>(); // prefix -> bucket version
  private readonly used = new Map<string, number>(); // prefix -> last use, flushed at sync
  private readonly wanted = new Set<string>();
  private wantListener: ((prefix: string) => void) | null = null;
  private pendingCount = 0;
  private counters = { held: 0, released: 0, expired: 0, dropped: 0, lookupsWithoutBucket: 0 };
  private closed = false;

  constructor(
    readonly path: string,
    private readonly opts: BucketCacheOptions,
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.now = opts.now ?? Date.now;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('mmap_size = 0');
    this.db.pragma(`cache_size = ${-(opts.cacheSizeKiB ?? 8 * 1024)}`);
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) throw new Error(`${path}: schema version ${current} is newer than this rarecon`);
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
    const db = this.db;
    this.stmts = {
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
      process: db.prepare('SELECT observers FROM sha WHERE sha = ?').pluck(),
      combo: db
        .prepare(
          'SELECT combo.observers FROM combo JOIN sha ON sha.id = combo.sha_id WHERE sha.sha = ? AND combo.root = ? AND combo.port = ?',
        )
        .pluck(),
      shaId: db.prepare('SELECT id FROM sha WHERE sha = ?').pluck(),
      insertSha: db.prepare('INSERT INTO sha (sha, observers) VALUES (?, ?)'),
      setShaObservers: db.prepare('UPDATE sha SET observers = ? WHERE id = ?'),
      upsertCombo: db.prepare('INSERT OR REPLACE INTO combo (sha_id, root, port, observers) VALUES (?, ?, ?, ?)'),
      deleteCombo: db.prepare('DELETE FROM combo WHERE sha_id = ? AND root = ? AND port = ?'),
      clearCombosRange: db.prepare('DELETE FROM combo WHERE sha_id IN (SELECT id FROM sha WHERE sha >= ? AND sha < ?)'),
      clearCombosFrom: db.prepare('DELETE FROM combo WHERE sha_id IN (SELECT id FROM sha WHERE sha >= ?)'),
      clearShaRange: db.prepare('DELETE FROM sha WHERE sha >= ? AND sha < ?'),
      clearShaFrom: db.prepare('DELETE FROM sha WHERE sha >= ?'),
      upsertBucket: db.prepare(
        'INSERT INTO bucket (prefix, version, fetched_ms, used_ms) VALUES (?, ?, ?, ?) ON CONFLICT (prefix) DO UPDATE SET version = excluded.version, fetched_ms = excluded.fetched_ms',
      ),
      deleteBucket: db.prepare('DELETE FROM bucket WHERE prefix = ?'),
      touchBucket: db.prepare('UPDATE bucket SET used_ms = max(used_ms, ?) WHERE prefix = ?'),
      hold: db.prepare('INSERT INTO pending (prefix, held_ms, payload) VALUES (?, ?, ?)'),
    };
    this.load();
  }

  private load(): void {
    const m = this.stmts.getMeta.get('meta') as string | undefined;
    this.metaValue = m === undefined ? null : (JSON.parse(m) as BaselineMeta);
    const s = this.stmts.getMeta.get('syncedVersion') as string | undefined;
    this.syncedVersion = s === undefined ? null : Number(s);
    const h = this.stmts.getMeta.get('bucketHexChars') as string | undefined;
    this.hexChars = h === undefined ? null : Number(h);
    this.cached.clear();
    for (const [prefix, version] of this.db.prepare('SELECT prefix, version FROM bucket').raw().all() as Array<[string, number]>)
      this.cached.set(prefix, version);
    this.pendingCount = this.db.prepare('SELECT count(*) FROM pending').pluck().get() as number;
    for (const p of this.db.prepare('SELECT DISTINCT prefix FROM pending').pluck().all() as string[])
      if (!this.cached.has(p)) this.wanted.add(p);
  }

  meta(): BaselineMeta | null {
    return this.metaValue;
  }

  /** The version every cached bucket has at least; what a refresh asks changes since. */
  version(): number | null {
    return this.syncedVersion;
  }

  bucketHexChars(): number | null {
    return this.hexChars;
  }

  prefixOf(sha256: string): string | null {
    return this.hexChars === null || sha256.length !== 64 ? null : sha256.slice(0, this.hexChars).toLowerCase();
  }

  hasBucketFor(sha256: string): boolean {
    const p = this.prefixOf(sha256);
    return p !== null && this.cached.has(p);
  }

  cachedPrefixes(): string[] {
    return [...this.cached.keys()].sort();
  }

  /** Called once per newly wanted prefix (an uncached bucket was looked up or an event was held). */
  onWant(listener: ((prefix: string) => void) | null): void {
    this.wantListener = listener;
  }

  wantedPrefixes(): string[] {
    return [...this.wanted].filter((p) => !this.cached.has(p)).sort();
  }

  private want(prefix: string): void {
    if (this.wanted.has(prefix) || this.cached.has(prefix)) return;
    this.wanted.add(prefix);
    this.wantListener?.(prefix);
  }

  /** A BaselineReader over the cache; null until a first signed answer gave the cache its metadata. */
  reader(): BaselineReader | null {
    if (this.metaValue === null) return null;
    return {
      meta: () => this.metaValue as BaselineMeta,
      process: (sha256) => this.process(sha256),
      combo: (sha256, root, port) => this.combo(sha256, root, port),
    };
  }

  private usable(sha256: string): boolean {
    const p = this.prefixOf(sha256);
    if (p === null) return false;
    if (!this.cached.has(p)) {
      this.counters.lookupsWithoutBucket++;
      this.want(p);
      return false;
    }
    this.used.set(p, this.now());
    return true;
  }

  /** Observers of the sha256; undefined when unseen or when its bucket is not cached (then it is fetched). */
  process(sha256: string): number | undefined {
    if (!this.usable(sha256)) return undefined;
    const v = this.stmts.process.get(Buffer.from(sha256.toLowerCase(), 'hex')) as number | null | undefined;
    return v === null || v === undefined ? undefined : v;
  }

  combo(sha256: string, rootDomain: string, port: number): number {
    if (!this.usable(sha256)) return 0;
    return (this.stmts.combo.get(Buffer.from(sha256.toLowerCase(), 'hex'), rootDomain, port) as number | undefined) ?? 0;
  }

  // -------------------------------------------------------------------------
  // Held events

  /** Holds an event until the bucket of `sha256` arrives; false (counted) when the hold is full. */
  hold(sha256: string, payload: unknown): boolean {
    const p = this.prefixOf(sha256) ?? sha256.slice(0, 4).toLowerCase();
    if (this.pendingCount >= this.opts.pendingMaxEvents) {
      this.counters.dropped++;
      return false;
    }
    this.stmts.hold.run(p, this.now(), JSON.stringify(payload));
    this.pendingCount++;
    this.counters.held++;
    this.want(p);
    return true;
  }

  /**
   * Takes the held events that can be scored now: `ready` (their bucket arrived)
   * and `expired` (held past the timeout: score them as not common). Removed
   * from the hold in one transaction.
   */
  takeHeld<T = unknown>(): { ready: Array<HeldEvent<T>>; expired: Array<HeldEvent<T>> } {
    const ready: Array<HeldEvent<T>> = [];
    const expired: Array<HeldEvent<T>> = [];
    if (this.pendingCount === 0) return { ready, expired };
    const cutoff = this.now() - this.opts.pendingTimeoutMs;
    this.db.transaction(() => {
      const del = this.db.prepare('DELETE FROM pending WHERE id = ?');
      for (const [id, prefix, heldMs, payload] of this.db
        .prepare('SELECT id, prefix, held_ms, payload FROM pending ORDER BY id')
        .raw()
        .all() as Array<[number, string, number, string]>) {
        const ev: HeldEvent<T> = { id, prefix, heldMs, payload: JSON.parse(payload) as T };
        if (this.cached.has(prefix)) ready.push(ev);
        else if (heldMs <= cutoff) expired.push(ev);
        else continue;
        del.run(id);
      }
    })();
    this.pendingCount -= ready.length + expired.length;
    this.counters.released += ready.length;
    this.counters.expired += expired.length;
    return { ready, expired };
  }

  // -------------------------------------------------------------------------
  // Applying signed content

  /**
   * Applies verified content. The header was checked by verifyEnvelope/checkContent;
   * this checks what only the cache knows: version order, policy, coverage.
   */
  apply(header: SignedHeader, content: unknown, purpose: ApplyPurpose): ApplyResult {
    const started = performance.now();
    if (header.kind !== 'buckets' && header.kind !== 'delta')
      return { ok: false, code: 'wrong-kind', error: `a ${header.kind} cannot be applied to the bucket cache` };
    const policy = policyProblem(header.meta.policy);
    if (policy !== null) return { ok: false, code: 'policy', error: `refused: ${policy}` };
    const v = header.meta.version;
    const newest = this.metaValue?.version ?? null;
    if (purpose === 'refresh' && this.syncedVersion !== null && v <= this.syncedVersion) {
      return { ok: false, code: 'older', error: `refused: version ${v} is not newer than the version ${this.syncedVersion} held` };
    }
    if (purpose === 'new-buckets' && newest !== null && v < newest) {
      return { ok: false, code: 'older', error: `refused: version ${v} is older than the version ${newest} held` };
    }
    const problem = contentProblem(content);
    if (problem !== null) return { ok: false, code: 'bad-content', error: `refused: ${problem}` };
    const rows = content as RowsContent;
    const resetAll = this.hexChars !== null && this.hexChars !== header.bucketHexChars;
    const from = header.fromVersion;
    const prefixes = header.kind === 'buckets' ? (header.prefixes ?? []) : [...this.cached.keys()];
    if (from !== null && !resetAll) {
      for (const p of prefixes) {
        const bv = this.cached.get(p);
        if (bv !== undefined && bv < from)
          return {
            ok: false,
            code: 'not-applicable',
            error: `refused: changes since ${from} cannot update bucket ${p} held at version ${bv}`,
          };
        if (bv === undefined && header.kind === 'buckets')
          return { ok: false, code: 'not-applicable', error: `refused: changes for bucket ${p}, which is not cached` };
      }
    }
    const nowMs = this.now();
    let processRows = 0;
    let comboRows = 0;
    let skippedRows = 0;
    this.db.transaction(() => {
      if (resetAll) {
        this.db.exec('DELETE FROM combo; DELETE FROM sha; DELETE FROM bucket;');
        this.cached.clear();
      }
      const covered = new Set(prefixes);
      const hex = header.bucketHexChars;
      if (from === null) {
        for (const p of prefixes) {
          const { lo, hi } = prefixBounds(p);
          if (hi === null) {
            this.stmts.clearCombosFrom.run(lo);
            this.stmts.clearShaFrom.run(lo);
          } else {
            this.stmts.clearCombosRange.run(lo, hi);
            this.stmts.clearShaRange.run(lo, hi);
          }
        }
      }
      const shaIdOf = (sha: string, create: boolean): number | null => {
        const b = Buffer.from(sha, 'hex');
        const id = this.stmts.shaId.get(b) as number | undefined;
        if (id !== undefined) return id;
        if (!create) return null;
        return Number(this.stmts.insertSha.run(b, null).lastInsertRowid);
      };
      for (const [sha, n] of rows.processes) {
        if (!covered.has(sha.slice(0, hex))) {
          skippedRows++;
          continue;
        }
        const id = shaIdOf(sha, n > 0);
        if (id !== null) this.stmts.setShaObservers.run(n > 0 ? n : null, id);
        processRows++;
      }
      for (const [sha, root, port, n] of rows.combos) {
        if (!covered.has(sha.slice(0, hex))) {
          skippedRows++;
          continue;
        }
        const id = shaIdOf(sha, n > 0);
        if (id !== null) {
          if (n > 0) this.stmts.upsertCombo.run(id, root, port, n);
          else this.stmts.deleteCombo.run(id, root, port);
        }
        comboRows++;
      }
      for (const p of prefixes) {
        this.stmts.upsertBucket.run(p, v, nowMs, nowMs);
      }
      if (newest === null || v >= newest) this.stmts.setMeta.run('meta', JSON.stringify(header.meta));
      this.stmts.setMeta.run('bucketHexChars', String(hex));
      const minVersion = this.db.prepare('SELECT min(version) FROM bucket').pluck().get() as number | null;
      this.stmts.setMeta.run('syncedVersion', String(minVersion ?? v));
    })();
    this.load();
    for (const p of prefixes) this.wanted.delete(p);
    return {
      ok: true,
      version: v,
      buckets: prefixes.length,
      processRows,
      comboRows,
      skippedRows,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  /** Writes last-use times and drops buckets unused since `idleBeforeMs`. */
  flushUsage(idleBeforeMs: number): { evicted: number } {
    let evicted = 0;
    this.db.transaction(() => {
      for (const [p, t] of this.used) this.stmts.touchBucket.run(t, p);
      this.used.clear();
      const idle = this.db.prepare('SELECT prefix FROM bucket WHERE used_ms < ?').pluck().all(idleBeforeMs) as string[];
      for (const p of idle) {
        const { lo, hi } = prefixBounds(p);
        if (hi === null) {
          this.stmts.clearCombosFrom.run(lo);
          this.stmts.clearShaFrom.run(lo);
        } else {
          this.stmts.clearCombosRange.run(lo, hi);
          this.stmts.clearShaRange.run(lo, hi);
        }
        this.stmts.deleteBucket.run(p);
        evicted++;
      }
    })();
    if (evicted > 0) this.load();
    return { evicted };
  }

  sizeBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const size = this.db.pragma('page_size', { simple: true }) as number;
    return pages * size;
  }

  stats(): BucketCacheStats {
    const one = (sql: string): number => this.db.prepare(sql).pluck().get() as number;
    return {
      version: this.metaValue?.version ?? null,
      syncedVersion: this.syncedVersion,
      bucketHexChars: this.hexChars,
      buckets: this.cached.size,
      processRows: one('SELECT count(*) FROM sha WHERE observers IS NOT NULL'),
      comboRows: one('SELECT count(*) FROM combo'),
      sizeBytes: this.sizeBytes(),
      pending: this.pendingCount,
      heldTotal: this.counters.held,
      releasedTotal: this.counters.released,
      expiredTotal: this.counters.expired,
      droppedTotal: this.counters.dropped,
      lookupsWithoutBucketTotal: this.counters.lookupsWithoutBucket,
    };
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // closing anyway
    }
    this.db.close();
  }
}
