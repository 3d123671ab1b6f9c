// The baseline server's own database (`<stateDir>/server.db`): orgs and their
// enrolment tokens, enrolled hosts and their credentials, the sightings each
// host uploaded per day, and the alerts endpoints reported.
//
// Sightings are stored one row per host-day, as packed integer ids into two
// dictionaries (sha256 and root domain): 12 bytes a combo, 4 a process, instead
// of ~100 bytes of text, so 100 million sightings stay around a gigabyte.
// A re-upload of a host-day replaces its row: uploads are idempotent.
// Transactions are synchronous (better-sqlite3) and never span an await.
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';
import { DAY_MS } from '../model/baseline.js';
import { ENROL_TOKEN_PREFIX, HOST_CREDENTIAL_PREFIX, newSecret, secretHash } from '../common/secrets.js';
import type { DayBatch } from './sightings-batch.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE org (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL);
   CREATE TABLE enrol_token (hash BLOB PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id),
                             created_ms INTEGER NOT NULL, revoked_ms INTEGER) WITHOUT ROWID;
   CREATE TABLE host (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id), host_id TEXT NOT NULL,
                      name TEXT, cred_hash BLOB NOT NULL UNIQUE, enrolled_ms INTEGER NOT NULL,
                      revoked_ms INTEGER, last_seen_ms INTEGER, UNIQUE (org_id, host_id));
   CREATE TABLE sha (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE);
   CREATE TABLE root (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
   CREATE TABLE host_day (host INTEGER NOT NULL, day INTEGER NOT NULL, processes BLOB NOT NULL, combos BLOB NOT NULL,
                          process_count INTEGER NOT NULL, combo_count INTEGER NOT NULL, received_ms INTEGER NOT NULL,
                          PRIMARY KEY (host, day)) WITHOUT ROWID;
   CREATE INDEX host_day_by_day ON host_day (day);
   CREATE TABLE alert (seq INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE, host INTEGER NOT NULL,
                       org_id INTEGER NOT NULL, time_ms INTEGER, severity_id INTEGER, received_ms INTEGER NOT NULL,
                       body TEXT NOT NULL);
   CREATE INDEX alert_by_org ON alert (org_id, seq);`,
];

export interface HostRow {
  ref: number;
  orgId: number;
  org: string;
  hostId: string;
  name: string | null;
  enrolledMs: number;
  revokedMs: number | null;
  lastSeenMs: number | null;
}

export type EnrolResult =
  { ok: true; host: HostRow; credential: string; reEnrolled: boolean } | { ok: false; status: 401 | 403; error: string };

export type AuthResult = { ok: true; host: HostRow } | { ok: false; status: 401 | 403; error: string };

export interface IntakeResult {
  days: number;
  processes: number;
  combos: number;
  /** Host-days that replaced an earlier upload. */
  replaced: number;
}

export interface StoredAlert {
  seq: number;
  uid: string;
  org: string;
  hostId: string;
  timeMs: number | null;
  severityId: number | null;
  receivedMs: number;
  alert: unknown;
}

export interface AlertIn {
  uid: string;
  timeMs: number | null;
  severityId: number | null;
  body: string;
}

export interface IntakeStats {
  orgs: number;
  hosts: number;
  revokedHosts: number;
  hostDays: number;
  shas: number;
  roots: number;
  alerts: number;
}

type Row = Record<string, unknown>;

function hostFrom(r: Row): HostRow {
  return {
    ref: r.id as number,
    orgId: r.org_id as number,
    org: r.org as string,
    hostId: r.host_id as string,
    name: (r.name as string | null) ?? null,
    enrolledMs: r.enrolled_ms as number,
    revokedMs: (r.revoked_ms as number | null) ?? null,
    lastSeenMs: (r.last_seen_ms as number | null) ?? null,
  };
}

const HOST_SELECT = 'SELECT host.*, org.name AS org FROM host JOIN org ON org.id = host.org_id';

/** A bounded id cache in front of a dictionary table: cleared when full rather than grown without end. */
class IdCache<K> {
  private map = new Map<K, number>();
  constructor(private readonly maxEntries: number) {}
  get(k: K): number | undefined {
    return this.map.get(k);
  }
  set(k: K, id: number): void {
    if (this.map.size >= this.maxEntries) this.map = new Map();
    this.map.set(k, id);
  }
  clear(): void {
    this.map = new Map();
  }
}

export class IntakeStore {
  readonly db: SqliteDatabase;
  private readonly shaIds: IdCache<string>;
  private readonly rootIds: IdCache<string>;
  private readonly stmts;
  private closed = false;

  constructor(
    readonly path: string,
    opts: { dictionaryCacheEntries?: number } = {},
  ) {
    this.db = openSqlite(path, {
      what: 'server.db',
      migrations: MIGRATIONS,
      busyTimeoutMs: 10_000,
      // The dictionaries' unique indexes grow to millions of keys: keep their hot pages in memory.
      cacheSizeKiB: 64 * 1024,
      pragmas: ['foreign_keys = ON'],
      // The CLI (`rarecon server enroll`, `revoke`) opens the file while the server runs.
      immediate: true,
    });
    const cacheEntries = opts.dictionaryCacheEntries ?? 2_000_000;
    this.shaIds = new IdCache(cacheEntries);
    this.rootIds = new IdCache(cacheEntries);
    const db = this.db;
    this.stmts = {
      orgByName: db.prepare<[string], { id: number }>('SELECT id FROM org WHERE name = ?'),
      insertOrg: db.prepare<[string, number]>('INSERT INTO org (name, created_ms) VALUES (?, ?)'),
      insertToken: db.prepare<[Buffer, number, number]>('INSERT INTO enrol_token (hash, org_id, created_ms) VALUES (?, ?, ?)'),
      tokenByHash: db.prepare<[Buffer], Row>(
        'SELECT enrol_token.*, org.name AS org FROM enrol_token JOIN org ON org.id = enrol_token.org_id WHERE hash = ?',
      ),
      hostByOrgAndId: db.prepare<[number, string], Row>(`${HOST_SELECT} WHERE host.org_id = ? AND host.host_id = ?`),
      hostByCred: db.prepare<[Buffer], Row>(`${HOST_SELECT} WHERE host.cred_hash = ?`),
      hostsById: db.prepare<[string], Row>(`${HOST_SELECT} WHERE host.host_id = ?`),
      insertHost: db.prepare<[number, string, string | null, Buffer, number]>(
        'INSERT INTO host (org_id, host_id, name, cred_hash, enrolled_ms) VALUES (?, ?, ?, ?, ?)',
      ),
      rotateCred: db.prepare<[Buffer, string | null, number]>('UPDATE host SET cred_hash = ?, name = coalesce(?, name) WHERE id = ?'),
      revokeHost: db.prepare<[number, number]>('UPDATE host SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL'),
      touchHost: db.prepare<[number, number]>('UPDATE host SET last_seen_ms = ? WHERE id = ?'),
      shaId: db.prepare<[Buffer], number>('SELECT id FROM sha WHERE sha = ?').pluck(),
      insertSha: db.prepare<[Buffer]>('INSERT INTO sha (sha) VALUES (?)'),
      rootId: db.prepare<[string], number>('SELECT id FROM root WHERE name = ?').pluck(),
      insertRoot: db.prepare<[string]>('INSERT INTO root (name) VALUES (?)'),
      hostDayExists: db.prepare<[number, number], number>('SELECT 1 FROM host_day WHERE host = ? AND day = ?').pluck(),
      upsertHostDay: db.prepare<[number, number, Buffer, Buffer, number, number, number]>(
        'INSERT OR REPLACE INTO host_day (host, day, processes, combos, process_count, combo_count, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      upsertAlert: db.prepare<[string, number, number, number | null, number | null, number, string]>(
        `INSERT INTO alert (uid, host, org_id, time_ms, severity_id, received_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (uid) DO UPDATE SET time_ms = excluded.time_ms, severity_id = excluded.severity_id, body = excluded.body`,
      ),
      alertExists: db.prepare<[string], number>('SELECT 1 FROM alert WHERE uid = ?').pluck(),
    };
  }

  // -------------------------------------------------------------------------
  // Orgs, tokens, hosts

  /** Creates the org when new and a fresh enrolment token for it. */
  createEnrolToken(org: string, nowMs: number): { token: string; org: string; orgCreated: boolean } {
    return this.db
      .transaction(() => {
        let id = this.stmts.orgByName.get(org)?.id;
        const orgCreated = id === undefined;
        if (id === undefined) id = Number(this.stmts.insertOrg.run(org, nowMs).lastInsertRowid);
        const token = newSecret(ENROL_TOKEN_PREFIX);
        this.stmts.insertToken.run(secretHash(token), id, nowMs);
        return { token, org, orgCreated };
      })
      .immediate();
  }

  /** Revokes every enrolment token of an org (enrolled hosts keep their credentials). */
  revokeEnrolTokens(org: string, nowMs: number): number {
    const id = this.stmts.orgByName.get(org)?.id;
    if (id === undefined) return 0;
    return this.db.prepare('UPDATE enrol_token SET revoked_ms = ? WHERE org_id = ? AND revoked_ms IS NULL').run(nowMs, id).changes;
  }

  /**
   * Trades an org enrolment token for a per-host credential. Enrolling a host
   * id again (a reinstall) rotates its credential; a revoked host stays revoked.
   */
  enrol(token: string, hostId: string, hostName: string | null, nowMs: number): EnrolResult {
    return this.db
      .transaction((): EnrolResult => {
        const t = this.stmts.tokenByHash.get(secretHash(token));
        if (t === undefined) return { ok: false, status: 401, error: 'unknown enrolment token' };
        if (t.revoked_ms !== null) return { ok: false, status: 403, error: 'this enrolment token was revoked' };
        const orgId = t.org_id as number;
        const credential = newSecret(HOST_CREDENTIAL_PREFIX);
        const existing = this.stmts.hostByOrgAndId.get(orgId, hostId);
        if (existing !== undefined) {
          if (existing.revoked_ms !== null)
            return { ok: false, status: 403, error: `host ${hostId} was revoked; an operator must enrol it under a new id` };
          this.stmts.rotateCred.run(secretHash(credential), hostName, existing.id as number);
          return { ok: true, host: hostFrom(this.stmts.hostByOrgAndId.get(orgId, hostId) as Row), credential, reEnrolled: true };
        }
        this.stmts.insertHost.run(orgId, hostId, hostName, secretHash(credential), nowMs);
        return { ok: true, host: hostFrom(this.stmts.hostByOrgAndId.get(orgId, hostId) as Row), credential, reEnrolled: false };
      })
      .immediate();
  }

  authenticate(credential: string): AuthResult {
    const r = this.stmts.hostByCred.get(secretHash(credential));
    if (r === undefined) return { ok: false, status: 401, error: 'unknown host credential: enrol the host again' };
    const host = hostFrom(r);
    if (host.revokedMs !== null) return { ok: false, status: 403, error: `host ${host.hostId} of org ${host.org} is revoked` };
    return { ok: true, host };
  }

  touch(host: HostRow, nowMs: number): void {
    // At most once a minute: a write per request would serialise every read.
    if (host.lastSeenMs !== null && nowMs - host.lastSeenMs < 60_000) return;
    this.stmts.touchHost.run(nowMs, host.ref);
  }

  /** Revokes hosts by id (optionally only in one org); returns those revoked now. */
  revokeHost(hostId: string, org: string | null, nowMs: number): HostRow[] {
    return this.db.transaction(() => {
      const rows = this.stmts.hostsById
        .all(hostId)
        .map(hostFrom)
        .filter((h) => org === null || h.org === org);
      const out: HostRow[] = [];
      for (const h of rows) if (this.stmts.revokeHost.run(nowMs, h.ref).changes > 0) out.push({ ...h, revokedMs: nowMs });
      return out;
    })();
  }

  hosts(): HostRow[] {
    return (this.db.prepare(`${HOST_SELECT} ORDER BY org.name, host.host_id`).all() as Row[]).map(hostFrom);
  }

  // -------------------------------------------------------------------------
  // Sightings

  private shaIdOf(hex: string): number {
    const cached = this.shaIds.get(hex);
    if (cached !== undefined) return cached;
    const bytes = Buffer.from(hex, 'hex');
    let id = this.stmts.shaId.get(bytes);
    if (id === undefined) id = Number(this.stmts.insertSha.run(bytes).lastInsertRowid);
    this.shaIds.set(hex, id);
    return id;
  }

  private rootIdOf(name: string): number {
    const cached = this.rootIds.get(name);
    if (cached !== undefined) return cached;
    let id = this.stmts.rootId.get(name);
    if (id === undefined) id = Number(this.stmts.insertRoot.run(name).lastInsertRowid);
    this.rootIds.set(name, id);
    return id;
  }

  /** Stores a validated batch; each host-day replaces an earlier upload of the same day. One transaction. */
  storeSightings(host: HostRow, days: readonly DayBatch[], nowMs: number): IntakeResult {
    try {
      return this.storeSightingsTx(host, days, nowMs);
    } catch (e) {
      // A rolled-back transaction may have handed out dictionary ids that do not exist.
      this.shaIds.clear();
      this.rootIds.clear();
      throw e;
    }
  }

  private storeSightingsTx(host: HostRow, days: readonly DayBatch[], nowMs: number): IntakeResult {
    return this.db
      .transaction((): IntakeResult => {
        const result: IntakeResult = { days: 0, processes: 0, combos: 0, replaced: 0 };
        for (const d of days) {
          const day = Math.floor(d.dayMs / DAY_MS);
          const procs = new Int32Array(d.processes.length);
          for (let i = 0; i < d.processes.length; i++) procs[i] = this.shaIdOf(d.processes[i] as string);
          const combos = new Int32Array(d.combos.length * 3);
          for (let i = 0; i < d.combos.length; i++) {
            const c = d.combos[i] as DayBatch['combos'][number];
            combos[3 * i] = this.shaIdOf(c.sha256);
            combos[3 * i + 1] = this.rootIdOf(c.rootDomain);
            combos[3 * i + 2] = c.port;
          }
          if (this.stmts.hostDayExists.get(host.ref, day) !== undefined) result.replaced++;
          this.stmts.upsertHostDay.run(
            host.ref,
            day,
            Buffer.from(procs.buffer, procs.byteOffset, procs.byteLength),
            Buffer.from(combos.buffer, combos.byteOffset, combos.byteLength),
            d.processes.length,
            d.combos.length,
            nowMs,
          );
          result.days++;
          result.processes += d.processes.length;
          result.combos += d.combos.length;
        }
        return result;
      })
      .immediate();
  }

  /** Deletes host-days before `beforeDay` (epoch days); returns how many. */
  pruneBefore(beforeDay: number): number {
    return this.db.prepare('DELETE FROM host_day WHERE day < ?').run(beforeDay).changes;
  }

  // -------------------------------------------------------------------------
  // Alerts

  /** Upserts by uid: a re-sent alert (same uid, later count) replaces the stored one. */
  storeAlerts(host: HostRow, alerts: readonly AlertIn[], nowMs: number): { stored: number; updated: number } {
    return this.db
      .transaction(() => {
        let stored = 0;
        let updated = 0;
        for (const a of alerts) {
          if (this.stmts.alertExists.get(a.uid) !== undefined) updated++;
          else stored++;
          this.stmts.upsertAlert.run(a.uid, host.ref, host.orgId, a.timeMs, a.severityId, nowMs, a.body);
        }
        return { stored, updated };
      })
      .immediate();
  }

  queryAlerts(q: { org: string | null; hostId: string | null; afterSeq: number; sinceMs: number | null; limit: number }): StoredAlert[] {
    const where: string[] = ['alert.seq > ?'];
    const args: Array<string | number> = [q.afterSeq];
    if (q.org !== null) {
      where.push('org.name = ?');
      args.push(q.org);
    }
    if (q.hostId !== null) {
      where.push('host.host_id = ?');
      args.push(q.hostId);
    }
    if (q.sinceMs !== null) {
      where.push('alert.time_ms >= ?');
      args.push(q.sinceMs);
    }
    const rows = this.db
      .prepare(
        `SELECT alert.*, org.name AS org, host.host_id AS host_id FROM alert
         JOIN host ON host.id = alert.host JOIN org ON org.id = alert.org_id
         WHERE ${where.join(' AND ')} ORDER BY alert.seq LIMIT ?`,
      )
      .all(...args, q.limit) as Row[];
    return rows.map((r) => ({
      seq: r.seq as number,
      uid: r.uid as string,
      org: r.org as string,
      hostId: r.host_id as string,
      timeMs: (r.time_ms as number | null) ?? null,
      severityId: (r.severity_id as number | null) ?? null,
      receivedMs: r.received_ms as number,
      alert: JSON.parse(r.body as string) as unknown,
    }));
  }

  stats(): IntakeStats {
    const one = (sql: string): number => this.db.prepare(sql).pluck().get() as number;
    return {
      orgs: one('SELECT count(*) FROM org'),
      hosts: one('SELECT count(*) FROM host'),
      revokedHosts: one('SELECT count(*) FROM host WHERE revoked_ms IS NOT NULL'),
      hostDays: one('SELECT count(*) FROM host_day'),
      shas: one('SELECT count(*) FROM sha'),
      roots: one('SELECT count(*) FROM root'),
      alerts: one('SELECT count(*) FROM alert'),
    };
  }

  /** Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
