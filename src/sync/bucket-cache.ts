// The endpoint's slice of a large global baseline (`<stateDir>/bucket-cache.db`):
// only what this host has needed, so the cache grows with what the host does,
// not with the size of the fleet.
//
// Two kinds of keys name what is fetched and cached:
//   a bucket  `0a1b`            the processes whose sha256 starts with the prefix,
//                               and the combos of the light ones among them;
//   a cell    `<sha256>-B-C`    for a heavy process (a browser talks to hundreds of
//                               thousands of domains fleet-wide), the combos whose
//                               root-domain hash has C as its top B bits.
// The process row of a heavy process carries B (its `bits`); the server raises
// it as the process's combos grow, and the cache then drops the old cells.
//
// Content arrives signed (signature.ts) and is applied in one transaction: the
// cache holds the old rows or the new ones, never half. An event whose bucket or
// cell is not here yet is held (bounded, persisted in the same file) until it
// arrives, or until a timeout after which it is scored as not common; both are
// counted. `reader()` is a BaselineReader over the cache.
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import { policyProblem } from '../model/root-domain.js';
import type { SignedHeader } from '../baseline/signature.js';
import { MAX_CELL_BITS, cellKey, cellOf, parseKey, prefixRange, rootHash, type ParsedKey } from '../baseline/bucket-keys.js';
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE bucket (key TEXT PRIMARY KEY, version INTEGER NOT NULL, fetched_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE sha (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE, observers INTEGER, bits INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE combo (sha_id INTEGER NOT NULL, rh INTEGER NOT NULL, root TEXT NOT NULL, port INTEGER NOT NULL, observers INTEGER NOT NULL,
                       PRIMARY KEY (sha_id, rh, root, port)) WITHOUT ROWID;
   CREATE TABLE pending (id INTEGER PRIMARY KEY, key TEXT NOT NULL, sha TEXT NOT NULL, root TEXT, held_ms INTEGER NOT NULL, payload TEXT NOT NULL);`,
];

/** Rows as shipped: [sha256, observers, cell bits (absent = 0)] and [sha256, root, port, observers]; 0 observers = removed. */
export interface RowsContent {
  processes: Array<[string, number] | [string, number, number]>;
  combos: Array<[string, string, number, number]>;
}

export type ApplyPurpose =
  /** Buckets or cells asked for the first time: same version as the cache or newer. */
  | 'new-buckets'
  /** A refresh of what is cached: must be newer than what the cache is synced to. */
  | 'refresh';

export type ApplyResult =
  | { ok: true; version: number; buckets: number; processRows: number; comboRows: number; skippedRows: number; elapsedMs: number }
  | { ok: false; code: 'older' | 'policy' | 'wrong-kind' | 'bad-content' | 'not-applicable'; error: string };

export interface HeldEvent<T = unknown> {
  id: number;
  key: string;
  heldMs: number;
  payload: T;
}

export interface BucketCacheStats {
  version: number | null;
  syncedVersion: number | null;
  bucketHexChars: number | null;
  buckets: number;
  cells: number;
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

const SHA_RE = /^[0-9a-f]{64}$/;

function contentProblem(c: unknown): string | null {
  if (c === null || typeof c !== 'object') return 'content is not an object';
  const x = c as Record<string, unknown>;
  if (!Array.isArray(x.processes) || !Array.isArray(x.combos)) return 'content has no processes and combos lists';
  for (const p of x.processes as unknown[]) {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || !SHA_RE.test(p[0]) || !Number.isSafeInteger(p[1]))
      return 'a process row is malformed';
    if (p.length > 2 && !(Number.isInteger(p[2]) && (p[2] as number) >= 0 && (p[2] as number) <= MAX_CELL_BITS))
      return 'a process row has bad cell bits';
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
  private readonly db: SqliteDatabase;
  private readonly stmts;
  private readonly now: () => number;
  private metaValue: BaselineMeta | null = null;
  private syncedVersion: number | null = null;
  private hexChars: number | null = null;
  private readonly cached = new Map<string, number>(); // key -> version
  private readonly heavy = new Map<string, number>(); // sha256 -> cell bits, for heavy processes
  private readonly used = new Map<string, number>(); // key -> last use, flushed at sync
  private readonly wanted = new Set<string>();
  private wantListener: ((key: string) => void) | null = null;
  private pendingCount = 0;
  private counters = { held: 0, released: 0, expired: 0, dropped: 0, lookupsWithoutBucket: 0 };
  private closed = false;

  constructor(
    readonly path: string,
    private readonly opts: BucketCacheOptions,
  ) {
    this.now = opts.now ?? Date.now;
    // No memory map and a bounded page cache: resident memory stays flat however large the cache file grows.
    this.db = openSqlite(path, {
      what: 'the bucket cache',
      migrations: MIGRATIONS,
      cacheSizeKiB: opts.cacheSizeKiB ?? 8 * 1024,
      pragmas: ['mmap_size = 0'],
    });
    const db = this.db;
    this.stmts = {
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
      process: db.prepare('SELECT observers FROM sha WHERE sha = ?').pluck(),
      combo: db
        .prepare(
          'SELECT combo.observers FROM combo JOIN sha ON sha.id = combo.sha_id WHERE sha.sha = ? AND combo.rh = ? AND combo.root = ? AND combo.port = ?',
        )
        .pluck(),
      shaRow: db.prepare('SELECT id, bits FROM sha WHERE sha = ?').raw(),
      insertSha: db.prepare('INSERT INTO sha (sha, observers, bits) VALUES (?, ?, ?)'),
      setSha: db.prepare('UPDATE sha SET observers = ?, bits = ? WHERE id = ?'),
      upsertCombo: db.prepare('INSERT OR REPLACE INTO combo (sha_id, rh, root, port, observers) VALUES (?, ?, ?, ?, ?)'),
      deleteCombo: db.prepare('DELETE FROM combo WHERE sha_id = ? AND rh = ? AND root = ? AND port = ?'),
      clearShaCombos: db.prepare('DELETE FROM combo WHERE sha_id = ?'),
      clearCell: db.prepare('DELETE FROM combo WHERE sha_id = (SELECT id FROM sha WHERE sha = ?) AND rh >= ? AND rh < ?'),
      clearCombosRange: db.prepare('DELETE FROM combo WHERE sha_id IN (SELECT id FROM sha WHERE sha >= ? AND sha < ?)'),
      clearCombosFrom: db.prepare('DELETE FROM combo WHERE sha_id IN (SELECT id FROM sha WHERE sha >= ?)'),
      clearShaRange: db.prepare('DELETE FROM sha WHERE sha >= ? AND sha < ?'),
      clearShaFrom: db.prepare('DELETE FROM sha WHERE sha >= ?'),
      upsertBucket: db.prepare(
        'INSERT INTO bucket (key, version, fetched_ms, used_ms) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET version = excluded.version, fetched_ms = excluded.fetched_ms',
      ),
      deleteBucket: db.prepare('DELETE FROM bucket WHERE key = ?'),
      cellsOfSha: db.prepare("SELECT key FROM bucket WHERE key > ? AND key < ? AND key LIKE '%-%'").pluck(),
      touchBucket: db.prepare('UPDATE bucket SET used_ms = max(used_ms, ?) WHERE key = ?'),
      hold: db.prepare('INSERT INTO pending (key, sha, root, held_ms, payload) VALUES (?, ?, ?, ?, ?)'),
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
    for (const [key, version] of this.db.prepare('SELECT key, version FROM bucket').raw().all() as Array<[string, number]>)
      this.cached.set(key, version);
    this.heavy.clear();
    for (const [sha, bits] of this.db.prepare('SELECT sha, bits FROM sha WHERE bits > 0').raw().all() as Array<[Buffer, number]>)
      this.heavy.set(sha.toString('hex'), bits);
    this.pendingCount = this.db.prepare('SELECT count(*) FROM pending').pluck().get() as number;
    for (const k of this.db.prepare('SELECT DISTINCT key FROM pending').pluck().all() as string[])
      if (!this.cached.has(k)) this.wanted.add(k);
  }

  meta(): BaselineMeta | null {
    return this.metaValue;
  }

  /** The version every cached bucket and cell has at least; what a refresh asks changes since. */
  version(): number | null {
    return this.syncedVersion;
  }

  bucketHexChars(): number | null {
    return this.hexChars;
  }

  prefixOf(sha256: string): string | null {
    return this.hexChars === null || sha256.length !== 64 ? null : sha256.slice(0, this.hexChars).toLowerCase();
  }

  /**
   * What must still be fetched before the sha256 (and, with a root domain, its
   * combos) can be scored: a bucket or a cell key; null when all is here.
   */
  missingKeyFor(sha256: string, rootDomain: string | null): string | null {
    const p = this.prefixOf(sha256);
    if (p === null) return sha256.slice(0, 4).toLowerCase();
    if (!this.cached.has(p)) return p;
    if (rootDomain === null) return null;
    const sha = sha256.toLowerCase();
    const bits = this.heavy.get(sha);
    if (bits === undefined) return null;
    const k = cellKey(sha, bits, cellOf(rootHash(rootDomain), bits));
    return this.cached.has(k) ? null : k;
  }

  /** True when an event of this process (and root domain) can be scored from the cache now. */
  readyFor(sha256: string, rootDomain: string | null): boolean {
    return this.missingKeyFor(sha256, rootDomain) === null;
  }

  /** Cached bucket prefixes and cell keys. */
  cachedKeys(): string[] {
    return [...this.cached.keys()].sort();
  }

  /** Called once per newly wanted key (a lookup or a held event needed it). */
  onWant(listener: ((key: string) => void) | null): void {
    this.wantListener = listener;
  }

  wantedKeys(): string[] {
    return [...this.wanted].filter((k) => !this.cached.has(k)).sort();
  }

  private want(key: string): void {
    if (this.wanted.has(key) || this.cached.has(key)) return;
    this.wanted.add(key);
    this.wantListener?.(key);
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

  /** False (and the key wanted) when something is missing. */
  private usable(sha256: string, rootDomain: string | null): boolean {
    const missing = this.missingKeyFor(sha256, rootDomain);
    if (missing !== null) {
      this.counters.lookupsWithoutBucket++;
      this.want(missing);
      return false;
    }
    const nowMs = this.now();
    const p = this.prefixOf(sha256) as string;
    this.used.set(p, nowMs);
    if (rootDomain !== null) {
      const sha = sha256.toLowerCase();
      const bits = this.heavy.get(sha);
      if (bits !== undefined) this.used.set(cellKey(sha, bits, cellOf(rootHash(rootDomain), bits)), nowMs);
    }
    return true;
  }

  /** Observers of the sha256; undefined when unseen or when its bucket is not cached (then it is fetched). */
  process(sha256: string): number | undefined {
    if (!this.usable(sha256, null)) return undefined;
    const v = this.stmts.process.get(Buffer.from(sha256.toLowerCase(), 'hex')) as number | null | undefined;
    return v === null || v === undefined ? undefined : v;
  }

  /** Observers of the combo; 0 when unseen, or when its bucket or cell is not cached (then it is fetched). */
  combo(sha256: string, rootDomain: string, port: number): number {
    if (!this.usable(sha256, rootDomain)) return 0;
    return (
      (this.stmts.combo.get(Buffer.from(sha256.toLowerCase(), 'hex'), rootHash(rootDomain), rootDomain, port) as number | undefined) ?? 0
    );
  }

  // -------------------------------------------------------------------------
  // Held events

  /** Holds an event until what it needs arrives; false (counted) when the hold is full. */
  hold(sha256: string, rootDomain: string | null, payload: unknown): boolean {
    if (this.pendingCount >= this.opts.pendingMaxEvents) {
      this.counters.dropped++;
      return false;
    }
    const key = this.missingKeyFor(sha256, rootDomain) ?? (this.prefixOf(sha256) as string);
    this.stmts.hold.run(key, sha256.toLowerCase(), rootDomain, this.now(), JSON.stringify(payload));
    this.pendingCount++;
    this.counters.held++;
    this.want(key);
    return true;
  }

  /**
   * Takes the held events that can be scored now: `ready` (what they need
   * arrived) and `expired` (held past the timeout: score them as not common).
   * An event whose bucket arrived but whose process turned out heavy waits on
   * for its cell. Removed from the hold in one transaction.
   */
  takeHeld<T = unknown>(): { ready: Array<HeldEvent<T>>; expired: Array<HeldEvent<T>> } {
    const ready: Array<HeldEvent<T>> = [];
    const expired: Array<HeldEvent<T>> = [];
    if (this.pendingCount === 0) return { ready, expired };
    const cutoff = this.now() - this.opts.pendingTimeoutMs;
    const rekeyed: string[] = [];
    this.db.transaction(() => {
      const del = this.db.prepare('DELETE FROM pending WHERE id = ?');
      const rekey = this.db.prepare('UPDATE pending SET key = ? WHERE id = ?');
      const rows = this.db.prepare('SELECT id, key, sha, root, held_ms, payload FROM pending ORDER BY id').raw().all() as Array<
        [number, string, string, string | null, number, string]
      >;
      for (const [id, key, sha, root, heldMs, payload] of rows) {
        const missing = this.missingKeyFor(sha, root);
        if (missing === null) {
          ready.push({ id, key, heldMs, payload: JSON.parse(payload) as T });
          del.run(id);
        } else if (heldMs <= cutoff) {
          expired.push({ id, key, heldMs, payload: JSON.parse(payload) as T });
          del.run(id);
        } else if (missing !== key) {
          rekey.run(missing, id);
          rekeyed.push(missing);
        }
      }
    })();
    for (const k of rekeyed) this.want(k);
    this.pendingCount -= ready.length + expired.length;
    this.counters.released += ready.length;
    this.counters.expired += expired.length;
    return { ready, expired };
  }

  // -------------------------------------------------------------------------
  // Applying signed content

  private clearKey(k: ParsedKey): void {
    if (k.kind === 'cell') {
      this.stmts.clearCell.run(Buffer.from(k.sha256, 'hex'), k.rhLo, k.rhHi);
      return;
    }
    const { lo, hi } = prefixRange(k.prefix);
    if (hi === null) {
      this.stmts.clearCombosFrom.run(lo);
      this.stmts.clearShaFrom.run(lo);
    } else {
      this.stmts.clearCombosRange.run(lo, hi);
      this.stmts.clearShaRange.run(lo, hi);
    }
    // The cells of those processes went with their combos.
    for (const cell of this.stmts.cellsOfSha.all(k.prefix, `${k.prefix}g`) as string[]) this.stmts.deleteBucket.run(cell);
  }

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
    const hex = header.bucketHexChars;
    const resetAll = this.hexChars !== null && this.hexChars !== hex;
    const from = header.fromVersion;
    const keyList = header.kind === 'buckets' ? (header.prefixes ?? []) : [...this.cached.keys()];
    const keys: ParsedKey[] = [];
    for (const k of keyList) {
      const parsed = parseKey(k, hex);
      if (parsed === null) return { ok: false, code: 'bad-content', error: `refused: "${k}" is neither a bucket nor a cell` };
      keys.push(parsed);
    }
    if (from !== null && !resetAll) {
      for (const k of keyList) {
        const held = this.cached.get(k);
        if (held !== undefined && held < from)
          return { ok: false, code: 'not-applicable', error: `refused: changes since ${from} cannot update ${k}, held at version ${held}` };
        if (held === undefined && header.kind === 'buckets')
          return { ok: false, code: 'not-applicable', error: `refused: changes for ${k}, which is not cached` };
      }
    }
    const buckets = new Set<string>();
    const cells = new Map<string, Array<{ bits: number; lo: number; hi: number }>>();
    for (const k of keys) {
      if (k.kind === 'bucket') buckets.add(k.prefix);
      else {
        const list = cells.get(k.sha256) ?? [];
        list.push({ bits: k.bits, lo: k.rhLo, hi: k.rhHi });
        cells.set(k.sha256, list);
      }
    }
    const inCell = (sha: string, rh: number): boolean => (cells.get(sha) ?? []).some((c) => rh >= c.lo && rh < c.hi);
    const nowMs = this.now();
    let processRows = 0;
    let comboRows = 0;
    let skippedRows = 0;
    this.db.transaction(() => {
      if (resetAll) {
        this.db.exec('DELETE FROM combo; DELETE FROM sha; DELETE FROM bucket;');
        this.cached.clear();
      }
      if (from === null) for (const k of keys) this.clearKey(k);
      const shaIdOf = (sha: string, create: boolean): number | null => {
        const row = this.stmts.shaRow.get(Buffer.from(sha, 'hex')) as [number, number] | undefined;
        if (row !== undefined) return row[0];
        if (!create) return null;
        return Number(this.stmts.insertSha.run(Buffer.from(sha, 'hex'), null, 0).lastInsertRowid);
      };
      for (const p of rows.processes) {
        const [sha, n] = p;
        const bits = p[2] ?? 0;
        if (!buckets.has(sha.slice(0, hex))) {
          skippedRows++;
          continue;
        }
        const b = Buffer.from(sha, 'hex');
        const row = this.stmts.shaRow.get(b) as [number, number] | undefined;
        if (row === undefined) {
          if (n > 0) this.stmts.insertSha.run(b, n, bits);
        } else {
          if (row[1] !== bits) {
            // Its cells changed size: the cached ones no longer say what they cover.
            this.stmts.clearShaCombos.run(row[0]);
            for (const cell of this.stmts.cellsOfSha.all(`${sha}-`, `${sha}.`) as string[]) this.stmts.deleteBucket.run(cell);
          }
          this.stmts.setSha.run(n > 0 ? n : null, bits, row[0]);
        }
        processRows++;
      }
      for (const [sha, root, port, n] of rows.combos) {
        const rh = rootHash(root);
        if (!buckets.has(sha.slice(0, hex)) && !inCell(sha, rh)) {
          skippedRows++;
          continue;
        }
        const id = shaIdOf(sha, n > 0);
        if (id !== null) {
          if (n > 0) this.stmts.upsertCombo.run(id, rh, root, port, n);
          else this.stmts.deleteCombo.run(id, rh, root, port);
        }
        comboRows++;
      }
      for (const k of keyList) this.stmts.upsertBucket.run(k, v, nowMs, nowMs);
      if (newest === null || v >= newest) this.stmts.setMeta.run('meta', JSON.stringify(header.meta));
      this.stmts.setMeta.run('bucketHexChars', String(hex));
      const minVersion = this.db.prepare('SELECT min(version) FROM bucket').pluck().get() as number | null;
      this.stmts.setMeta.run('syncedVersion', String(minVersion ?? v));
    })();
    this.load();
    for (const k of keyList) this.wanted.delete(k);
    return {
      ok: true,
      version: v,
      buckets: keyList.length,
      processRows,
      comboRows,
      skippedRows,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  /** Writes last-use times and drops buckets and cells unused since `idleBeforeMs`. */
  flushUsage(idleBeforeMs: number): { evicted: number } {
    let evicted = 0;
    const hex = this.hexChars ?? 4;
    this.db.transaction(() => {
      for (const [k, t] of this.used) this.stmts.touchBucket.run(t, k);
      this.used.clear();
      const idle = this.db.prepare('SELECT key FROM bucket WHERE used_ms < ?').pluck().all(idleBeforeMs) as string[];
      for (const k of idle) {
        const parsed = parseKey(k, hex);
        if (parsed !== null) this.clearKey(parsed);
        this.stmts.deleteBucket.run(k);
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
    let cellCount = 0;
    for (const k of this.cached.keys()) if (k.includes('-')) cellCount++;
    return {
      version: this.metaValue?.version ?? null,
      syncedVersion: this.syncedVersion,
      bucketHexChars: this.hexChars,
      buckets: this.cached.size - cellCount,
      cells: cellCount,
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
