// The detector's local state in SQLite, so it survives a restart: host
// enrolment, open alerts (dedup), and the per-host safety valve.
// `:memory:` gives the same behaviour for one-shot offline scoring.
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';
import type { Alert } from '../model/alert.js';

/** The schema, one entry a version (`PRAGMA user_version`). */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS hosts (host_key TEXT PRIMARY KEY, enrolled_at_ms INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS alerts (
     dedup_key TEXT PRIMARY KEY, combo_key TEXT NOT NULL, host_key TEXT NOT NULL, severity_id INTEGER NOT NULL,
     first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL, count INTEGER NOT NULL, record TEXT NOT NULL);
   CREATE INDEX IF NOT EXISTS alerts_first_seen ON alerts (first_seen_ms);
   CREATE TABLE IF NOT EXISTS valve (host_key TEXT PRIMARY KEY, window_start_ms INTEGER NOT NULL,
     count INTEGER NOT NULL, paused_until_ms INTEGER NOT NULL);`,
];

export interface OpenAlertRow {
  /** The combo key, '|' and the alert's name. */
  readonly dedupKey: string;
  comboKey: string;
  hostKey: string;
  severityId: number;
  alert: Alert;
  dirty: boolean;
}

export interface ValveRow {
  hostKey: string;
  windowStartMs: number;
  count: number;
  pausedUntilMs: number;
}

/** A host and the time at or before which its stored alerts were first seen and their windows have closed. */
export type Prune = readonly [hostKey: string, beforeMs: number];

export interface StateStoreOptions {
  /**
   * Writes of one event-loop turn are gathered and committed in one
   * transaction just after it (setImmediate), not one transaction each: under
   * a burst of alerts a commit per alert cost more than the rest of the alert.
   * A crash loses at most that turn's rows, as it does the outbox's.
   */
  batchWrites?: boolean;
  /** With batchWrites: how long a write waits for others to go in its commit; 0 (default): to the end of the turn. */
  batchDelayMs?: number;
  /** A batched commit failed (its rows are kept and tried again with the next one). */
  onWriteError?: (err: Error, rows: number) => void;
}

export class StateStore {
  private readonly db: SqliteDatabase;
  private readonly stmts;
  private readonly saveTx: (rows: readonly OpenAlertRow[], prunes: readonly Prune[], valves: readonly ValveRow[]) => void;
  private closed = false;
  private readonly batch: boolean;
  private readonly onWriteError: ((err: Error, rows: number) => void) | undefined;
  // Pending batched writes, by key: a row saved twice in a turn is written once, with its latest state.
  private readonly pendingRows = new Map<string, OpenAlertRow>();
  private readonly pendingValves = new Map<string, ValveRow>();
  private readonly pendingPrunes = new Map<string, number>();
  private commitScheduled = false;
  private commitTimer: NodeJS.Timeout | null = null;
  private readonly batchDelayMs: number;
  writeErrorsTotal = 0;
  commitsTotal = 0;

  private constructor(db: SqliteDatabase, opts: StateStoreOptions = {}) {
    this.db = db;
    this.batch = opts.batchWrites ?? false;
    this.batchDelayMs = opts.batchDelayMs ?? 0;
    this.onWriteError = opts.onWriteError;
    this.stmts = {
      hostGet: db.prepare<[string], { enrolled_at_ms: number }>('SELECT enrolled_at_ms FROM hosts WHERE host_key = ?'),
      hostAll: db.prepare<[], { host_key: string; enrolled_at_ms: number }>('SELECT host_key, enrolled_at_ms FROM hosts'),
      hostPut: db.prepare(
        'INSERT INTO hosts (host_key, enrolled_at_ms) VALUES (?, ?) ON CONFLICT(host_key) DO UPDATE SET enrolled_at_ms = min(enrolled_at_ms, excluded.enrolled_at_ms)',
      ),
      alertPut: db.prepare(
        'INSERT OR REPLACE INTO alerts (dedup_key, combo_key, host_key, severity_id, first_seen_ms, last_seen_ms, count, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      alertsOpen: db.prepare<[number], { dedup_key: string; combo_key: string; host_key: string; severity_id: number; record: string }>(
        'SELECT dedup_key, combo_key, host_key, severity_id, record FROM alerts WHERE first_seen_ms > ?',
      ),
      alertsPrune: db.prepare('DELETE FROM alerts WHERE host_key = ? AND first_seen_ms <= ?'),
      alertsToday: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM alerts WHERE first_seen_ms > ?'),
      valvePut: db.prepare('INSERT OR REPLACE INTO valve (host_key, window_start_ms, count, paused_until_ms) VALUES (?, ?, ?, ?)'),
      valveAll: db.prepare<[], { host_key: string; window_start_ms: number; count: number; paused_until_ms: number }>(
        'SELECT host_key, window_start_ms, count, paused_until_ms FROM valve',
      ),
    };
    // Made once: better-sqlite3 builds a wrapper per transaction() call.
    this.saveTx = db.transaction((rows: readonly OpenAlertRow[], prunes: readonly Prune[], valves: readonly ValveRow[]) => {
      for (const r of rows) {
        this.stmts.alertPut.run(
          r.dedupKey,
          r.comboKey,
          r.hostKey,
          r.severityId,
          r.alert.firstSeenMs,
          r.alert.lastSeenMs,
          r.alert.count,
          JSON.stringify(r.alert),
        );
      }
      for (const v of valves) this.stmts.valvePut.run(v.hostKey, v.windowStartMs, v.count, v.pausedUntilMs);
      for (const [hostKey, beforeMs] of prunes) this.stmts.alertsPrune.run(hostKey, beforeMs);
    });
  }

  /** Opens (creating) `<dir>/state.db`, or an in-memory store when dir is null. */
  static open(dir: string | null, opts: StateStoreOptions = {}): StateStore {
    const db = openSqlite(dir === null ? ':memory:' : `${dir}/state.db`, {
      what: 'the state database',
      migrations: MIGRATIONS,
      synchronous: 'normal',
      busyTimeoutMs: 5000,
      // The mode mkdir gives by default (less the umask), as the state folder always had here.
      dirMode: 0o777,
    });
    try {
      return new StateStore(db, opts);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  enrolments(): Map<string, number> {
    return new Map(this.stmts.hostAll.all().map((r) => [r.host_key, r.enrolled_at_ms]));
  }

  enrolledAt(hostKey: string): number | undefined {
    return this.stmts.hostGet.get(hostKey)?.enrolled_at_ms;
  }

  /** Keeps the earliest time ever given for the host. */
  recordEnrolment(hostKey: string, timeMs: number): void {
    this.stmts.hostPut.run(hostKey, timeMs);
  }

  /** Alerts whose dedup window is still open at `sinceMs`. */
  openAlerts(sinceMs: number): OpenAlertRow[] {
    this.commitPending();
    return this.stmts.alertsOpen.all(sinceMs).map((r) => ({
      dedupKey: r.dedup_key,
      comboKey: r.combo_key,
      hostKey: r.host_key,
      severityId: r.severity_id,
      alert: JSON.parse(r.record) as Alert,
      dirty: false,
    }));
  }

  /**
   * Writes the given alerts and valve rows in one transaction, and forgets the
   * alerts of each pruned host first seen at or before its time (windows close
   * in each host's own event time).
   */
  saveAlerts(rows: readonly OpenAlertRow[], prunes: readonly Prune[] | null, valves: readonly ValveRow[] = []): void {
    if (!this.batch) {
      this.saveTx(rows, prunes ?? [], valves);
      return;
    }
    for (const r of rows) this.pendingRows.set(r.dedupKey, r);
    for (const v of valves) this.pendingValves.set(v.hostKey, v);
    for (const [hostKey, beforeMs] of prunes ?? [])
      this.pendingPrunes.set(hostKey, Math.max(beforeMs, this.pendingPrunes.get(hostKey) ?? beforeMs));
    this.scheduleCommit();
  }

  private scheduleCommit(): void {
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    const run = (): void => {
      this.commitScheduled = false;
      this.commitTimer = null;
      this.commitPending();
    };
    if (this.batchDelayMs > 0) this.commitTimer = setTimeout(run, this.batchDelayMs);
    else setImmediate(run);
  }

  /** Commits the batched writes now (reads and close() do so first). */
  commitPending(): void {
    if (this.closed || (this.pendingRows.size === 0 && this.pendingValves.size === 0 && this.pendingPrunes.size === 0)) return;
    const rows = [...this.pendingRows.values()];
    const valves = [...this.pendingValves.values()];
    const prunes = [...this.pendingPrunes];
    try {
      this.saveTx(rows, prunes, valves);
      this.commitsTotal++;
      this.pendingRows.clear();
      this.pendingValves.clear();
      this.pendingPrunes.clear();
    } catch (err) {
      // Kept for the next commit: memory stays bounded by the open alerts the deduper holds anyway.
      this.writeErrorsTotal++;
      this.onWriteError?.(err as Error, rows.length + valves.length);
    }
  }

  /** Rows waiting for a batched commit. */
  get pendingWrites(): number {
    return this.pendingRows.size + this.pendingValves.size;
  }

  alertsSince(sinceMs: number): number {
    this.commitPending();
    return this.stmts.alertsToday.get(sinceMs)?.n ?? 0;
  }

  valves(): ValveRow[] {
    this.commitPending();
    return this.stmts.valveAll.all().map((r) => ({
      hostKey: r.host_key,
      windowStartMs: r.window_start_ms,
      count: r.count,
      pausedUntilMs: r.paused_until_ms,
    }));
  }

  saveValve(v: ValveRow): void {
    if (this.batch) {
      this.saveAlerts([], [], [v]);
      return;
    }
    this.stmts.valvePut.run(v.hostKey, v.windowStartMs, v.count, v.pausedUntilMs);
  }

  close(): void {
    if (this.closed) return;
    if (this.commitTimer !== null) clearTimeout(this.commitTimer);
    this.commitPending();
    this.closed = true;
    this.db.close();
  }
}
