// The server's store on PostgreSQL (server.store postgresql): the same
// interface and the same decisions (security-rules.ts) as the SQLite store,
// over rows that any number of server nodes share. A node keeps nothing but
// caches of dictionary ids, which never change once given.
//
// Races between nodes are settled by row locks: an enrolment locks its token's
// row (the host cap holds across nodes) and inserts a new host ON CONFLICT (two
// tokens of one org enrolling one new host id: the second is decided against the
// first's host), an upload locks its host's row (its host-days and upload-day
// count change together).
import { HEX_VALUE } from '../baseline/hex.js';
import { enrolmentFacts, HOST_SELECT, hostFrom, IdCache, tokenFrom, tokenIdOf, type Row } from './store-rows.js';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { DAY_MS } from '../model/baseline.js';
import { ENROL_TOKEN_PREFIX, HOST_CREDENTIAL_PREFIX, newSecret, secretHash } from '../common/secrets.js';
import { rootHash } from '../baseline/bucket-keys.js';
import type { LogFn } from '../common/log.js';
import type { ServerPostgresConfig } from '../config/defaults.js';
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
import { bucketOf, inTransaction, maintainPartitions, migrate, openPool } from './pg-schema.js';

const TOKEN_SELECT = `SELECT enrol_token.*, org.name AS org,
                      (SELECT count(*)::int FROM host WHERE host.token_hash = enrol_token.hash) AS hosts
                      FROM enrol_token JOIN org ON org.id = enrol_token.org_id`;

/** Postgres error code of a row that fits no partition (a day whose partition is not made yet). */
const NO_PARTITION = '23514';

export interface PgStoreOptions {
  /** Days before today whose uploads are still taken (window + retained days): their partitions are kept made. */
  acceptDaysBack: number;
  dictionaryCacheEntries?: number;
}

export class PgStore implements ServerStore {
  private readonly shaIds: IdCache<string>;
  private readonly rootIds: IdCache<string>;
  private closed = false;

  private constructor(
    readonly pool: pg.Pool,
    private readonly opts: PgStoreOptions,
  ) {
    const n = opts.dictionaryCacheEntries ?? 2_000_000;
    this.shaIds = new IdCache(n);
    this.rootIds = new IdCache(n);
  }

  /** Connects, brings the schema up to date and makes the partitions of the days uploads may carry. */
  static async open(cfg: ServerPostgresConfig, log: LogFn, opts: PgStoreOptions, nowMs: number): Promise<PgStore> {
    if (cfg.url === null) throw new Error('server.store postgresql needs server.postgres.url');
    const pool = openPool(cfg.url, cfg, log, 'primary');
    try {
      await migrate(pool);
      const store = new PgStore(pool, opts);
      await store.makePartitions(nowMs);
      return store;
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new Error(`cannot open the PostgreSQL store at ${redactUrl(cfg.url)}: ${(e as Error).message}`);
    }
  }

  /** Partitions from the oldest day an upload may carry to the day after tomorrow (clocks differ). */
  async makePartitions(nowMs: number): Promise<void> {
    const today = Math.floor(nowMs / DAY_MS);
    await maintainPartitions(this.pool, today - this.opts.acceptDaysBack, today + 2, null);
  }

  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  // -------------------------------------------------------------------------
  // Orgs, tokens, hosts

  async createEnrolToken(
    org: string,
    maxHosts: number,
    nowMs: number,
  ): Promise<{ token: string; tokenId: string; org: string; orgCreated: boolean }> {
    return this.tx(async (c) => {
      const ins = await c.query<{ id: number }>(
        'INSERT INTO org (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
        [org, nowMs],
      );
      const orgCreated = ins.rows.length > 0;
      const id = orgCreated
        ? (ins.rows[0] as { id: number }).id
        : ((await c.query<{ id: number }>('SELECT id FROM org WHERE name = $1', [org])).rows[0] as { id: number }).id;
      const token = newSecret(ENROL_TOKEN_PREFIX);
      const hash = secretHash(token);
      await c.query('INSERT INTO enrol_token (hash, org_id, created_ms, max_hosts) VALUES ($1, $2, $3, $4)', [hash, id, nowMs, maxHosts]);
      return { token, tokenId: tokenIdOf(hash), org, orgCreated };
    });
  }

  async tokens(org: string | null): Promise<TokenRow[]> {
    const r = await this.pool.query(`${TOKEN_SELECT} ORDER BY org.name COLLATE "C", enrol_token.created_ms`);
    return r.rows.map(tokenFrom).filter((t) => org === null || t.org === org);
  }

  async revokeToken(idPrefix: string, nowMs: number): Promise<{ ok: true; token: TokenRow } | { ok: false; error: string }> {
    const want = idPrefix.toLowerCase();
    if (!/^[0-9a-f]{8,12}$/.test(want))
      return { ok: false, error: `"${idPrefix}" is not a token id (8 to 12 hex digits, as "rarecon server tokens" lists them)` };
    return this.tx(async (c): Promise<{ ok: true; token: TokenRow } | { ok: false; error: string }> => {
      const matches = (await c.query(TOKEN_SELECT)).rows.filter((r: Row) => tokenIdOf(r.hash as Buffer).startsWith(want));
      if (matches.length === 0) return { ok: false, error: `no enrolment token ${want}` };
      if (matches.length > 1) return { ok: false, error: `${matches.length} tokens start with ${want}: give more digits` };
      const r = matches[0] as Row;
      await c.query('UPDATE enrol_token SET revoked_ms = $1 WHERE hash = $2 AND revoked_ms IS NULL', [nowMs, r.hash]);
      return { ok: true, token: tokenFrom((await c.query(`${TOKEN_SELECT} WHERE enrol_token.hash = $1`, [r.hash])).rows[0] as Row) };
    });
  }

  async enrol(req: EnrolRequest, policy: CredentialPolicy, nowMs: number): Promise<EnrolResult> {
    return this.tx(async (c): Promise<EnrolResult> => {
      const hash = secretHash(req.token);
      // The token's row locked: enrolments through it, from any node, one at a time (its host cap).
      const locked = await c.query('SELECT hash FROM enrol_token WHERE hash = $1 FOR UPDATE', [hash]);
      const t =
        locked.rows.length === 0 ? undefined : ((await c.query(`${TOKEN_SELECT} WHERE enrol_token.hash = $1`, [hash])).rows[0] as Row);
      const credential = newSecret(HOST_CREDENTIAL_PREFIX);
      // Twice at most: an enrolment of the same new host id through another token of the org (it locked
      // another row) may insert it between our read and our insert; then it is decided as SQLite would,
      // against the host that enrolment made.
      for (let attempt = 0; ; attempt++) {
        const existing =
          t === undefined
            ? undefined
            : ((await c.query(`${HOST_SELECT} WHERE host.org_id = $1 AND host.host_id = $2 FOR UPDATE OF host`, [t.org_id, req.hostId]))
                .rows[0] as Row | undefined);
        const decision = decideEnrolment(enrolmentFacts(t, existing, req.proof, nowMs), req.hostId, (t?.org as string | undefined) ?? '');
        if (!decision.ok) return decision;
        const orgId = (t as Row).org_id as number;
        if (decision.action === 'rotate') {
          await this.rotateCred(c, secretHash(credential), nowMs, req.hostName, 0, (existing as Row).id as number);
        } else {
          // ON CONFLICT waits for the other enrolment to commit (or roll back) and then skips the row.
          const ins = await c.query(
            `INSERT INTO host (org_id, host_id, name, cred_hash, enrolled_ms, token_hash, cred_issued_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (org_id, host_id) DO NOTHING RETURNING id`,
            [orgId, req.hostId, req.hostName, secretHash(credential), nowMs, hash, nowMs],
          );
          if (ins.rows.length === 0) {
            if (attempt === 0) continue;
            throw new Error(`host ${req.hostId} of org ${t?.org as string} was enrolled and is gone again during this enrolment`);
          }
        }
        const host = hostFrom(
          (await c.query(`${HOST_SELECT} WHERE host.org_id = $1 AND host.host_id = $2`, [orgId, req.hostId])).rows[0] as Row,
        );
        return {
          ok: true,
          host,
          reEnrolled: decision.action === 'rotate',
          by: decision.action === 'rotate' ? decision.by : 'token',
          credential,
          expiresMs: credentialExpiresMs(nowMs, policy),
          rotateAfterMs: credentialRotateAfterMs(nowMs, policy),
        };
      }
    });
  }

  private async rotateCred(
    c: pg.ClientBase | pg.Pool,
    credHash: Buffer,
    nowMs: number,
    name: string | null,
    prevUntilMs: number,
    ref: number,
  ): Promise<void> {
    // The credential replaced stays good until prev_cred_until_ms (0 = not at all: an enrolment replaced it).
    await c.query(
      `UPDATE host SET prev_cred_hash = cred_hash, cred_hash = $1, cred_issued_ms = $2, name = coalesce($3, name),
                       prev_cred_until_ms = $4, reenrol_until_ms = NULL WHERE id = $5`,
      [credHash, nowMs, name, prevUntilMs, ref],
    );
  }

  async authenticate(credential: string, policy: CredentialPolicy, nowMs: number): Promise<AuthResult> {
    const hash = secretHash(credential);
    const rows = (
      await this.pool.query({
        name: 'rarecon-auth',
        text: `${HOST_SELECT} WHERE host.cred_hash = $1 OR host.prev_cred_hash = $1`,
        values: [hash],
      })
    ).rows as Row[];
    const current = rows.find((r) => (r.cred_hash as Buffer).equals(hash));
    const r = current ?? rows[0];
    const which: 'current' | 'previous' = current !== undefined ? 'current' : 'previous';
    if (r === undefined) return { ok: false, status: 401, code: 'unauthenticated', error: 'unknown host credential: enrol the host again' };
    const host = hostFrom(r);
    if (host.revokedMs !== null)
      return { ok: false, status: 403, code: 'revoked', error: `host ${host.hostId} of org ${host.org} is revoked` };
    const chk = checkCredential(
      which,
      { issuedMs: host.credentialIssuedMs, previousUntilMs: (r.prev_cred_until_ms as number | null) ?? null },
      policy,
      nowMs,
    );
    if (!chk.ok) return chk;
    return { ok: true, host, which };
  }

  async rotateCredential(host: HostRow, policy: CredentialPolicy, nowMs: number): Promise<IssuedCredential> {
    const credential = newSecret(HOST_CREDENTIAL_PREFIX);
    await this.rotateCred(this.pool, secretHash(credential), nowMs, null, nowMs + policy.graceMs, host.ref);
    return { credential, expiresMs: credentialExpiresMs(nowMs, policy), rotateAfterMs: credentialRotateAfterMs(nowMs, policy) };
  }

  async touch(host: HostRow, nowMs: number): Promise<void> {
    // At most once a minute: a write per request would cost every request a commit.
    if (host.lastSeenMs !== null && nowMs - host.lastSeenMs < 60_000) return;
    await this.pool.query('UPDATE host SET last_seen_ms = $1 WHERE id = $2', [nowMs, host.ref]);
  }

  async revokeHost(hostId: string, org: string | null, nowMs: number): Promise<HostRow[]> {
    return this.tx(async (c) => {
      const rows = (await c.query(`${HOST_SELECT} WHERE host.host_id = $1`, [hostId])).rows
        .map(hostFrom)
        .filter((h) => org === null || h.org === org);
      const out: HostRow[] = [];
      for (const h of rows) {
        const u = await c.query('UPDATE host SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL', [nowMs, h.ref]);
        if ((u.rowCount ?? 0) > 0) out.push({ ...h, revokedMs: nowMs });
      }
      return out;
    });
  }

  async allowReenrol(hostId: string, org: string, untilMs: number): Promise<HostRow | null> {
    const r = (await this.pool.query(`${HOST_SELECT} WHERE org.name = $1 AND host.host_id = $2`, [org, hostId])).rows[0] as Row | undefined;
    if (r === undefined || r.revoked_ms !== null) return null;
    await this.pool.query('UPDATE host SET reenrol_until_ms = $1 WHERE id = $2', [untilMs, r.id]);
    return hostFrom(r);
  }

  async hosts(): Promise<HostRow[]> {
    return (await this.pool.query(`${HOST_SELECT} ORDER BY org.name COLLATE "C", host.host_id COLLATE "C"`)).rows.map(hostFrom);
  }

  // -------------------------------------------------------------------------
  // Sightings

  /**
   * The ids of these sha256s (hex) and root domains into `shaOut` and
   * `rootOut`, made in the dictionaries when new. Outside the upload's
   * transaction: an id given stays good even if the upload fails. Keys go in
   * sorted, so two nodes adding the same new keys cannot deadlock.
   */
  private async intern(
    shas: Iterable<string>,
    roots: Iterable<string>,
    shaOut: Map<string, number>,
    rootOut: Map<string, number>,
  ): Promise<{ shas: string[]; roots: string[] }> {
    const newShas: string[] = [];
    const newRoots: string[] = [];
    for (const h of shas) {
      const id = this.shaIds.get(h);
      if (id === undefined) newShas.push(h);
      else shaOut.set(h, id);
    }
    for (const n of roots) {
      const id = this.rootIds.get(n);
      if (id === undefined) newRoots.push(n);
      else rootOut.set(n, id);
    }
    if (newShas.length === 0 && newRoots.length === 0) return { shas: [], roots: [] };
    newShas.sort();
    newRoots.sort();
    const bytes = newShas.map((h) => Buffer.from(h, 'hex'));
    // One round trip: the keys added now come back from RETURNING, those already there (the conflicts only:
    // most keys sent are new) from the select. A key another node adds at this very moment may come back from
    // neither; storeSightings asks again.
    const r = await this.pool.query<{ kind: number; id: number; sha: Buffer | null; name: string | null }>({
      name: 'rarecon-intern-2',
      text: `WITH s AS (INSERT INTO sha (bucket, sha) SELECT * FROM unnest($1::int[], $2::bytea[]) ON CONFLICT (sha) DO NOTHING RETURNING id, sha),
                 r AS (INSERT INTO root (rh, name) SELECT * FROM unnest($3::bigint[], $4::text[]) ON CONFLICT (name) DO NOTHING RETURNING id, name)
             SELECT 0 AS kind, id, sha, NULL::text AS name FROM s
             UNION ALL SELECT 0, id, sha, NULL FROM sha
               WHERE sha = ANY(ARRAY(SELECT unnest($2::bytea[]) EXCEPT ALL SELECT sha FROM s))
             UNION ALL SELECT 1, id, NULL, name FROM r
             UNION ALL SELECT 1, id, NULL, name FROM root
               WHERE name = ANY(ARRAY(SELECT unnest($4::text[]) EXCEPT ALL SELECT name FROM r))`,
      values: [bytes.map(bucketOf), bytes, newRoots.map(rootHash), newRoots],
    });
    for (const row of r.rows) {
      if (row.kind === 0) {
        const h = (row.sha as Buffer).toString('hex');
        this.shaIds.set(h, row.id);
        shaOut.set(h, row.id);
      } else {
        this.rootIds.set(row.name as string, row.id);
        rootOut.set(row.name as string, row.id);
      }
    }
    return { shas: newShas.filter((h) => !shaOut.has(h)), roots: newRoots.filter((n) => !rootOut.has(n)) };
  }

  async storeSightings(host: HostRow, days: readonly DayBatch[], nowMs: number): Promise<IntakeResult> {
    const shas = new Set<string>();
    const roots = new Set<string>();
    for (const d of days) {
      for (const p of d.processes) shas.add(p);
      for (const c of d.combos) {
        shas.add(c.sha256);
        roots.add(c.rootDomain);
      }
    }
    // This upload's ids, looked up once per distinct key (the shared cache is large: a lookup there costs a cache miss).
    const shaIds = new Map<string, number>();
    const rootIds = new Map<string, number>();
    const left = await this.intern(shas, roots, shaIds, rootIds);
    // A key another node was adding at the same moment: its id is there now.
    if (left.shas.length > 0 || left.roots.length > 0) {
      const still = await this.intern(left.shas, left.roots, shaIds, rootIds);
      if (still.shas.length > 0) throw new Error(`sha256 ${still.shas[0] as string} has no id after interning`);
      if (still.roots.length > 0) throw new Error(`root domain ${still.roots[0] as string} has no id after interning`);
    }
    try {
      return await this.storeSightingsTx(host, days, nowMs, shaIds, rootIds);
    } catch (e) {
      if ((e as { code?: string }).code !== NO_PARTITION) throw e;
      // A day no partition is made for yet (the first upload after midnight, a clock ahead): make them, then once more.
      const ds = days.map((d) => Math.floor(d.dayMs / DAY_MS));
      await maintainPartitions(this.pool, Math.min(...ds), Math.max(...ds), null);
      return this.storeSightingsTx(host, days, nowMs, shaIds, rootIds);
    }
  }

  private async storeSightingsTx(
    host: HostRow,
    days: readonly DayBatch[],
    nowMs: number,
    shaIds: ReadonlyMap<string, number>,
    rootIds: ReadonlyMap<string, number>,
  ): Promise<IntakeResult> {
    return this.tx(async (c) => {
      const result: IntakeResult = { days: 0, processes: 0, combos: 0, replaced: 0 };
      const dayNums = days.map((d) => Math.floor(d.dayMs / DAY_MS));
      // The host's row locked (its uploads, through any node, one at a time) and the host-days this replaces.
      const head = (
        await c.query<{ upload_days: number; last_upload_day: number | null; old: number[] | null }>({
          name: 'rarecon-upload-head',
          text: `SELECT h.upload_days, h.last_upload_day,
                        (SELECT array_agg(hd.day) FROM host_day hd WHERE hd.host = h.id AND hd.day = ANY($2::int[])) AS old
                 FROM host h WHERE h.id = $1 FOR UPDATE OF h`,
          values: [host.ref, dayNums],
        })
      ).rows[0];
      if (head === undefined) throw new Error(`host ${host.hostId} of org ${host.org} is gone from the store`);
      const h = { upload_days: head.upload_days, last_upload_day: head.last_upload_day };
      const ref = host.ref;
      if (head.old !== null && head.old.length > 0) {
        await c.query({
          name: 'rarecon-replace',
          text: 'DELETE FROM sighting WHERE day = ANY($1::int[]) AND host = $2',
          values: [head.old, ref],
        });
        result.replaced += head.old.length;
      }
      // COPY in binary: PostgreSQL reads int arrays as bytes, not as text to parse (array_in), and so does not Node.
      const rows = new CopyRows();
      for (let i = 0; i < days.length; i++) {
        const d = days[i] as DayBatch;
        const day = dayNums[i] as number;
        // The day's sightings split by part (first hex digit of the sha256): sha, root, port ids per part.
        const parts: Array<{ s: number[]; r: number[]; p: number[] }> = [];
        const put = (hex: string, root: number, port: number): void => {
          const k = HEX_VALUE[hex.charCodeAt(0)] as number;
          let x = parts[k];
          if (x === undefined) {
            x = { s: [], r: [], p: [] };
            parts[k] = x;
          }
          x.s.push(shaIds.get(hex) as number);
          x.r.push(root);
          x.p.push(port);
        };
        for (const p of d.processes) put(p, 0, 0);
        for (const cb of d.combos) put(cb.sha256, rootIds.get(cb.rootDomain) as number, cb.port);
        parts.forEach((x, k) => rows.add(day, ref, k, x.s, x.r, x.p));
        result.days++;
        result.processes += d.processes.length;
        result.combos += d.combos.length;
      }
      const next = afterUpload({ uploadDays: h.upload_days, lastUploadDay: h.last_upload_day }, nowMs);
      // The host-days and the host's upload-day count in one statement (one round trip).
      await c.query({
        name: 'rarecon-host-day',
        text: `WITH hd AS (INSERT INTO host_day (host, day, process_count, combo_count, received_ms)
                 SELECT $1, d, p, k, $2 FROM unnest($3::int[], $4::int[], $5::int[]) AS t(d, p, k)
                 ON CONFLICT (host, day) DO UPDATE SET process_count = excluded.process_count,
                   combo_count = excluded.combo_count, received_ms = excluded.received_ms)
               UPDATE host SET upload_days = $6, last_upload_day = $7
               WHERE id = $1 AND (upload_days <> $6 OR last_upload_day IS DISTINCT FROM $7)`,
        values: [
          ref,
          nowMs,
          dayNums,
          days.map((d) => d.processes.length),
          days.map((d) => d.combos.length),
          next.uploadDays,
          next.lastUploadDay,
        ],
      });
      if (!rows.empty()) {
        const sink = c.query(copyFrom('COPY sighting (day, host, part, shas, roots, ports) FROM STDIN (FORMAT binary)'));
        await pipeline(Readable.from(rows.pieces()), sink);
      }
      return result;
    });
  }

  /** Drops the day partitions before `beforeDay` (and their host-day rows); returns the host-days dropped. */
  async pruneBefore(beforeDay: number): Promise<number> {
    const r = await this.pool.query('DELETE FROM host_day WHERE day < $1', [beforeDay]);
    const today = beforeDay;
    await maintainPartitions(this.pool, today, today - 1, beforeDay);
    return r.rowCount ?? 0;
  }

  // -------------------------------------------------------------------------
  // Alerts

  async storeAlerts(host: HostRow, alerts: readonly AlertIn[], nowMs: number): Promise<AlertsStored> {
    return this.tx(async (c) => {
      const out: AlertsStored = { stored: 0, updated: 0, duplicates: 0 };
      const uids = alerts.map((a) => alertScope(host, a.uid).uid);
      const have = new Map<string, string>();
      for (const r of (
        await c.query<{ uid: string; body: string }>('SELECT uid, body FROM alert WHERE host = $1 AND uid = ANY($2::text[])', [
          host.ref,
          uids,
        ])
      ).rows)
        have.set(r.uid, r.body);
      for (const a of alerts) {
        const at = alertScope(host, a.uid);
        const change = alertChange(have.get(at.uid) ?? null, a.body);
        if (change === 'duplicate') out.duplicates++;
        else if (change === 'update') {
          await c.query('UPDATE alert SET time_ms = $1, severity_id = $2, received_ms = $3, body = $4 WHERE host = $5 AND uid = $6', [
            a.timeMs,
            a.severityId,
            nowMs,
            a.body,
            at.hostRef,
            at.uid,
          ]);
          have.set(at.uid, a.body);
          out.updated++;
        } else {
          // Another node may have stored this very (host, uid) since: then it is that row's redelivery or update.
          const ins = await c.query(
            `INSERT INTO alert (uid, host, org_id, time_ms, severity_id, received_ms, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (host, uid) DO UPDATE SET time_ms = excluded.time_ms, severity_id = excluded.severity_id,
               received_ms = excluded.received_ms, body = excluded.body WHERE alert.body <> excluded.body
             RETURNING (xmax = 0) AS inserted`,
            [at.uid, at.hostRef, at.orgId, a.timeMs, a.severityId, nowMs, a.body],
          );
          const row = ins.rows[0] as { inserted: boolean } | undefined;
          if (row === undefined) out.duplicates++;
          else if (row.inserted) out.stored++;
          else out.updated++;
          have.set(at.uid, a.body);
        }
      }
      return out;
    });
  }

  async queryAlerts(q: AlertQuery): Promise<StoredAlert[]> {
    const where: string[] = ['alert.seq > $1'];
    const args: Array<string | number> = [q.afterSeq];
    if (q.org !== null) {
      args.push(q.org);
      where.push(`org.name = $${args.length}`);
    }
    if (q.hostId !== null) {
      args.push(q.hostId);
      where.push(`host.host_id = $${args.length}`);
    }
    if (q.sinceMs !== null) {
      args.push(q.sinceMs);
      where.push(`alert.time_ms >= $${args.length}`);
    }
    args.push(q.limit);
    const rows = (
      await this.pool.query(
        `SELECT alert.*, org.name AS org, host.host_id AS host_id FROM alert
         JOIN host ON host.id = alert.host JOIN org ON org.id = alert.org_id
         WHERE ${where.join(' AND ')} ORDER BY alert.seq LIMIT $${args.length}`,
        args,
      )
    ).rows as Row[];
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

  async stats(): Promise<IntakeStats> {
    const r = (
      await this.pool.query(
        `SELECT (SELECT count(*) FROM org)::int AS orgs, (SELECT count(*) FROM host)::int AS hosts,
                (SELECT count(*) FROM host WHERE revoked_ms IS NOT NULL)::int AS revoked,
                (SELECT count(*) FROM host_day)::int AS host_days, (SELECT count(*) FROM sha)::int AS shas,
                (SELECT count(*) FROM root)::int AS roots, (SELECT count(*) FROM alert)::int AS alerts`,
      )
    ).rows[0] as Record<string, number>;
    return {
      orgs: r.orgs as number,
      hosts: r.hosts as number,
      revokedHosts: r.revoked as number,
      hostDays: r.host_days as number,
      shas: r.shas as number,
      roots: r.roots as number,
      alerts: r.alerts as number,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

const INT4_OID = 23;
const COPY_PIECE_BYTES = 256 * 1024;

/**
 * Rows of sighting (day, host, part, shas, roots, ports) in COPY's binary
 * format, in pieces of about 256 KiB: one write per piece, not per row.
 */
class CopyRows {
  private readonly done: Buffer[] = [];
  private buf = Buffer.allocUnsafe(COPY_PIECE_BYTES);
  private at = 0;
  private count = 0;

  constructor() {
    // Signature, flags, header extension length.
    this.bytes(Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'));
    this.int32(0);
    this.int32(0);
  }

  empty(): boolean {
    return this.count === 0;
  }

  add(day: number, host: number, part: number, shas: number[], roots: number[], ports: number[]): void {
    this.count++;
    this.room(2 + 3 * 8 + 3 * (24 + 8 * shas.length));
    this.buf.writeInt16BE(6, this.at);
    this.at += 2;
    for (const v of [day, host, part]) {
      this.int32(4);
      this.int32(v);
    }
    for (const a of [shas, roots, ports]) {
      // int4[]: dimensions 1, no nulls, element type, length, lower bound 1; each element its length and value.
      this.int32(20 + 8 * a.length);
      this.int32(1);
      this.int32(0);
      this.int32(INT4_OID);
      this.int32(a.length);
      this.int32(1);
      for (const v of a) {
        this.int32(4);
        this.int32(v);
      }
    }
  }

  *pieces(): Generator<Buffer> {
    this.room(2);
    this.buf.writeInt16BE(-1, this.at);
    this.at += 2;
    this.done.push(this.buf.subarray(0, this.at));
    yield* this.done;
  }

  private int32(v: number): void {
    this.buf.writeInt32BE(v, this.at);
    this.at += 4;
  }

  private bytes(b: Buffer): void {
    b.copy(this.buf, this.at);
    this.at += b.length;
  }

  /** A fresh buffer when this one cannot hold `n` more bytes (a row larger than a piece gets one of its own size). */
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    if (this.at > 0) this.done.push(this.buf.subarray(0, this.at));
    this.buf = Buffer.allocUnsafe(Math.max(COPY_PIECE_BYTES, n));
    this.at = 0;
  }
}

/** A connection URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}
