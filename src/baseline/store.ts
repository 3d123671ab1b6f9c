// Read path of a baseline file (format.ts): opened read-only, bounded memory
// (fixed page cache, no mmap, fixed-size lookup caches), synchronous lookups.
import Database from 'better-sqlite3';
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import { DEFAULT_BASELINE_STORE, type BaselineStoreConfig } from '../config/defaults.js';
import { policyProblem } from '../model/root-domain.js';
import { FORMAT_VERSION, REQUIRED_TABLES } from './format.js';
import { sqliteHeaderProblem } from './file-header.js';
import { decodeMeta } from './meta-codec.js';
import { decodeSha256, SHA256_BYTES } from './hex.js';
import { comboCheck, comboHash, comboKey, hashCombo } from './combo-key.js';
import { CACHE_MISS, ComboCache, PROCESS_ABSENT, ProcessCache, RecentAnswers, type ShaAnswers } from './lookup-cache.js';

export type OpenBaselineErrorCode =
  'missing-file' | 'unreadable' | 'not-sqlite' | 'truncated' | 'corrupt' | 'wrong-format-version' | 'bad-meta' | 'policy';

export type OpenBaselineResult = { ok: true; baseline: SqliteBaseline } | { ok: false; code: OpenBaselineErrorCode; error: string };

/** Hits were answered from memory (either cache level), misses by SQLite. */
export interface BaselineCacheStats {
  processHits: number;
  processMisses: number;
  comboHits: number;
  comboMisses: number;
}

function fail(path: string, code: OpenBaselineErrorCode, detail: string): OpenBaselineResult {
  return { ok: false, code, error: `baseline ${path}: ${detail}` };
}

function checkConfig(cfg: BaselineStoreConfig): void {
  for (const [name, v] of [
    ['cacheSizeKiB', cfg.cacheSizeKiB],
    ['lookupCacheEntries', cfg.lookupCacheEntries],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1)
      throw new RangeError(`baseline store config: ${name} must be a positive integer, got ${String(v)}`);
  }
}

/**
 * Opens a baseline file for lookups. Every expected failure (missing, not SQLite,
 * truncated, corrupt, another format version, incomplete meta, a root-domain
 * policy this endpoint cannot apply) is an error value naming the file.
 * Throws only for an invalid `cfg` (a configuration bug).
 */
export function openBaseline(path: string, cfg: BaselineStoreConfig = DEFAULT_BASELINE_STORE): OpenBaselineResult {
  checkConfig(cfg);
  const header = sqliteHeaderProblem(path);
  if (header !== null) return fail(path, header.code, header.detail);

  let db: Database.Database | undefined;
  const closeQuietly = (): void => {
    try {
      db?.close();
    } catch {
      // already failing: the open error is the one worth reporting
    }
  };
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    // Mapped pages count as resident memory; a bounded page cache does not grow with the file.
    db.pragma('mmap_size = 0');
    db.pragma(`cache_size = ${-cfg.cacheSizeKiB}`);
    db.pragma('query_only = 1');

    const userVersion = db.pragma('user_version', { simple: true }) as number;
    const tables = new Set(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[]);
    if (userVersion !== FORMAT_VERSION) {
      closeQuietly();
      if (userVersion === 0 && tables.size === 0) return fail(path, 'wrong-format-version', 'an empty SQLite file, not a rarecon baseline');
      return fail(
        path,
        'wrong-format-version',
        `format version ${userVersion}, this rarecon reads version ${FORMAT_VERSION} only; rebuild or resync the baseline`,
      );
    }
    const missingTables = REQUIRED_TABLES.filter((t) => !tables.has(t));
    if (missingTables.length > 0) {
      closeQuietly();
      return fail(path, 'corrupt', `not a rarecon baseline: missing table(s) ${missingTables.join(', ')}`);
    }

    const rows = new Map<string, string>();
    for (const r of db.prepare('SELECT key, value FROM meta').raw().all() as Array<[unknown, unknown]>) {
      if (typeof r[0] === 'string' && typeof r[1] === 'string') rows.set(r[0], r[1]);
    }
    const formatRaw = rows.get('formatVersion');
    if (formatRaw === undefined) {
      closeQuietly();
      return fail(path, 'bad-meta', 'meta.formatVersion is missing');
    }
    if (formatRaw !== String(FORMAT_VERSION)) {
      closeQuietly();
      return fail(path, 'wrong-format-version', `meta.formatVersion is ${formatRaw}, this rarecon reads version ${FORMAT_VERSION} only`);
    }
    const decoded = decodeMeta(rows);
    if (!decoded.ok) {
      closeQuietly();
      return fail(path, 'bad-meta', `incomplete metadata: ${decoded.problems.join('; ')}`);
    }
    const problem = policyProblem(decoded.value.meta.policy);
    if (problem !== null) {
      closeQuietly();
      return fail(path, 'policy', `root-domain policy cannot be applied here: ${problem}`);
    }
    return { ok: true, baseline: new SqliteBaseline(db, path, decoded.value.meta, decoded.value.comboKeyBits, cfg) };
  } catch (e) {
    closeQuietly();
    const err = e as Error & { code?: string };
    const code = err.code === 'SQLITE_NOTADB' ? 'not-sqlite' : err.code === 'SQLITE_CANTOPEN' ? 'unreadable' : 'corrupt';
    return fail(path, code, `${code === 'not-sqlite' ? 'not a SQLite file' : 'cannot read'} (${err.code ?? 'error'}: ${err.message})`);
  }
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65_535;
}

/** A baseline file open for lookups. Obtain one from openBaseline(). Not for use across threads. */
export class SqliteBaseline implements BaselineReader {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly metaValue: BaselineMeta;
  private readonly keyBits: number;
  private readonly processStmt: Database.Statement<[Buffer], number>;
  private readonly comboStmt: Database.Statement<[number, number], number>;
  private readonly exactStmt: Database.Statement<[Buffer, string, number], number>;
  private readonly beginStmt: Database.Statement;
  private readonly hostStmt: Database.Statement<[string], number> | null;
  private readonly commitStmt: Database.Statement;
  private readonly processCache: ProcessCache;
  private readonly comboCache: ComboCache;
  private readonly recent: RecentAnswers;
  /** Decoded sha256 of the current SQLite lookup; better-sqlite3 copies bound blobs, so one buffer serves all. */
  private readonly shaBuf = Buffer.alloc(SHA256_BYTES);
  /** The answers last looked up: the detector asks process() then combo() for the same sha256. */
  private last: ShaAnswers | null = null;
  private batchDepth = 0;
  private closed = false;

  /** Use openBaseline(): it validates the file before this runs. */
  constructor(db: Database.Database, path: string, meta: BaselineMeta, comboKeyBits: number, cfg: BaselineStoreConfig) {
    this.db = db;
    this.path = path;
    this.metaValue = meta;
    this.keyBits = comboKeyBits;
    this.processStmt = db.prepare<[Buffer], number>('SELECT observers FROM process WHERE sha = ?').pluck();
    // A row answers only when its check bits match, or when it sends us to combo_exact.
    this.comboStmt = db
      .prepare<[number, number], number>('SELECT observers FROM combo WHERE key = ? AND (chk = ? OR observers < 0)')
      .pluck();
    this.exactStmt = db
      .prepare<[Buffer, string, number], number>('SELECT observers FROM combo_exact WHERE sha = ? AND root = ? AND port = ?')
      .pluck();
    this.hostStmt =
      (meta.hostHistoryCount ?? 0) > 0
        ? db.prepare<[string], number>('SELECT first_day_ms FROM host_history WHERE host = ?').pluck()
        : null;
    this.beginStmt = db.prepare('BEGIN');
    this.commitStmt = db.prepare('COMMIT');
    // The typed caches are a second tier behind the recent answers, which hold as many: a quarter is
    // enough for what falls out of a generation (at 10M combos they held 12 MiB and almost never hit).
    const secondTier = Math.max(1024, Math.floor(cfg.lookupCacheEntries / 4));
    this.processCache = new ProcessCache(secondTier);
    this.comboCache = new ComboCache(secondTier);
    // As many answers a generation as the typed caches hold: a working set that fits churns less (measured
    // at 10M combos: 65,536 gave 82k events/s and 306 MiB peak RSS, 200,000 gave 103k/s and 235 MiB).
    this.recent = new RecentAnswers(Math.min(cfg.lookupCacheEntries, cfg.recentAnswers ?? Number.POSITIVE_INFINITY));
  }

  meta(): BaselineMeta {
    return this.metaValue;
  }

  hostFirstDayMs(hostKey: string): number | undefined {
    return this.closed || this.hostStmt === null ? undefined : (this.hostStmt.get(hostKey) ?? undefined);
  }

  readonly uncached: Pick<BaselineReader, 'process' | 'combo'> = {
    process: (sha256) => {
      const v = this.processUncached(sha256);
      return v === PROCESS_ABSENT ? undefined : v;
    },
    combo: (sha256, rootDomain, port) => (sha256.length !== 64 || !isPort(port) ? 0 : this.comboUncached(sha256, rootDomain, port)),
  };

  private answersOf(sha256: string): ShaAnswers {
    const last = this.last;
    if (last !== null && last.sha === sha256) return last;
    return (this.last = this.recent.of(sha256));
  }

  process(sha256: string): number | undefined {
    const answers = this.answersOf(sha256);
    let v = this.recent.process(answers);
    if (v === CACHE_MISS) {
      v = this.processUncached(sha256);
      this.recent.storeProcess(answers, v);
    }
    return v === PROCESS_ABSENT ? undefined : v;
  }

  private processUncached(sha256: string): number {
    const cache = this.processCache;
    const slot = cache.slotOf(sha256);
    if (slot < 0) return PROCESS_ABSENT;
    const cached = cache.find(slot, sha256);
    if (cached !== CACHE_MISS) return cached;
    if (!decodeSha256(sha256, this.shaBuf)) return PROCESS_ABSENT;
    const observers = this.processStmt.get(this.shaBuf) ?? PROCESS_ABSENT;
    cache.store(slot, this.shaBuf, observers);
    return observers;
  }

  combo(sha256: string, rootDomain: string, port: number): number {
    if (sha256.length !== 64 || !isPort(port)) return 0;
    const answers = this.answersOf(sha256);
    let v = this.recent.combo(answers, rootDomain, port);
    if (v === CACHE_MISS) {
      v = this.comboUncached(sha256, rootDomain, port);
      this.recent.storeCombo(answers, rootDomain, port, v);
    }
    return v;
  }

  private comboUncached(sha256: string, rootDomain: string, port: number): number {
    hashCombo(sha256, rootDomain, port);
    const h1 = comboHash[0] as number;
    const h2 = comboHash[1] as number;
    let v = this.comboCache.find(h1, h2);
    if (v === CACHE_MISS) {
      v = this.comboStmt.get(comboKey(h1, h2, this.keyBits), comboCheck(h2)) ?? 0;
      this.comboCache.store(h1, h2, v);
    }
    if (v >= 0) return v;
    // The key is shared by several stored combos: answer from the exact table (rare, not in the typed cache).
    if (!decodeSha256(sha256, this.shaBuf)) return 0;
    return this.exactStmt.get(this.shaBuf, rootDomain, port) ?? 0;
  }

  /**
   * Starts one read transaction for the lookups that follow (cheaper than one per
   * lookup). Synchronous: end it before any await. Nests; endBatch() closes the outermost.
   */
  beginBatch(): void {
    if (this.closed) return;
    if (this.batchDepth++ === 0) this.beginStmt.run();
  }

  endBatch(): void {
    if (this.closed || this.batchDepth === 0) return;
    if (--this.batchDepth === 0) this.commitStmt.run();
  }

  cacheStats(): BaselineCacheStats {
    return {
      processHits: this.recent.processHits + this.processCache.hits,
      processMisses: this.processCache.misses,
      comboHits: this.recent.comboHits + this.comboCache.hits,
      comboMisses: this.comboCache.misses,
    };
  }

  /**
   * A full structural check of the file (PRAGMA quick_check), null when sound.
   * Reads every page: seconds on a large file, so for a freshly received file,
   * not for every open.
   */
  integrityProblem(): string | null {
    try {
      const rows = this.db.prepare('PRAGMA quick_check').pluck().all() as string[];
      return rows.length === 1 && rows[0] === 'ok' ? null : `baseline ${this.path}: ${rows.slice(0, 5).join('; ')}`;
    } catch (e) {
      return `baseline ${this.path}: ${(e as Error).message}`;
    }
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batchDepth = 0;
    this.db.close();
  }
}
