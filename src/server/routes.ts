// The HTTP API of the baseline server, version 1 (documented in docs/server.md):
// a table of routes, one handler each, and the steps they share (auth, bodies, error replies).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SIGNED_MEDIA_TYPE, signContent, type SigningKey } from '../baseline/signature.js';
import type { LogFn } from '../common/log.js';
import { DAY_MS } from '../model/baseline.js';
import { PRODUCT_VERSION } from '../model/product.js';
import type { ServerConfig } from '../config/defaults.js';
import type { AlertsStored, HostRow, ServerStore } from './store.js';
import type { CredentialPolicy } from './security-rules.js';
import type { RequestLimits, RouteClass, Take } from './rate-limit.js';
import type { MemoryBudget, Reservation } from './memory-budget.js';
import { encodeRows, type Publication, type PublishedVersion } from './publication.js';
import { checkSightingsBatch } from './sightings-batch.js';
import { parseAlertsBody } from './alerts-batch.js';
import { bearer, notModified, readBody, readJson, sendBytes, sendError, sendJson } from './http-io.js';
import { sameSecret } from '../common/secrets.js';
import { parseKey } from '../baseline/bucket-keys.js';
import type { AggregateResult } from './aggregate.js';

export interface RouteContext {
  cfg: ServerConfig;
  intake: ServerStore;
  credentialPolicy: CredentialPolicy;
  limits: RequestLimits;
  budget: MemoryBudget;
  /** Alerts taken since start: new, updated (a later count), redelivered (the very body already held). */
  alertTotals: AlertsStored;
  /** The pin endpoints check (`sha256:<hex>` of the certificate); null over plain HTTP. */
  certSha256: string | null;
  publication: Publication;
  key: SigningKey;
  adminToken: string;
  log: LogFn;
  now: () => number;
  startedMs: number;
  building: () => boolean;
  buildNow: () => Promise<AggregateResult>;
  /** A build that starts after the one running (if any): it sees every upload answered so far. */
  buildFresh: () => Promise<AggregateResult>;
  /** Signed bodies of the current version, by request; cleared when a version is published. */
  signedCache: Map<string, Buffer>;
}

/** One request as a handler sees it. */
interface Call {
  ctx: RouteContext;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The ids named in the route's path (`:prefix`), as sent. */
  params: Readonly<Record<string, string>>;
  cls: RouteClass;
  /** The request's share of the memory budget, given back when the answer is done. */
  reservation: Reservation;
}

interface Route {
  method: 'GET' | 'POST';
  /** An exact path, or one with an id segment named `:name`. */
  path: string;
  /** Which rate limits apply (rate-limit.ts). */
  cls: RouteClass;
  handler: (c: Call) => void | Promise<void>;
}

const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/v1/health', cls: 'open', handler: health },
  { method: 'POST', path: '/v1/enroll', cls: 'enrol', handler: enrol },
  { method: 'POST', path: '/v1/credential', cls: 'upload', handler: rotateCredential },
  { method: 'POST', path: '/v1/sightings', cls: 'upload', handler: storeSightings },
  { method: 'POST', path: '/v1/alerts', cls: 'upload', handler: storeAlerts },
  { method: 'GET', path: '/v1/alerts', cls: 'admin', handler: listAlerts },
  { method: 'POST', path: '/v1/admin/build', cls: 'admin', handler: adminBuild },
  { method: 'GET', path: '/v1/admin/hosts', cls: 'admin', handler: listHosts },
  { method: 'GET', path: '/v1/admin/tokens', cls: 'admin', handler: listTokens },
  { method: 'GET', path: '/v1/admin/stats', cls: 'admin', handler: adminStats },
  { method: 'GET', path: '/v1/baseline', cls: 'download', handler: baselineInfo },
  { method: 'GET', path: '/v1/baseline/snapshot', cls: 'download', handler: snapshot },
  { method: 'GET', path: '/v1/baseline/delta', cls: 'download', handler: delta },
  { method: 'GET', path: '/v1/baseline/buckets/:prefix', cls: 'download', handler: oneBucket },
  { method: 'POST', path: '/v1/baseline/buckets', cls: 'download', handler: someBuckets },
];

const LIMIT_NAMES: Record<Exclude<RouteClass, 'open'>, { what: string; address: string; credential: string }> = {
  enrol: { what: 'enrolment requests', address: 'enrolPerAddress', credential: '' },
  upload: { what: 'uploads', address: 'uploadPerAddress', credential: 'uploadPerCredential' },
  download: { what: 'downloads', address: 'downloadPerAddress', credential: 'downloadPerCredential' },
  admin: { what: 'admin requests', address: 'adminPerAddress', credential: '' },
};

const ENROL_MAX_BODY_BYTES = 64 * 1024;
const HOST_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const SIGNED_CACHE_MAX = 512;
/** Alerts stored in one transaction. */
const ALERTS_PER_STORE = 500;

type PathMatch = (path: string) => Record<string, string> | null;

function pathMatcher(pattern: string): PathMatch {
  const names: string[] = [];
  const source = pattern
    .split('/')
    .map((seg) => {
      if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(seg.slice(1));
      return '([^/]+)';
    })
    .join('/');
  if (names.length === 0) return (path) => (path === pattern ? {} : null);
  const re = new RegExp(`^${source}$`);
  return (path) => {
    const m = re.exec(path);
    if (m === null) return null;
    const params: Record<string, string> = {};
    names.forEach((name, i) => (params[name] = m[i + 1] as string));
    return params;
  };
}

const MATCHERS: ReadonlyArray<{ route: Route; match: PathMatch }> = ROUTES.map((route) => ({ route, match: pathMatcher(route.path) }));

/** Answers one request: its route's handler, 405 on a route's path with another method, 404 elsewhere. */
export async function route(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  let pathKnown = false;
  for (const { route: r, match } of MATCHERS) {
    const params = match(path);
    if (params === null) continue;
    if (r.method !== method) {
      pathKnown = true;
      continue;
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const t = ctx.limits.address(r.cls, address, ctx.now());
    if (!t.ok) return tooMany(ctx, req, res, r.cls, `from ${address}`, 'address', t);
    const reservation = ctx.budget.open();
    res.once('close', () => reservation.release());
    return r.handler({ ctx, req, res, url, params, cls: r.cls, reservation });
  }
  if (pathKnown) return sendError(req, res, 405, 'method-not-allowed', `${method} is not allowed on ${path}`);
  sendError(req, res, 404, 'not-found', `no route ${path} (routes are under /v1: see the server README)`);
}

// ---------------------------------------------------------------------------
// Shared steps

function fail(c: Call, status: number, code: string, message: string): void {
  if (status === 503 && code === 'busy') {
    // Over the memory budget; the rest of the body is read and dropped (http-io.ts), so the client hears why.
    return sendError(c.req, c.res, status, code, message, { 'retry-after': String(BUSY_RETRY_AFTER_S) });
  }
  sendError(c.req, c.res, status, code, message);
}

/** Seconds a client over the memory budget waits: long enough for a large body in progress to be done. */
const BUSY_RETRY_AFTER_S = 5;

/** 429 with Retry-After, logged at most once a minute per limit and key kind (a flood must not flood the log). */
function tooMany(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  cls: RouteClass,
  who: string,
  by: 'address' | 'credential',
  t: Extract<Take, { ok: false }>,
): void {
  const names = LIMIT_NAMES[cls as Exclude<RouteClass, 'open'>];
  const setting = `server.rateLimits.${by === 'address' ? names.address : names.credential}`;
  if (ctx.limits.shouldLog(`${cls}:${by}`, ctx.now())) {
    ctx.log('warn', 'Requests over a rate limit are refused (429).', {
      limit: setting,
      who,
      refusedTotal: ctx.limits.refused[cls as 'enrol'],
    });
  }
  sendError(req, res, 429, 'rate-limited', `too many ${names.what} ${who} (${setting}); retry after ${t.retryAfterS} s`, {
    'retry-after': String(t.retryAfterS),
  });
}

function badRequest(c: Call, message: string): void {
  fail(c, 400, 'bad-request', message);
}

/** An upload refused whole (sightings, alerts): 413 when over a limit, 400 otherwise. */
function refuseBatch(c: Call, status: number, error: string): void {
  fail(c, status, status === 413 ? 'too-large' : 'bad-batch', `the batch was refused whole, nothing stored: ${error}`);
}

function sendNotModified(c: Call, etag: string): void {
  c.res.writeHead(304, { etag });
  c.res.end();
}

function sendSigned(c: Call, cur: PublishedVersion, body: Buffer, etag?: string): void {
  const headers: Record<string, string> = etag === undefined ? {} : { etag };
  headers['x-rarecon-version'] = String(cur.version);
  sendBytes(c.req, c.res, 200, SIGNED_MEDIA_TYPE, body, headers);
}

/** The host a credential belongs to (its last-seen time updated), or null after answering 401/403/429. */
async function hostAuth(c: Call): Promise<HostRow | null> {
  return (await hostAuthWhich(c))?.host ?? null;
}

/** As hostAuth, and whether the credential was the host's current one or the previous one (within the grace after a rotation). */
async function hostAuthWhich(c: Call): Promise<{ host: HostRow; which: 'current' | 'previous' } | null> {
  const { ctx } = c;
  const cred = bearer(c.req);
  if (cred === null) {
    fail(c, 401, 'unauthenticated', 'send the host credential as "Authorization: Bearer <credential>" (enrol with POST /v1/enroll first)');
    return null;
  }
  const nowMs = ctx.now();
  const a = await ctx.intake.authenticate(cred, ctx.credentialPolicy, nowMs);
  if (!a.ok) {
    fail(c, a.status, a.code, a.error);
    return null;
  }
  const t = ctx.limits.credential(c.cls, a.host.ref, nowMs);
  if (!t.ok) {
    tooMany(ctx, c.req, c.res, c.cls, `by host ${a.host.hostId} of org ${a.host.org}`, 'credential', t);
    return null;
  }
  await ctx.intake.touch(a.host, nowMs);
  return { host: a.host, which: a.which };
}

/** True for the admin token; false after answering 401. */
function adminAuth(c: Call): boolean {
  const t = bearer(c.req);
  if (t === null || !sameSecret(t, c.ctx.adminToken)) {
    fail(
      c,
      401,
      'unauthenticated',
      `this route needs the admin token (the file admin-token in the server's state folder) as "Authorization: Bearer <token>"`,
    );
    return false;
  }
  return true;
}

/** The body parsed as JSON, at most maxBytes; null after answering 400/413/415. */
async function jsonBody(c: Call, maxBytes: number): Promise<{ value: unknown } | null> {
  const j = await readJson(c.req, maxBytes, c.reservation);
  if (j.ok) return { value: j.value };
  fail(c, j.status, j.code, j.error);
  return null;
}

/** The body's bytes, at most maxBytes; null after answering 400/413/415. */
async function rawBody(c: Call, maxBytes: number): Promise<Buffer | null> {
  const b = await readBody(c.req, maxBytes, c.reservation);
  if (b.ok) return b.body;
  fail(c, b.status, b.code, b.error);
  return null;
}

async function currentOr404(c: Call): Promise<PublishedVersion | null> {
  const v = await c.ctx.publication.current();
  if (v === null) fail(c, 404, 'no-baseline', 'no baseline has been published yet: the first aggregation has not run');
  return v;
}

async function cachedSigned(ctx: RouteContext, key: string, make: () => Promise<Buffer>): Promise<Buffer> {
  const hit = ctx.signedCache.get(key);
  if (hit !== undefined) return hit;
  const body = await make();
  if (ctx.signedCache.size >= SIGNED_CACHE_MAX) ctx.signedCache.delete(ctx.signedCache.keys().next().value as string);
  ctx.signedCache.set(key, body);
  return body;
}

function validPrefix(ctx: RouteContext, p: unknown): p is string {
  return typeof p === 'string' && parseKey(p, ctx.cfg.bucketHexChars) !== null;
}

/** A non-negative whole number of the query string: `dflt` when absent, NaN when malformed. */
function queryNumber(q: URLSearchParams, name: string, dflt: number | null): number | null {
  const v = q.get(name);
  if (v === null) return dflt;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : NaN;
}

// ---------------------------------------------------------------------------
// Handlers, in the order of the table

async function health(c: Call): Promise<void> {
  const { ctx } = c;
  const cur = await ctx.publication.current();
  sendJson(c.req, c.res, 200, {
    status: 'ok',
    product: `rarecon ${PRODUCT_VERSION}`,
    baselineVersion: cur?.version ?? null,
    baselineBuiltAtMs: cur?.meta.builtAtMs ?? null,
    building: ctx.building(),
    uptimeMs: ctx.now() - ctx.startedMs,
    keyId: ctx.key.keyId,
    certSha256: ctx.certSha256,
  });
}

async function enrol(c: Call): Promise<void> {
  const { ctx } = c;
  const j = await jsonBody(c, ENROL_MAX_BODY_BYTES);
  if (j === null) return;
  const b = j.value as Record<string, unknown>;
  if (b === null || typeof b !== 'object') return badRequest(c, '(body): expected {"token", "hostId", "hostName"}');
  if (typeof b.token !== 'string' || b.token === '') return badRequest(c, 'token: the org enrolment token is required');
  if (typeof b.hostId !== 'string' || !HOST_ID_RE.test(b.hostId)) return badRequest(c, 'hostId: expected 1 to 128 of A-Z a-z 0-9 _ . : -');
  if (b.credential !== undefined && b.credential !== null && typeof b.credential !== 'string')
    return badRequest(c, "credential: the host's current credential (proof for enrolling it again), a string");
  const hostName = typeof b.hostName === 'string' ? b.hostName.slice(0, 255) : null;
  const proof = typeof b.credential === 'string' && b.credential !== '' ? b.credential : null;
  const r = await ctx.intake.enrol({ token: b.token, hostId: b.hostId, hostName, proof }, ctx.credentialPolicy, ctx.now());
  if (!r.ok) {
    ctx.log('warn', 'An enrolment was refused.', {
      hostId: b.hostId,
      status: r.status,
      code: r.code,
      reason: r.error,
      address: c.req.socket.remoteAddress,
    });
    return fail(c, r.status, r.code, r.error);
  }
  ctx.log(
    'info',
    r.reEnrolled
      ? `A host enrolled again (${r.by === 'proof' ? 'with its credential as proof' : "on an operator's grant"}); its credential was replaced.`
      : 'A host enrolled.',
    { org: r.host.org, hostId: r.host.hostId, token: r.host.tokenId },
  );
  sendJson(c.req, c.res, 200, {
    org: r.host.org,
    hostId: r.host.hostId,
    credential: r.credential,
    credentialExpiresMs: r.expiresMs,
    credentialRotateAfterMs: r.rotateAfterMs,
    publicKey: ctx.key.publicKeyText,
    keyId: ctx.key.keyId,
    certSha256: ctx.certSha256,
    bucketHexChars: ctx.cfg.bucketHexChars,
    // A freshly enrolled endpoint refuses any baseline older than this.
    baselineVersion: (await ctx.publication.current())?.version ?? null,
  });
}

/** A host trades its current credential for a new one (the old one stays good for server.credentialGraceMs). */
async function rotateCredential(c: Call): Promise<void> {
  const { ctx } = c;
  const a = await hostAuthWhich(c);
  if (a === null) return;
  const { host } = a;
  if (a.which === 'previous')
    return fail(c, 409, 'already-rotated', 'this credential was already rotated: use the newer one (or enrol again with it as proof)');
  const r = await ctx.intake.rotateCredential(host, ctx.credentialPolicy, ctx.now());
  ctx.log('info', 'A host rotated its credential.', { org: host.org, hostId: host.hostId, expiresMs: r.expiresMs });
  sendJson(c.req, c.res, 200, {
    credential: r.credential,
    credentialExpiresMs: r.expiresMs,
    credentialRotateAfterMs: r.rotateAfterMs,
  });
}

async function storeSightings(c: Call): Promise<void> {
  const { ctx } = c;
  const { limits } = ctx.cfg;
  const host = await hostAuth(c);
  if (host === null) return;
  const j = await jsonBody(c, limits.maxBodyBytes);
  if (j === null) return;
  const nowMs = ctx.now();
  const oldestUsefulDayMs = (Math.floor(nowMs / DAY_MS) + 1 - ctx.cfg.windowDays - ctx.cfg.retainExtraDays) * DAY_MS;
  const b = checkSightingsBatch(j.value, { limits, allowPrivateDomains: ctx.cfg.allowPrivateDomains, nowMs, oldestUsefulDayMs });
  if (!b.ok) {
    ctx.log('warn', 'A sightings batch was refused.', { org: host.org, hostId: host.hostId, status: b.status, reason: b.error });
    return refuseBatch(c, b.status, b.error);
  }
  const stored = await ctx.intake.storeSightings(host, b.days, nowMs);
  sendJson(c.req, c.res, 200, { stored, skippedDays: b.skippedDays, duplicates: b.duplicates });
}

async function storeAlerts(c: Call): Promise<void> {
  const { ctx } = c;
  const { limits } = ctx.cfg;
  const host = await hostAuth(c);
  if (host === null) return;
  const body = await rawBody(c, limits.maxBodyBytes);
  if (body === null) return;
  const a = parseAlertsBody(body, limits.maxAlertsPerBatch);
  if (!a.ok) return refuseBatch(c, a.status, a.error);
  // Checked whole, then stored a slice at a time: the texts of a whole 30 MB batch are never all decoded at once.
  const stored: AlertsStored = { stored: 0, updated: 0, duplicates: 0 };
  const nowMs = ctx.now();
  for (let i = 0; i < a.alerts.count; i += ALERTS_PER_STORE) {
    const s = await ctx.intake.storeAlerts(host, a.alerts.slice(i, i + ALERTS_PER_STORE), nowMs);
    stored.stored += s.stored;
    stored.updated += s.updated;
    stored.duplicates += s.duplicates;
  }
  ctx.alertTotals.stored += stored.stored;
  ctx.alertTotals.updated += stored.updated;
  ctx.alertTotals.duplicates += stored.duplicates;
  sendJson(c.req, c.res, 200, stored);
}

async function listAlerts(c: Call): Promise<void> {
  if (!adminAuth(c)) return;
  const q = c.url.searchParams;
  const after = queryNumber(q, 'after', 0) as number;
  const since = queryNumber(q, 'sinceMs', null);
  const limit = Math.min(queryNumber(q, 'limit', 100) as number, 1000);
  if (Number.isNaN(after) || Number.isNaN(limit) || (since !== null && Number.isNaN(since))) {
    return badRequest(c, 'after, sinceMs and limit are non-negative whole numbers');
  }
  const alerts = await c.ctx.intake.queryAlerts({ org: q.get('org'), hostId: q.get('host'), afterSeq: after, sinceMs: since, limit });
  sendJson(c.req, c.res, 200, { alerts, next: alerts.length > 0 ? (alerts[alerts.length - 1] as { seq: number }).seq : after });
}

async function adminBuild(c: Call): Promise<void> {
  if (!adminAuth(c)) return;
  const r = await c.ctx.buildFresh();
  if (!r.ok) return fail(c, 500, 'build-failed', r.error);
  sendJson(c.req, c.res, 200, { version: r.version, meta: r.meta, figures: r.figures });
}

async function listHosts(c: Call): Promise<void> {
  if (!adminAuth(c)) return;
  sendJson(c.req, c.res, 200, { hosts: await c.ctx.intake.hosts() });
}

async function listTokens(c: Call): Promise<void> {
  if (!adminAuth(c)) return;
  sendJson(c.req, c.res, 200, { tokens: await c.ctx.intake.tokens(c.url.searchParams.get('org')) });
}

/** What the brakes did: requests refused by rate limits and by the memory budget, and the budget in use. */
async function adminStats(c: Call): Promise<void> {
  if (!adminAuth(c)) return;
  const { ctx } = c;
  sendJson(c.req, c.res, 200, {
    rateLimited: ctx.limits.refused,
    memoryBudget: ctx.budget.figures(),
    alertsSinceStart: ctx.alertTotals,
    rssBytes: process.memoryUsage.rss(),
    intake: await ctx.intake.stats(),
  });
}

async function baselineInfo(c: Call): Promise<void> {
  const { ctx } = c;
  if ((await hostAuth(c)) === null) return;
  const cur = await currentOr404(c);
  if (cur === null) return;
  sendJson(c.req, c.res, 200, {
    version: cur.version,
    meta: cur.meta,
    bucketHexChars: ctx.cfg.bucketHexChars,
    deltaFromVersion: await ctx.publication.deltaHorizon(),
    snapshot: { sha256: cur.snapshotSha256, bytes: cur.snapshotBytes },
    keyId: ctx.key.keyId,
  });
}

/** The signed envelope line, then the baseline file streamed from disk. */
async function snapshot(c: Call): Promise<void> {
  const { res } = c;
  if ((await hostAuth(c)) === null) return;
  const cur = await currentOr404(c);
  if (cur === null) return;
  const etag = `"s${cur.version}"`;
  if (notModified(c.req, etag)) return sendNotModified(c, etag);
  const file = await c.ctx.publication.snapshot(cur);
  if (file === null) return fail(c, 503, 'snapshot-missing', `the snapshot file of version ${cur.version} is missing on the server`);
  const envelope = Buffer.from(cur.snapshotEnvelope, 'utf8');
  res.writeHead(200, {
    'content-type': SIGNED_MEDIA_TYPE,
    'content-length': envelope.length + file.size,
    etag,
    'x-rarecon-version': String(cur.version),
  });
  res.write(envelope);
  file.stream.on('error', () => res.destroy());
  file.stream.pipe(res);
}

async function delta(c: Call): Promise<void> {
  const { ctx } = c;
  if ((await hostAuth(c)) === null) return;
  const cur = await currentOr404(c);
  if (cur === null) return;
  const from = Number(c.url.searchParams.get('from'));
  if (!Number.isSafeInteger(from) || from < 0) return badRequest(c, 'from: the version you hold, a whole number');
  const etag = `"d${from}-${cur.version}"`;
  if (from === cur.version || notModified(c.req, etag)) return sendNotModified(c, etag);
  const horizon = await ctx.publication.deltaHorizon();
  if (from > cur.version || from < horizon) {
    return fail(
      c,
      410,
      'delta-unavailable',
      `no delta from version ${from}: deltas start from version ${horizon} up to ${cur.version}; fetch the snapshot or your buckets again`,
    );
  }
  const body = await cachedSigned(ctx, `d:${cur.version}:${from}`, async () =>
    signContent(
      { kind: 'delta', meta: cur.meta, fromVersion: from, prefixes: null, bucketHexChars: ctx.cfg.bucketHexChars },
      encodeRows(await ctx.publication.delta(from)),
      ctx.key,
    ),
  );
  sendSigned(c, cur, body, etag);
}

/** GET one bucket (or cell) by its key in the path. */
async function oneBucket(c: Call): Promise<void> {
  const { ctx } = c;
  if ((await hostAuth(c)) === null) return;
  const raw = c.params.prefix as string;
  const prefix = raw.toLowerCase();
  if (!validPrefix(ctx, prefix))
    return fail(
      c,
      400,
      'bad-prefix',
      `a bucket is named by ${ctx.cfg.bucketHexChars} hex digits of the sha256 (a cell by <sha256>-<bits>-<cell>), got "${raw}"`,
    );
  const cur = await currentOr404(c);
  if (cur === null) return;
  const etag = `"b${cur.version}-${prefix}"`;
  if (notModified(c.req, etag)) return sendNotModified(c, etag);
  const body = await cachedSigned(ctx, `b:${cur.version}:${prefix}`, async () =>
    signContent(
      { kind: 'buckets', meta: cur.meta, fromVersion: null, prefixes: [prefix], bucketHexChars: ctx.cfg.bucketHexChars },
      encodeRows(await ctx.publication.buckets([prefix], null, ctx.cfg.bucketHexChars)),
      ctx.key,
    ),
  );
  sendSigned(c, cur, body, etag);
}

/** POST a list of buckets and cells, whole or (with `since`) changed after the version the endpoint holds. */
async function someBuckets(c: Call): Promise<void> {
  const { ctx } = c;
  const { limits } = ctx.cfg;
  if ((await hostAuth(c)) === null) return;
  const j = await jsonBody(c, limits.maxBodyBytes);
  if (j === null) return;
  const b = j.value as Record<string, unknown>;
  if (b === null || typeof b !== 'object' || !Array.isArray(b.prefixes))
    return badRequest(c, 'prefixes: expected a list of bucket prefixes');
  if (b.prefixes.length > limits.maxPrefixesPerRequest)
    return fail(c, 413, 'too-large', `prefixes: ${b.prefixes.length} in one request, the limit is ${limits.maxPrefixesPerRequest}`);
  const prefixes: string[] = [];
  for (let i = 0; i < b.prefixes.length; i++) {
    const p = typeof b.prefixes[i] === 'string' ? (b.prefixes[i] as string).toLowerCase() : b.prefixes[i];
    if (!validPrefix(ctx, p))
      return fail(
        c,
        400,
        'bad-prefix',
        `prefixes[${i}]: expected ${ctx.cfg.bucketHexChars} hex digits or a cell key <sha256>-<bits>-<cell>, got ${JSON.stringify(b.prefixes[i])}`,
      );
    prefixes.push(p);
  }
  const unique = [...new Set(prefixes)].sort();
  const since = b.since === undefined || b.since === null ? null : Number(b.since);
  if (since !== null && (!Number.isSafeInteger(since) || since < 0))
    return badRequest(c, 'since: the version you hold, a whole number, or null');
  const cur = await currentOr404(c);
  if (cur === null) return;
  if (since !== null && since >= cur.version) return sendNotModified(c, `"v${cur.version}"`);
  // Too old for a delta: the whole buckets, which replace what the endpoint holds.
  const from = since !== null && since >= (await ctx.publication.deltaHorizon()) ? since : null;
  const body = signContent(
    { kind: 'buckets', meta: cur.meta, fromVersion: from, prefixes: unique, bucketHexChars: ctx.cfg.bucketHexChars },
    encodeRows(await ctx.publication.buckets(unique, from, ctx.cfg.bucketHexChars)),
    ctx.key,
  );
  sendSigned(c, cur, body);
}
