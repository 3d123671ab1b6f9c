// The endpoint's own sightings, per day (DETECTION.md section 8): the distinct
// sha256 run and the distinct (sha256, root domain, port) of each day, in
// `<stateDir>/sightings.db`. They go up to the baseline server one host-day at
// a time (a re-upload replaces the day there), and without a server they are
// what the standalone baseline is learnt from (standalone.ts, observer unit `day`).
// Transactions are synchronous and never span an await.
import { DAY_MS, type Sighting } from '../model/baseline.js';
import { observerId } from '../model/observer.js';
import { type BaselineBuilder } from '../baseline/builder.js';
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE day_process (day INTEGER NOT NULL, sha BLOB NOT NULL, PRIMARY KEY (day, sha)) WITHOUT ROWID;
   CREATE TABLE day_combo (day INTEGER NOT NULL, sha BLOB NOT NULL, root TEXT NOT NULL, port INTEGER NOT NULL,
                           PRIMARY KEY (day, sha, root, port)) WITHOUT ROWID;
   CREATE TABLE day_state (day INTEGER PRIMARY KEY, changes INTEGER NOT NULL, uploaded_changes INTEGER NOT NULL DEFAULT 0,
                           combos INTEGER NOT NULL DEFAULT 0, processes INTEGER NOT NULL DEFAULT 0);`,
];

const SHA_RE = /^[0-9a-f]{64}$/;

export interface DayUpload {
  /** `YYYY-MM-DD` (UTC), as the server API wants it. */
  day: string;
  dayMs: number;
  processes: string[];
  combos: Array<{ sha256: string; rootDomain: string; port: number }>;
  /** Pass back to markUploaded: sightings added after this read make the day due again. */
  changes: number;
}

export interface SightingsStats {
  days: number;
  processRows: number;
  comboRows: number;
  daysToUpload: number;
  droppedOverLimitTotal: number;
  rejectedTotal: number;
}

export interface SightingsStoreOptions {
  /** Distinct combos kept per day; more are counted and dropped (the server refuses larger days). */
  maxCombosPerDay?: number;
  maxProcessesPerDay?: number;
  /** Distinct keys remembered in memory per day, so repeats skip SQLite. */
  memoryKeysPerDay?: number;
}

export class SightingsStore {
  private readonly db: SqliteDatabase;
  private readonly stmts;
  private readonly maxCombos: number;
  private readonly maxProcesses: number;
  private readonly memoryKeys: number;
  private seenDay = -1;
  private seen = new Set<string>();
  private dropped = 0;
  private rejected = 0;
  private closed = false;

  constructor(
    readonly path: string,
    opts: SightingsStoreOptions = {},
  ) {
    // WAL, synchronous NORMAL and a 5 s busy timeout: openSqlite's defaults.
    this.db = openSqlite(path, { what: 'the sightings database', migrations: MIGRATIONS });
    this.maxCombos = opts.maxCombosPerDay ?? 200_000;
    this.maxProcesses = opts.maxProcessesPerDay ?? 100_000;
    this.memoryKeys = opts.memoryKeysPerDay ?? 200_000;
    const db = this.db;
    this.stmts = {
      addProcess: db.prepare('INSERT OR IGNORE INTO day_process (day, sha) VALUES (?, ?)'),
      addCombo: db.prepare('INSERT OR IGNORE INTO day_combo (day, sha, root, port) VALUES (?, ?, ?, ?)'),
      dayCounts: db.prepare('SELECT combos, processes FROM day_state WHERE day = ?'),
      bump: db.prepare(
        `INSERT INTO day_state (day, changes, combos, processes) VALUES (?, 1, ?, ?)
         ON CONFLICT (day) DO UPDATE SET changes = changes + 1, combos = combos + excluded.combos, processes = processes + excluded.processes`,
      ),
      due: db.prepare('SELECT day FROM day_state WHERE changes > uploaded_changes ORDER BY day').pluck(),
      state: db.prepare('SELECT changes FROM day_state WHERE day = ?').pluck(),
      procsOf: db.prepare('SELECT sha FROM day_process WHERE day = ?').pluck(),
      combosOf: db.prepare('SELECT sha, root, port FROM day_combo WHERE day = ?').raw(),
      markUploaded: db.prepare('UPDATE day_state SET uploaded_changes = max(uploaded_changes, ?) WHERE day = ?'),
    };
  }

  /** True when this sighting is stored already today (known in memory, no database read). */
  has(s: Sighting): boolean {
    const day = Math.floor(s.dayMs / DAY_MS);
    return day === this.seenDay && typeof s.sha256 === 'string' && this.seen.has(sightingKey(s.sha256.toLowerCase(), s));
  }

  /** Stores sightings (the observer field is ignored: they are this host's). One transaction. */
  add(sightings: readonly Sighting[]): number {
    let added = 0;
    // Keys remembered by this call: forgotten again if the commit fails (a full disk), so a retry writes them.
    const fresh: string[] = [];
    const seenBefore = this.seen;
    const tx = this.db.transaction(() => {
      for (const s of sightings) {
        const day = Math.floor(s.dayMs / DAY_MS);
        const sha = typeof s.sha256 === 'string' ? s.sha256.toLowerCase() : '';
        if (!Number.isFinite(day) || !SHA_RE.test(sha)) {
          this.rejected++;
          continue;
        }
        if (day !== this.seenDay) {
          this.seenDay = day;
          this.seen = new Set();
        }
        const isCombo = s.rootDomain !== null && s.port !== null;
        const key = sightingKey(sha, s);
        if (this.seen.has(key)) continue;
        const counts = this.stmts.dayCounts.get(day) as { combos: number; processes: number } | undefined;
        if (isCombo && (counts?.combos ?? 0) >= this.maxCombos) {
          this.dropped++;
          continue;
        }
        if (!isCombo && (counts?.processes ?? 0) >= this.maxProcesses) {
          this.dropped++;
          continue;
        }
        const shaBytes = Buffer.from(sha, 'hex');
        const changes = isCombo
          ? this.stmts.addCombo.run(day, shaBytes, s.rootDomain as string, s.port as number).changes
          : this.stmts.addProcess.run(day, shaBytes).changes;
        if (this.seen.size < this.memoryKeys && !this.seen.has(key)) {
          this.seen.add(key);
          fresh.push(key);
        }
        if (changes > 0) {
          this.stmts.bump.run(day, isCombo ? 1 : 0, isCombo ? 0 : 1);
          added++;
        }
      }
    });
    try {
      tx();
    } catch (err) {
      if (this.seen === seenBefore) for (const k of fresh) this.seen.delete(k);
      else this.seen = new Set();
      throw err;
    }
    return added;
  }

  /** Days with sightings the server has not had yet, oldest first (epoch ms). */
  daysToUpload(): number[] {
    return (this.stmts.due.all() as number[]).map((d) => d * DAY_MS);
  }

  /** One host-day as the upload API wants it. Read in one transaction, so `changes` matches the rows. */
  dayUpload(dayMs: number): DayUpload {
    const day = Math.floor(dayMs / DAY_MS);
    return this.db.transaction((): DayUpload => {
      const changes = (this.stmts.state.get(day) as number | undefined) ?? 0;
      const processes = (this.stmts.procsOf.all(day) as Buffer[]).map((b) => b.toString('hex'));
      const combos = (this.stmts.combosOf.all(day) as Array<[Buffer, string, number]>).map(([sha, rootDomain, port]) => ({
        sha256: sha.toString('hex'),
        rootDomain,
        port,
      }));
      return { day: new Date(day * DAY_MS).toISOString().slice(0, 10), dayMs: day * DAY_MS, processes, combos, changes };
    })();
  }

  markUploaded(dayMs: number, changes: number): void {
    this.stmts.markUploaded.run(changes, Math.floor(dayMs / DAY_MS));
  }

  /** Deletes days before `beforeMs`. */
  prune(beforeMs: number): number {
    const day = Math.floor(beforeMs / DAY_MS);
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM day_process WHERE day < ?').run(day);
      this.db.prepare('DELETE FROM day_combo WHERE day < ?').run(day);
      return this.db.prepare('DELETE FROM day_state WHERE day < ?').run(day).changes;
    })();
  }

  /** Feeds the days in [fromMs, toMs) to a builder, each day one observer (unit `day`). */
  feed(builder: BaselineBuilder, fromMs: number, toMs: number): number {
    const from = Math.floor(fromMs / DAY_MS);
    const to = Math.ceil(toMs / DAY_MS);
    let fed = 0;
    const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };
    this.db.transaction(() => {
      for (const [day, sha] of this.db
        .prepare('SELECT day, sha FROM day_process WHERE day >= ? AND day < ?')
        .raw()
        .iterate(from, to) as Iterable<[number, Buffer]>) {
        s.dayMs = day * DAY_MS;
        s.observer = observerId('day', '', '', s.dayMs);
        s.sha256 = sha.toString('hex');
        s.rootDomain = null;
        s.port = null;
        if (builder.add(s)) fed++;
      }
      for (const [day, sha, root, port] of this.db
        .prepare('SELECT day, sha, root, port FROM day_combo WHERE day >= ? AND day < ?')
        .raw()
        .iterate(from, to) as Iterable<[number, Buffer, string, number]>) {
        s.dayMs = day * DAY_MS;
        s.observer = observerId('day', '', '', s.dayMs);
        s.sha256 = sha.toString('hex');
        s.rootDomain = root;
        s.port = port;
        if (builder.add(s)) fed++;
      }
    })();
    return fed;
  }

  stats(): SightingsStats {
    const one = (sql: string): number => this.db.prepare(sql).pluck().get() as number;
    return {
      days: one('SELECT count(*) FROM day_state'),
      processRows: one('SELECT count(*) FROM day_process'),
      comboRows: one('SELECT count(*) FROM day_combo'),
      daysToUpload: one('SELECT count(*) FROM day_state WHERE changes > uploaded_changes'),
      droppedOverLimitTotal: this.dropped,
      rejectedTotal: this.rejected,
    };
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/** The in-memory key of a sighting of one day: the sha256, and the root domain and port of a combo. */
function sightingKey(sha: string, s: Sighting): string {
  return s.rootDomain !== null && s.port !== null ? `${sha}|${s.rootDomain}|${s.port}` : sha;
}
