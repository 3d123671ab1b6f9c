// The durable outbox: every alert is stored before any sink sees it and is
// removed only when every sink is done with it (delivered or dead-lettered).
// Each sink has its own queue (a delivery row per alert and sink), so a slow
// or dead sink holds up nobody else. `seq` is AUTOINCREMENT so it never goes
// back, which keeps per-sink order (and so per-host order) and lets a
// delivery loop read past rows it has sent but could not yet mark done.
// Transactions are synchronous (better-sqlite3) and never span an await.
import type { Alert, SeverityName } from '../model/alert.js';
import { RepeatedLog, silentLog, type LogFn } from '../common/log.js';
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';

export interface OutboxOptions {
  /** SQLite file, or ':memory:' for tests. */
  path: string;
  /** Names of the configured sinks; each gets its own queue. */
  sinks: readonly string[];
  maxRows: number;
  /** Bound on the stored alert records (JSON bytes, not SQLite overhead). */
  maxBytes: number;
  /**
   * WAL with `normal`: a committed enqueue survives a crash of the process
   * (kill -9) but the last transactions may be lost on power loss or an OS
   * crash. `full` fsyncs every commit and survives those too.
   */
  synchronous: 'normal' | 'full';
  deadLetterMaxRows: number;
  log?: LogFn;
  now?: () => number;
}

export type StoreFailureReason = 'disk-full' | 'closed' | 'io-error';
export type StoreFailure = { ok: false; reason: StoreFailureReason; error: string };
export type StoreResult = { ok: true } | StoreFailure;

export type EnqueueResult =
  | {
      ok: true;
      /** Alerts written. */
      stored: number;
      /** Alerts whose uid was already held (a no-op). */
      duplicates: number;
      /** New alerts not stored because everything held ranks above them under the size bound. */
      rejected: number;
      /** Held alerts removed to make room. */
      evicted: number;
    }
  | StoreFailure;

export interface OutboxItem {
  seq: number;
  uid: string;
  alert: Alert;
  /** Earlier failed attempts at this sink. */
  attempts: number;
  enqueuedMs: number;
}

export interface DeadLetter {
  id: number;
  sink: string;
  uid: string;
  severityId: number;
  reason: string;
  attempts: number;
  failedAtMs: number;
  alert: Alert | null;
}

export interface SinkQueueStats {
  depth: number;
  oldestAgeMs: number | null;
  deliveredTotal: number;
  retriedTotal: number;
  deadLetteredTotal: number;
}

export interface OutboxStats {
  rows: number;
  bytes: number;
  oldestAgeMs: number | null;
  sinks: Record<string, SinkQueueStats>;
  deadLetterRows: number;
  enqueuedTotal: number;
  duplicatesTotal: number;
  /** Alert deliveries confirmed, summed over sinks. */
  deliveredTotal: number;
  retriedTotal: number;
  deadLetteredTotal: number;
  /** Held alerts evicted plus new alerts rejected under the size bound. */
  evictedTotal: number;
  evictedBySeverity: Record<SeverityName, number>;
  diskFullTotal: number;
}

const SEVERITY_NAMES: Record<number, SeverityName> = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' };

function severityName(id: number): SeverityName {
  return SEVERITY_NAMES[id] ?? 'Informational';
}

/** SQLITE_FULL, or ENOSPC from the VFS, is "disk full"; other errors are I/O errors. */
export function classifyStoreError(err: unknown): StoreFailure {
  const code = String((err as { code?: unknown }).code ?? '');
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || /disk is full|ENOSPC|no space left/i.test(message)) {
    return { ok: false, reason: 'disk-full', error: message };
  }
  return { ok: false, reason: 'io-error', error: code === '' ? message : `${code}: ${message}` };
}

/** The schema, one entry a version (`PRAGMA user_version`); each runs in its own transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS alerts (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     uid TEXT NOT NULL UNIQUE,
     severity_id INTEGER NOT NULL,
     enqueued_ms INTEGER NOT NULL,
     size_bytes INTEGER NOT NULL,
     record TEXT NOT NULL);
   -- Covers eviction (lowest severity, oldest) and the byte count at open without reading records.
   CREATE INDEX IF NOT EXISTS alerts_eviction ON alerts (severity_id, seq, size_bytes);
   CREATE TABLE IF NOT EXISTS deliveries (
     sink TEXT NOT NULL,
     seq INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT,
     PRIMARY KEY (sink, seq)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS dead_letters (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     sink TEXT NOT NULL,
     uid TEXT NOT NULL,
     severity_id INTEGER NOT NULL,
     reason TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     failed_at_ms INTEGER NOT NULL,
     record TEXT NOT NULL);`,
];

interface VictimRow {
  seq: number;
  severity_id: number;
  size_bytes: number;
}

export class Outbox {
  private readonly db: SqliteDatabase;
  private sinks: readonly string[];
  private readonly log: LogFn;
  /** At most a line a minute while alerts are evicted at the size bound, with the count left out. */
  private readonly evictionLog: RepeatedLog;
  private readonly now: () => number;
  private readonly listeners = new Set<() => void>();
  private stmts: ReturnType<typeof Outbox.prepare>;
  private rows = 0;
  private bytes = 0;
  private closed = false;
  private readonly totals = {
    enqueued: 0,
    duplicates: 0,
    evicted: 0,
    diskFull: 0,
    evictedBySeverity: { High: 0, Medium: 0, Low: 0, Informational: 0 } as Record<SeverityName, number>,
  };
  /** Failed enqueues not yet logged, and when the last log line about them went out. */
  private storeFailures = { unlogged: 0, lastLogMs: 0, failing: false };
  private readonly perSink = new Map<string, { delivered: number; retried: number; deadLettered: number }>();

  private constructor(
    db: SqliteDatabase,
    private opts: OutboxOptions,
  ) {
    this.db = db;
    this.sinks = [...opts.sinks];
    this.log = opts.log ?? silentLog;
    this.evictionLog = new RepeatedLog(
      this.log,
      'warn',
      'The outbox is at its size bound; the lowest-severity, oldest alerts were dropped.',
    );
    this.now = opts.now ?? Date.now;
    for (const s of this.sinks) this.perSink.set(s, { delivered: 0, retried: 0, deadLettered: 0 });
    this.stmts = Outbox.prepare(db, this.sinks);
    this.forgetRemovedSinks();
    const size = db.prepare<[], { n: number; b: number }>('SELECT count(*) AS n, total(size_bytes) AS b FROM alerts').get();
    this.rows = size?.n ?? 0;
    this.bytes = size?.b ?? 0;
  }

  /** Statements for this set of sinks: listing them lets lookups by seq use the (sink, seq) key, no second index. */
  private static prepare(db: SqliteDatabase, sinks: readonly string[]) {
    const inSinks = sinks.map((n) => `'${n.replace(/'/g, "''")}'`).join(', ');
    return {
      insertAlert: db.prepare<[string, number, number, number, string]>(
        'INSERT INTO alerts (uid, severity_id, enqueued_ms, size_bytes, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING',
      ),
      insertDelivery: db.prepare<[string, number | bigint]>('INSERT INTO deliveries (sink, seq) VALUES (?, ?)'),
      lowest: db.prepare<[], VictimRow>('SELECT seq, severity_id, size_bytes FROM alerts ORDER BY severity_id, seq LIMIT 1'),
      deleteAlert: db.prepare<[number]>('DELETE FROM alerts WHERE seq = ?'),
      deleteDeliveriesOf: db.prepare<[number]>(`DELETE FROM deliveries WHERE sink IN (${inSinks}) AND seq = ?`),
      next: db.prepare<[string, number, number], { seq: number; attempts: number; uid: string; enqueued_ms: number; record: string }>(
        `SELECT d.seq, d.attempts, a.uid, a.enqueued_ms, a.record FROM deliveries d JOIN alerts a ON a.seq = d.seq
         WHERE d.sink = ? AND d.seq > ? ORDER BY d.seq LIMIT ?`,
      ),
      deleteDelivery: db.prepare<[string, number]>('DELETE FROM deliveries WHERE sink = ? AND seq = ?'),
      deleteIfDone: db.prepare<[number, number], { size_bytes: number }>(
        `DELETE FROM alerts WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE sink IN (${inSinks}) AND seq = ?) RETURNING size_bytes`,
      ),
      markRetry: db.prepare<[string, string, number]>(
        'UPDATE deliveries SET attempts = attempts + 1, last_error = ? WHERE sink = ? AND seq = ?',
      ),
      insertDead: db.prepare<[string, number, string, number]>(
        `INSERT INTO dead_letters (sink, uid, severity_id, reason, attempts, failed_at_ms, record)
         SELECT d.sink, a.uid, a.severity_id, ?, d.attempts + 1, ?, a.record FROM deliveries d JOIN alerts a ON a.seq = d.seq
         WHERE d.sink = ? AND d.seq = ?`,
      ),
      trimDead: db.prepare<[number]>('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?'),
      deadCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters'),
      deadList: db.prepare<
        [number],
        {
          id: number;
          sink: string;
          uid: string;
          severity_id: number;
          reason: string;
          attempts: number;
          failed_at_ms: number;
          record: string;
        }
      >('SELECT id, sink, uid, severity_id, reason, attempts, failed_at_ms, record FROM dead_letters ORDER BY id DESC LIMIT ?'),
      depth: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM deliveries WHERE sink = ?'),
      sinkOldest: db.prepare<[string], { enqueued_ms: number }>(
        'SELECT a.enqueued_ms FROM deliveries d JOIN alerts a ON a.seq = d.seq WHERE d.sink = ? ORDER BY d.seq LIMIT 1',
      ),
      oldest: db.prepare<[], { enqueued_ms: number }>('SELECT enqueued_ms FROM alerts ORDER BY seq LIMIT 1'),
    };
  }

  /** Opens (creating) the outbox. Throws on start-up failures: unusable path, newer schema, no sinks. */
  static open(opts: OutboxOptions): Outbox {
    if (opts.sinks.length === 0) throw new Error('the outbox needs at least one sink (report.sinks is empty)');
    if (new Set(opts.sinks).size !== opts.sinks.length) throw new Error('sink names must be unique');
    const db = openSqlite(opts.path, {
      what: 'the outbox database',
      migrations: MIGRATIONS,
      synchronous: opts.synchronous,
      busyTimeoutMs: 5000,
      cacheSizeKiB: 16384,
      // After a checkpoint the WAL is rewritten from its start in the space it already
      // holds; trimming it only past 64 MiB spares asking a nearly full disk for it again.
      pragmas: [`journal_size_limit = ${64 * 1024 * 1024}`],
      // The mode mkdir gives by default (less the umask), as the outbox always had.
      dirMode: 0o777,
    });
    try {
      return new Outbox(db, opts);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Queues of sinks no longer configured would never drain: drop them (their alerts go when no sink needs them). */
  private forgetRemovedSinks(): void {
    const known = new Set(this.sinks);
    const stored = this.db.prepare<[], { sink: string; n: number }>('SELECT sink, count(*) AS n FROM deliveries GROUP BY sink').all();
    const gone = stored.filter((s) => !known.has(s.sink));
    if (gone.length === 0) return;
    this.db.transaction(() => {
      for (const g of gone) this.db.prepare('DELETE FROM deliveries WHERE sink = ?').run(g.sink);
      this.db.exec('DELETE FROM alerts WHERE seq NOT IN (SELECT seq FROM deliveries)');
    })();
    for (const g of gone) {
      this.log('warn', 'Dropped the queue of a sink that is no longer configured.', { sink: g.sink, alerts: g.n });
    }
  }

  /**
   * New sinks and bounds (a reload): queued alerts stay for the sinks kept
   * (a changed sink under the same name gets its queue), a removed sink's
   * queue is dropped, an added sink starts with the next alert. Synchronous.
   */
  reconfigure(next: Pick<OutboxOptions, 'sinks' | 'maxRows' | 'maxBytes' | 'deadLetterMaxRows' | 'synchronous'>): StoreResult {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    if (next.sinks.length === 0) throw new Error('the outbox needs at least one sink (report.sinks is empty)');
    if (new Set(next.sinks).size !== next.sinks.length) throw new Error('sink names must be unique');
    try {
      this.db.pragma(`synchronous = ${next.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      const stmts = Outbox.prepare(this.db, next.sinks);
      this.sinks = [...next.sinks];
      this.stmts = stmts;
      this.opts = { ...this.opts, ...next, sinks: this.sinks };
      for (const s of this.sinks) this.sinkTotals(s);
      this.forgetRemovedSinks();
      const size = this.db.prepare<[], { n: number; b: number }>('SELECT count(*) AS n, total(size_bytes) AS b FROM alerts').get();
      this.rows = size?.n ?? 0;
      this.bytes = size?.b ?? 0;
      return { ok: true };
    } catch (err) {
      return this.storeFailure(err);
    }
  }

  /** Called (synchronously) after alerts were stored; returns an unsubscribe function. */
  onEnqueue(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  enqueue(alert: Alert): EnqueueResult {
    return this.enqueueMany([alert]);
  }

  /** Stores a batch in one transaction; a uid already held is a no-op. */
  enqueueMany(alerts: readonly Alert[]): EnqueueResult {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    const nowMs = this.now();
    const s = this.stmts;
    let rows = this.rows;
    let bytes = this.bytes;
    const evictedBySeverity: number[] = [0, 0, 0, 0, 0];
    let stored = 0;
    let duplicates = 0;
    let rejected = 0;
    let evicted = 0;
    const tx = this.db.transaction(() => {
      for (const alert of alerts) {
        const record = JSON.stringify(alert);
        const size = Buffer.byteLength(record);
        if (size > this.opts.maxBytes) {
          rejected++;
          evictedBySeverity[alert.severityId] = (evictedBySeverity[alert.severityId] ?? 0) + 1;
          continue;
        }
        const { changes, lastInsertRowid } = s.insertAlert.run(alert.uid, alert.severityId, nowMs, size, record);
        if (changes === 0) {
          duplicates++;
          continue;
        }
        const seq = Number(lastInsertRowid);
        for (const sink of this.sinks) s.insertDelivery.run(sink, seq);
        rows++;
        bytes += size;
        let kept = true;
        // Back under the bound: lowest severity first, oldest first within a severity. The new alert
        // has the highest seq, so it goes itself only when everything else held ranks above it.
        while (rows > this.opts.maxRows || bytes > this.opts.maxBytes) {
          const victim = s.lowest.get();
          if (victim === undefined) break;
          s.deleteDeliveriesOf.run(victim.seq);
          s.deleteAlert.run(victim.seq);
          rows--;
          bytes -= victim.size_bytes;
          evictedBySeverity[victim.severity_id] = (evictedBySeverity[victim.severity_id] ?? 0) + 1;
          if (victim.seq === seq) {
            kept = false;
            rejected++;
            break;
          }
          evicted++;
        }
        if (kept) stored++;
      }
    });
    try {
      tx();
    } catch (err) {
      const f = classifyStoreError(err);
      if (f.reason === 'disk-full') this.totals.diskFull++;
      this.storeFailed(f, alerts.length, nowMs);
      return f;
    }
    if (this.storeFailures.failing) {
      this.log('info', 'The outbox stores alerts again.', { alertsNotStoredSinceLastLog: this.storeFailures.unlogged });
      this.storeFailures = { unlogged: 0, lastLogMs: 0, failing: false };
    }
    this.rows = rows;
    this.bytes = bytes;
    this.totals.enqueued += stored;
    this.totals.duplicates += duplicates;
    this.totals.evicted += evicted + rejected;
    evictedBySeverity.forEach((n, id) => {
      if (n > 0) this.totals.evictedBySeverity[severityName(id)] += n;
    });
    if (evicted + rejected > 0) {
      this.evictionLog.note({
        evicted,
        rejected,
        evictedTotal: this.totals.evicted,
        maxRows: this.opts.maxRows,
        maxBytes: this.opts.maxBytes,
      });
    }
    if (stored > 0) for (const l of this.listeners) l();
    return { ok: true, stored, duplicates, rejected, evicted };
  }

  /** One log line when enqueues start failing, then at most one a minute with the count: no flood on a full disk. */
  private storeFailed(f: StoreFailure, alerts: number, nowMs: number): void {
    const sf = this.storeFailures;
    sf.unlogged += alerts;
    if (sf.failing && nowMs - sf.lastLogMs < 60_000) return;
    this.log('error', 'Could not store alerts in the outbox; they were not queued.', {
      reason: f.reason,
      error: f.error,
      alertsNotStored: sf.unlogged,
    });
    this.storeFailures = { unlogged: 0, lastLogMs: nowMs, failing: true };
  }

  /** The next alerts for a sink in queue order, after `afterSeq`. Unreadable records are dead-lettered. */
  next(sink: string, limit: number, afterSeq = 0): { ok: true; items: OutboxItem[] } | StoreFailure {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    let raw;
    try {
      raw = this.stmts.next.all(sink, afterSeq, limit);
    } catch (err) {
      return classifyStoreError(err);
    }
    const items: OutboxItem[] = [];
    const unreadable: number[] = [];
    for (const r of raw) {
      try {
        items.push({ seq: r.seq, uid: r.uid, alert: JSON.parse(r.record) as Alert, attempts: r.attempts, enqueuedMs: r.enqueued_ms });
      } catch {
        unreadable.push(r.seq);
      }
    }
    if (unreadable.length > 0) {
      const done = this.deadLetter(sink, unreadable, 'the stored record is not valid JSON');
      if (!done.ok) return done;
      // Keep the batch in order: stop at the first unreadable row and let the next call continue.
      const firstBad = Math.min(...unreadable);
      return { ok: true, items: items.filter((i) => i.seq < firstBad) };
    }
    return { ok: true, items };
  }

  private finish(sink: string, seqs: readonly number[], before: ((seq: number) => void) | null): number {
    const s = this.stmts;
    let removedRows = 0;
    let removedBytes = 0;
    let done = 0;
    this.db.transaction(() => {
      for (const seq of seqs) {
        before?.(seq);
        done += s.deleteDelivery.run(sink, seq).changes;
        const gone = s.deleteIfDone.get(seq, seq);
        if (gone !== undefined) {
          removedRows++;
          removedBytes += gone.size_bytes;
        }
      }
    })();
    this.rows -= removedRows;
    this.bytes -= removedBytes;
    return done;
  }

  /** The sink confirmed these; an alert goes once no sink needs it. */
  ack(sink: string, seqs: readonly number[]): StoreResult {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    try {
      const n = this.finish(sink, seqs, null);
      this.sinkTotals(sink).delivered += n;
      return { ok: true };
    } catch (err) {
      return this.storeFailure(err);
    }
  }

  /** Counts a failed attempt on each; the rows stay queued. */
  retry(sink: string, seqs: readonly number[], error: string): StoreResult {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    try {
      this.db.transaction(() => {
        for (const seq of seqs) this.stmts.markRetry.run(error.slice(0, 500), sink, seq);
      })();
      this.sinkTotals(sink).retried += seqs.length;
      return { ok: true };
    } catch (err) {
      return this.storeFailure(err);
    }
  }

  /** Moves these out of the sink's queue into the dead-letter table with the reason. */
  deadLetter(sink: string, seqs: readonly number[], reason: string): StoreResult {
    if (this.closed) return { ok: false, reason: 'closed', error: 'the outbox is closed' };
    const nowMs = this.now();
    try {
      const n = this.finish(sink, seqs, (seq) => this.stmts.insertDead.run(reason.slice(0, 2000), nowMs, sink, seq));
      this.stmts.trimDead.run(this.opts.deadLetterMaxRows);
      this.sinkTotals(sink).deadLettered += n;
      return { ok: true };
    } catch (err) {
      return this.storeFailure(err);
    }
  }

  private storeFailure(err: unknown): StoreFailure {
    const f = classifyStoreError(err);
    if (f.reason === 'disk-full') this.totals.diskFull++;
    return f;
  }

  private sinkTotals(sink: string): { delivered: number; retried: number; deadLettered: number } {
    let t = this.perSink.get(sink);
    if (t === undefined) this.perSink.set(sink, (t = { delivered: 0, retried: 0, deadLettered: 0 }));
    return t;
  }

  /** The most recent dead letters, newest first. */
  deadLetters(limit = 100): DeadLetter[] {
    if (this.closed) return [];
    return this.stmts.deadList.all(limit).map((r) => {
      let alert: Alert | null = null;
      try {
        alert = JSON.parse(r.record) as Alert;
      } catch {
        alert = null;
      }
      return {
        id: r.id,
        sink: r.sink,
        uid: r.uid,
        severityId: r.severity_id,
        reason: r.reason,
        attempts: r.attempts,
        failedAtMs: r.failed_at_ms,
        alert,
      };
    });
  }

  /** Held alerts (not the per-sink rows). */
  get size(): { rows: number; bytes: number } {
    return { rows: this.rows, bytes: this.bytes };
  }

  stats(): OutboxStats {
    const nowMs = this.now();
    const sinks: Record<string, SinkQueueStats> = {};
    for (const name of this.sinks) {
      const t = this.sinkTotals(name);
      sinks[name] = {
        depth: 0,
        oldestAgeMs: null,
        deliveredTotal: t.delivered,
        retriedTotal: t.retried,
        deadLetteredTotal: t.deadLettered,
      };
    }
    let oldestAgeMs: number | null = null;
    let deadLetterRows = 0;
    if (!this.closed) {
      for (const [name, q] of Object.entries(sinks)) {
        q.depth = this.stmts.depth.get(name)?.n ?? 0;
        const oldest = this.stmts.sinkOldest.get(name);
        q.oldestAgeMs = oldest === undefined ? null : nowMs - oldest.enqueued_ms;
      }
      const o = this.stmts.oldest.get();
      oldestAgeMs = o === undefined ? null : nowMs - o.enqueued_ms;
      deadLetterRows = this.stmts.deadCount.get()?.n ?? 0;
    }
    let delivered = 0;
    let retried = 0;
    let dead = 0;
    for (const t of this.perSink.values()) {
      delivered += t.delivered;
      retried += t.retried;
      dead += t.deadLettered;
    }
    return {
      rows: this.rows,
      bytes: this.bytes,
      oldestAgeMs,
      sinks,
      deadLetterRows,
      enqueuedTotal: this.totals.enqueued,
      duplicatesTotal: this.totals.duplicates,
      deliveredTotal: delivered,
      retriedTotal: retried,
      deadLetteredTotal: dead,
      evictedTotal: this.totals.evicted,
      evictedBySeverity: { ...this.totals.evictedBySeverity },
      diskFullTotal: this.totals.diskFull,
    };
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.db.close();
  }
}
