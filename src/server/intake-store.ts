// The baseline server's own database (`<stateDir>/server.db`): orgs and their
// enrolment tokens, enrolled hosts and their credentials, the sightings each
// host uploaded per day, and the alerts endpoints reported.
//
// Sightings are stored one row per host-day, as packed integer ids into two
// dictionaries (sha256 and root domain): 12 bytes a combo, 4 a process, instead
// of ~100 bytes of text, so 100 million sightings stay around a gigabyte.
// A re-upload of a host-day replaces its row: uploads are idempotent.
// Transactions are synchronous (better-sqlite3) and never span an await.
import { enrolmentFacts, HOST_SELECT, hostFrom, IdCache, tokenFrom, tokenIdOf, type Row } from './store-rows.js';
import { openSqlite, type SqliteDatabase } from '../common/sqlite.js';
import { DAY_MS } from '../model/baseline.js';
import { ENROL_TOKEN_PREFIX, HOST_CREDENTIAL_PREFIX, newSecret, secretHash } from '../common/secrets.js';
import type { DayBatch } from './sightings-batch.js';
import type {
  AlertIn,
  AlertQuery,
  AlertsStored,
  AuthResult,
  EnrolRequest,
  EnrolResult,
  HostRow,
  IntakeResult,
  IntakeStats,
  IssuedCredential,
  ServerStore,
  StoredAlert,
  TokenRow,
} from './store.js';
import {
  afterUpload,
  alertChange,
  alertScope,
  checkCredential,
  credentialExpiresMs,
  credentialRotateAfterMs,
  decideEnrolment,
  type CredentialPolicy,
} from './security-rules.js';

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
  // 2: enrolment tokens admit at most max_hosts; a host remembers the token that admitted it, when its
  // credential was issued (and the previous one, good for a grace after a rotation), an operator's
  // re-enrolment grant and its days of uploads; alerts are filed by (host, uid), not by uid alone.
  `ALTER TABLE enrol_token ADD COLUMN max_hosts INTEGER NOT NULL DEFAULT 1000;
   ALTER TABLE host ADD COLUMN token_hash BLOB;
   ALTER TABLE host ADD COLUMN cred_issued_ms INTEGER NOT NULL DEFAULT 0;
   UPDATE host SET cred_issued_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
   ALTER TABLE host ADD COLUMN prev_cred_hash BLOB;
   ALTER TABLE host ADD COLUMN prev_cred_until_ms INTEGER;
   ALTER TABLE host ADD COLUMN reenrol_until_ms INTEGER;
   ALTER TABLE host ADD COLUMN upload_days INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE host ADD COLUMN last_upload_day INTEGER;
   UPDATE host SET upload_days = (SELECT count(DISTINCT received_ms / 86400000) FROM host_day WHERE host_day.host = host.id),
                   last_upload_day = (SELECT max(received_ms) / 86400000 FROM host_day WHERE host_day.host = host.id);
   CREATE INDEX host_by_token ON host (token_hash);
   CREATE INDEX host_by_prev_cred ON host (prev_cred_hash);
   CREATE TABLE alert_by_host (seq INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, host INTEGER NOT NULL,
                               org_id INTEGER NOT NULL, time_ms INTEGER, severity_id INTEGER, received_ms INTEGER NOT NULL,
                               body TEXT NOT NULL, UNIQUE (host, uid));
   INSERT INTO alert_by_host SELECT seq, uid, host, org_id, time_ms, severity_id, received_ms, body FROM alert;
   DROP TABLE alert;
   ALTER TABLE alert_by_host RENAME TO alert;
   CREATE INDEX alert_by_org ON alert (org_id, seq);`,
];

const TOKEN_SELECT = `SELECT enrol_token.*, org.name AS org, (SELECT count(*) FROM host WHERE host.token_hash = enrol_token.hash) AS hosts
                      FROM enrol_token JOIN org ON org.id = enrol_token.org_id`;

export class IntakeStore implements ServerStore {
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
      insertToken: db.prepare<[Buffer, number, number, number]>(
        'INSERT INTO enrol_token (hash, org_id, created_ms, max_hosts) VALUES (?, ?, ?, ?)',
      ),
      tokenByHash: db.prepare<[Buffer], Row>(`${TOKEN_SELECT} WHERE enrol_token.hash = ?`),
      hostByOrgAndId: db.prepare<[number, string], Row>(`${HOST_SELECT} WHERE host.org_id = ? AND host.host_id = ?`),
      hostByCred: db.prepare<[Buffer], Row>(`${HOST_SELECT} WHERE host.cred_hash = ?`),
      hostByPrevCred: db.prepare<[Buffer], Row>(`${HOST_SELECT} WHERE host.prev_cred_hash = ?`),
      hostsById: db.prepare<[string], Row>(`${HOST_SELECT} WHERE host.host_id = ?`),
      insertHost: db.prepare<[number, string, string | null, Buffer, number, Buffer, number]>(
        'INSERT INTO host (org_id, host_id, name, cred_hash, enrolled_ms, token_hash, cred_issued_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      // The credential replaced stays good until prev_cred_until_ms (0 = not at all: an enrolment replaced it).
      rotateCred: db.prepare<[Buffer, number, string | null, number | null, number]>(
        `UPDATE host SET prev_cred_hash = cred_hash, cred_hash = ?, cred_issued_ms = ?, name = coalesce(?, name),
                         prev_cred_until_ms = ?, reenrol_until_ms = NULL WHERE id = ?`,
      ),
      revokeHost: db.prepare<[number, number]>('UPDATE host SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL'),
      allowReenrol: db.prepare<[number, number]>('UPDATE host SET reenrol_until_ms = ? WHERE id = ?'),
      touchHost: db.prepare<[number, number]>('UPDATE host SET last_seen_ms = ? WHERE id = ?'),
      hostUploadDays: db.prepare<[number], { upload_days: number; last_upload_day: number | null }>(
        'SELECT upload_days, last_upload_day FROM host WHERE id = ?',
      ),
      setUploadDays: db.prepare<[number, number, number]>('UPDATE host SET upload_days = ?, last_upload_day = ? WHERE id = ?'),
      shaId: db.prepare<[Buffer], number>('SELECT id FROM sha WHERE sha = ?').pluck(),
      insertSha: db.prepare<[Buffer]>('INSERT INTO sha (sha) VALUES (?)'),
      rootId: db.prepare<[string], number>('SELECT id FROM root WHERE name = ?').pluck(),
      insertRoot: db.prepare<[string]>('INSERT INTO root (name) VALUES (?)'),
      hostDayExists: db.prepare<[number, number], number>('SELECT 1 FROM host_day WHERE host = ? AND day = ?').pluck(),
      upsertHostDay: db.prepare<[number, number, Buffer, Buffer, number, number, number]>(
        'INSERT OR REPLACE INTO host_day (host, day, processes, combos, process_count, combo_count, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      alertBody: db.prepare<[number, string], string>('SELECT body FROM alert WHERE host = ? AND uid = ?').pluck(),
      insertAlert: db.prepare<[string, number, number, number | null, number | null, number, string]>(
        'INSERT INTO alert (uid, host, org_id, time_ms, severity_id, received_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      updateAlert: db.prepare<[number | null, number | null, number, string, number, string]>(
        'UPDATE alert SET time_ms = ?, severity_id = ?, received_ms = ?, body = ? WHERE host = ? AND uid = ?',
      ),
    };
  }

  // -------------------------------------------------------------------------
  // Orgs, tokens, hosts

  /** Creates the org when new and a fresh enrolment token for it that admits at most `maxHosts` hosts. */
  createEnrolToken(org: string, maxHosts: number, nowMs: number): { token: string; tokenId: string; org: string; orgCreated: boolean } {
    return this.db
      .transaction(() => {
        let id = this.stmts.orgByName.get(org)?.id;
        const orgCreated = id === undefined;
        if (id === undefined) id = Number(this.stmts.insertOrg.run(org, nowMs).lastInsertRowid);
        const token = newSecret(ENROL_TOKEN_PREFIX);
        const hash = secretHash(token);
        this.stmts.insertToken.run(hash, id, nowMs, maxHosts);
        return { token, tokenId: tokenIdOf(hash), org, orgCreated };
      })
      .immediate();
  }

  tokens(org: string | null): TokenRow[] {
    const rows = this.db.prepare(`${TOKEN_SELECT} ORDER BY org.name, enrol_token.created_ms`).all() as Row[];
    return rows.map(tokenFrom).filter((t) => org === null || t.org === org);
  }

  revokeToken(idPrefix: string, nowMs: number): { ok: true; token: TokenRow } | { ok: false; error: string } {
    const want = idPrefix.toLowerCase();
    if (!/^[0-9a-f]{8,12}$/.test(want))
      return { ok: false, error: `"${idPrefix}" is not a token id (8 to 12 hex digits, as "rarecon server tokens" lists them)` };
    return this.db
      .transaction((): { ok: true; token: TokenRow } | { ok: false; error: string } => {
        const matches = (this.db.prepare(TOKEN_SELECT).all() as Row[]).filter((r) => tokenIdOf(r.hash as Buffer).startsWith(want));
        if (matches.length === 0) return { ok: false, error: `no enrolment token ${want}` };
        if (matches.length > 1) return { ok: false, error: `${matches.length} tokens start with ${want}: give more digits` };
        const r = matches[0] as Row;
        if (r.revoked_ms === null) this.db.prepare('UPDATE enrol_token SET revoked_ms = ? WHERE hash = ?').run(nowMs, r.hash as Buffer);
        return { ok: true, token: tokenFrom(this.stmts.tokenByHash.get(r.hash as Buffer) as Row) };
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
   * Trades an org enrolment token for a per-host credential, as the shared
   * rules decide (security-rules.ts): a new host id while the token has room;
   * an enrolled one only with its credential as proof or an operator's grant.
   */
  enrol(req: EnrolRequest, policy: CredentialPolicy, nowMs: number): EnrolResult {
    return this.db
      .transaction((): EnrolResult => {
        const t = this.stmts.tokenByHash.get(secretHash(req.token));
        const existing = t === undefined ? undefined : this.stmts.hostByOrgAndId.get(t.org_id as number, req.hostId);
        const decision = decideEnrolment(enrolmentFacts(t, existing, req.proof, nowMs), req.hostId, (t?.org as string | undefined) ?? '');
        if (!decision.ok) return decision;
        const orgId = (t as Row).org_id as number;
        const credential = newSecret(HOST_CREDENTIAL_PREFIX);
        if (decision.action === 'rotate') {
          // The credential replaced by an enrolment is not kept: the host proved itself, or an operator replaced it.
          this.stmts.rotateCred.run(secretHash(credential), nowMs, req.hostName, 0, (existing as Row).id as number);
        } else {
          this.stmts.insertHost.run(orgId, req.hostId, req.hostName, secretHash(credential), nowMs, (t as Row).hash as Buffer, nowMs);
        }
        return {
          ok: true,
          host: hostFrom(this.stmts.hostByOrgAndId.get(orgId, req.hostId) as Row),
          reEnrolled: decision.action === 'rotate',
          by: decision.action === 'rotate' ? decision.by : 'token',
          credential,
          expiresMs: credentialExpiresMs(nowMs, policy),
          rotateAfterMs: credentialRotateAfterMs(nowMs, policy),
        };
      })
      .immediate();
  }

  authenticate(credential: string, policy: CredentialPolicy, nowMs: number): AuthResult {
    const hash = secretHash(credential);
    let r = this.stmts.hostByCred.get(hash);
    let which: 'current' | 'previous' = 'current';
    if (r === undefined) {
      r = this.stmts.hostByPrevCred.get(hash);
      which = 'previous';
    }
    if (r === undefined) return { ok: false, status: 401, code: 'unauthenticated', error: 'unknown host credential: enrol the host again' };
    const host = hostFrom(r);
    if (host.revokedMs !== null)
      return { ok: false, status: 403, code: 'revoked', error: `host ${host.hostId} of org ${host.org} is revoked` };
    const c = checkCredential(
      which,
      { issuedMs: host.credentialIssuedMs, previousUntilMs: (r.prev_cred_until_ms as number | null) ?? null },
      policy,
      nowMs,
    );
    if (!c.ok) return c;
    return { ok: true, host, which };
  }

  rotateCredential(host: HostRow, policy: CredentialPolicy, nowMs: number): IssuedCredential {
    const credential = newSecret(HOST_CREDENTIAL_PREFIX);
    this.stmts.rotateCred.run(secretHash(credential), nowMs, null, nowMs + policy.graceMs, host.ref);
    return { credential, expiresMs: credentialExpiresMs(nowMs, policy), rotateAfterMs: credentialRotateAfterMs(nowMs, policy) };
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

  allowReenrol(hostId: string, org: string, untilMs: number): HostRow | null {
    const orgId = this.stmts.orgByName.get(org)?.id;
    if (orgId === undefined) return null;
    const r = this.stmts.hostByOrgAndId.get(orgId, hostId);
    if (r === undefined || r.revoked_ms !== null) return null;
    this.stmts.allowReenrol.run(untilMs, r.id as number);
    return hostFrom(r);
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
        const u = this.stmts.hostUploadDays.get(host.ref);
        if (u !== undefined) {
          const next = afterUpload({ uploadDays: u.upload_days, lastUploadDay: u.last_upload_day }, nowMs);
          if (next.uploadDays !== u.upload_days || next.lastUploadDay !== u.last_upload_day)
            this.stmts.setUploadDays.run(next.uploadDays, next.lastUploadDay, host.ref);
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

  /**
   * Files each alert under the host that sent it (security-rules.ts): the
   * same uid from another host is another row. A redelivery (same host, uid
   * and body) writes nothing; another body for the same (host, uid) replaces it.
   */
  storeAlerts(host: HostRow, alerts: readonly AlertIn[], nowMs: number): AlertsStored {
    return this.db
      .transaction((): AlertsStored => {
        const out: AlertsStored = { stored: 0, updated: 0, duplicates: 0 };
        for (const a of alerts) {
          const at = alertScope(host, a.uid);
          const change = alertChange(this.stmts.alertBody.get(at.hostRef, at.uid) ?? null, a.body);
          if (change === 'duplicate') out.duplicates++;
          else if (change === 'update') {
            this.stmts.updateAlert.run(a.timeMs, a.severityId, nowMs, a.body, at.hostRef, at.uid);
            out.updated++;
          } else {
            this.stmts.insertAlert.run(at.uid, at.hostRef, at.orgId, a.timeMs, a.severityId, nowMs, a.body);
            out.stored++;
          }
        }
        return out;
      })
      .immediate();
  }

  queryAlerts(q: AlertQuery): StoredAlert[] {
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
