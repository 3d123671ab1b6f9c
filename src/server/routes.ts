// The HTTP API of the baseline server, version 1 (documented in README.md beside this file).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { SIGNED_MEDIA_TYPE, signContent, type SigningKey } from '../baseline/signature.js';
import type { LogFn } from '../common/log.js';
import { DAY_MS } from '../model/baseline.js';
import { PRODUCT_VERSION } from '../model/product.js';
import type { ServerConfig } from '../config/defaults.js';
import type { HostRow, IntakeStore } from './intake-store.js';
import { encodeRows, type PublicationReader, type PublishedVersion } from './publication.js';
import { checkSightingsBatch } from './sightings-batch.js';
import { parseAlertsBody } from './alerts-batch.js';
import { bearer, notModified, readBody, readJson, sendBytes, sendError, sendJson } from './http-io.js';
import { sameSecret } from '../common/secrets.js';
import { parseKey } from '../baseline/bucket-keys.js';
import type { AggregateResult } from './aggregate.js';

export interface RouteContext {
  cfg: ServerConfig;
  intake: IntakeStore;
  publication: PublicationReader;
  key: SigningKey;
  adminToken: string;
  log: LogFn;
  now: () => number;
  startedMs: number;
  building: () => boolean;
  buildNow: () => Promise<AggregateResult>;
  /** Signed bodies of the current version, by request; cleared when a version is published. */
  signedCache: Map<string, Buffer>;
}

const HOST_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const SIGNED_CACHE_MAX = 512;

function hostAuth(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): HostRow | null {
  const cred = bearer(req);
  if (cred === null) {
    sendError(
      req,
      res,
      401,
      'unauthenticated',
      'send the host credential as "Authorization: Bearer <credential>" (enrol with POST /v1/enroll first)',
    );
    return null;
  }
  const a = ctx.intake.authenticate(cred);
  if (!a.ok) {
    sendError(req, res, a.status, a.status === 401 ? 'unauthenticated' : 'revoked', a.error);
    return null;
  }
  ctx.intake.touch(a.host, ctx.now());
  return a.host;
}

function adminAuth(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): boolean {
  const t = bearer(req);
  if (t === null || !sameSecret(t, ctx.adminToken)) {
    sendError(
      req,
      res,
      401,
      'unauthenticated',
      `this route needs the admin token (the file admin-token in the server's state folder) as "Authorization: Bearer <token>"`,
    );
    return false;
  }
  return true;
}

function currentOr404(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): PublishedVersion | null {
  const v = ctx.publication.current();
  if (v === null) sendError(req, res, 404, 'no-baseline', 'no baseline has been published yet: the first aggregation has not run');
  return v;
}

function cachedSigned(ctx: RouteContext, key: string, make: () => Buffer): Buffer {
  const hit = ctx.signedCache.get(key);
  if (hit !== undefined) return hit;
  const body = make();
  if (ctx.signedCache.size >= SIGNED_CACHE_MAX) ctx.signedCache.delete(ctx.signedCache.keys().next().value as string);
  ctx.signedCache.set(key, body);
  return body;
}

function validPrefix(ctx: RouteContext, p: unknown): p is string {
  return typeof p === 'string' && parseKey(p, ctx.cfg.bucketHexChars) !== null;
}

export async function route(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  const { limits } = ctx.cfg;

  if (path === '/v1/health' && method === 'GET') {
    const cur = ctx.publication.current();
    sendJson(req, res, 200, {
      status: 'ok',
      product: `rarecon ${PRODUCT_VERSION}`,
      baselineVersion: cur?.version ?? null,
      baselineBuiltAtMs: cur?.meta.builtAtMs ?? null,
      building: ctx.building(),
      uptimeMs: ctx.now() - ctx.startedMs,
      keyId: ctx.key.keyId,
    });
    return;
  }

  if (path === '/v1/enroll' && method === 'POST') {
    const j = await readJson(req, 64 * 1024);
    if (!j.ok) return sendError(req, res, j.status, j.code, j.error);
    const b = j.value as Record<string, unknown>;
    if (b === null || typeof b !== 'object')
      return sendError(req, res, 400, 'bad-request', '(body): expected {"token", "hostId", "hostName"}');
    if (typeof b.token !== 'string' || b.token === '')
      return sendError(req, res, 400, 'bad-request', 'token: the org enrolment token is required');
    if (typeof b.hostId !== 'string' || !HOST_ID_RE.test(b.hostId))
      return sendError(req, res, 400, 'bad-request', 'hostId: expected 1 to 128 of A-Z a-z 0-9 _ . : -');
    const hostName = typeof b.hostName === 'string' ? b.hostName.slice(0, 255) : null;
    const r = ctx.intake.enrol(b.token, b.hostId, hostName, ctx.now());
    if (!r.ok) {
      ctx.log('warn', 'An enrolment was refused.', { hostId: b.hostId, status: r.status, reason: r.error });
      return sendError(req, res, r.status, r.status === 401 ? 'unauthenticated' : 'revoked', r.error);
    }
    ctx.log('info', r.reEnrolled ? 'A host enrolled again; its credential was rotated.' : 'A host enrolled.', {
      org: r.host.org,
      hostId: r.host.hostId,
    });
    return sendJson(req, res, 200, {
      org: r.host.org,
      hostId: r.host.hostId,
      credential: r.credential,
      publicKey: ctx.key.publicKeyText,
      keyId: ctx.key.keyId,
      bucketHexChars: ctx.cfg.bucketHexChars,
    });
  }

  if (path === '/v1/sightings' && method === 'POST') {
    const host = hostAuth(ctx, req, res);
    if (host === null) return;
    const j = await readJson(req, limits.maxBodyBytes);
    if (!j.ok) return sendError(req, res, j.status, j.code, j.error);
    const nowMs = ctx.now();
    const oldestUsefulDayMs = (Math.floor(nowMs / DAY_MS) + 1 - ctx.cfg.windowDays - ctx.cfg.retainExtraDays) * DAY_MS;
    const b = checkSightingsBatch(j.value, { limits, allowPrivateDomains: ctx.cfg.allowPrivateDomains, nowMs, oldestUsefulDayMs });
    if (!b.ok) {
      ctx.log('warn', 'A sightings batch was refused.', { org: host.org, hostId: host.hostId, status: b.status, reason: b.error });
      return sendError(
        req,
        res,
        b.status,
        b.status === 413 ? 'too-large' : 'bad-batch',
        `the batch was refused whole, nothing stored: ${b.error}`,
      );
    }
    const stored = ctx.intake.storeSightings(host, b.days, nowMs);
    return sendJson(req, res, 200, { stored, skippedDays: b.skippedDays, duplicates: b.duplicates });
  }

  if (path === '/v1/alerts' && method === 'POST') {
    const host = hostAuth(ctx, req, res);
    if (host === null) return;
    const body = await readBody(req, limits.maxBodyBytes);
    if (!body.ok) return sendError(req, res, body.status, body.code, body.error);
    const a = parseAlertsBody(body.body, limits.maxAlertsPerBatch);
    if (!a.ok)
      return sendError(
        req,
        res,
        a.status,
        a.status === 413 ? 'too-large' : 'bad-batch',
        `the batch was refused whole, nothing stored: ${a.error}`,
      );
    const r = ctx.intake.storeAlerts(host, a.alerts, ctx.now());
    return sendJson(req, res, 200, r);
  }

  if (path === '/v1/alerts' && method === 'GET') {
    if (!adminAuth(ctx, req, res)) return;
    const q = url.searchParams;
    const num = (name: string, dflt: number | null): number | null => {
      const v = q.get(name);
      if (v === null) return dflt;
      const n = Number(v);
      return Number.isSafeInteger(n) && n >= 0 ? n : NaN;
    };
    const after = num('after', 0) as number;
    const since = num('sinceMs', null);
    const limit = Math.min(num('limit', 100) as number, 1000);
    if (Number.isNaN(after) || Number.isNaN(limit) || (since !== null && Number.isNaN(since))) {
      return sendError(req, res, 400, 'bad-request', 'after, sinceMs and limit are non-negative whole numbers');
    }
    const alerts = ctx.intake.queryAlerts({ org: q.get('org'), hostId: q.get('host'), afterSeq: after, sinceMs: since, limit });
    return sendJson(req, res, 200, { alerts, next: alerts.length > 0 ? (alerts[alerts.length - 1] as { seq: number }).seq : after });
  }

  if (path === '/v1/admin/build' && method === 'POST') {
    if (!adminAuth(ctx, req, res)) return;
    const r = await ctx.buildNow();
    if (!r.ok) return sendError(req, res, 500, 'build-failed', r.error);
    return sendJson(req, res, 200, { version: r.version, meta: r.meta, figures: r.figures });
  }

  if (path === '/v1/admin/hosts' && method === 'GET') {
    if (!adminAuth(ctx, req, res)) return;
    return sendJson(req, res, 200, { hosts: ctx.intake.hosts() });
  }

  if (path === '/v1/baseline' && method === 'GET') {
    if (hostAuth(ctx, req, res) === null) return;
    const cur = currentOr404(ctx, req, res);
    if (cur === null) return;
    return sendJson(req, res, 200, {
      version: cur.version,
      meta: cur.meta,
      bucketHexChars: ctx.cfg.bucketHexChars,
      deltaFromVersion: ctx.publication.deltaHorizon(),
      snapshot: { sha256: cur.snapshotSha256, bytes: cur.snapshotBytes },
      keyId: ctx.key.keyId,
    });
  }

  if (path === '/v1/baseline/snapshot' && method === 'GET') {
    if (hostAuth(ctx, req, res) === null) return;
    const cur = currentOr404(ctx, req, res);
    if (cur === null) return;
    const etag = `"s${cur.version}"`;
    if (notModified(req, etag)) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    let size: number;
    try {
      size = statSync(cur.snapshotFile).size;
    } catch {
      return sendError(req, res, 503, 'snapshot-missing', `the snapshot file of version ${cur.version} is missing on the server`);
    }
    const envelope = Buffer.from(cur.snapshotEnvelope, 'utf8');
    res.writeHead(200, {
      'content-type': SIGNED_MEDIA_TYPE,
      'content-length': envelope.length + size,
      etag,
      'x-rarecon-version': String(cur.version),
    });
    res.write(envelope);
    const stream = createReadStream(cur.snapshotFile);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
    return;
  }

  if (path === '/v1/baseline/delta' && method === 'GET') {
    if (hostAuth(ctx, req, res) === null) return;
    const cur = currentOr404(ctx, req, res);
    if (cur === null) return;
    const from = Number(url.searchParams.get('from'));
    if (!Number.isSafeInteger(from) || from < 0)
      return sendError(req, res, 400, 'bad-request', 'from: the version you hold, a whole number');
    const etag = `"d${from}-${cur.version}"`;
    if (from === cur.version || notModified(req, etag)) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    if (from > cur.version || from < ctx.publication.deltaHorizon()) {
      return sendError(
        req,
        res,
        410,
        'delta-unavailable',
        `no delta from version ${from}: deltas start from version ${ctx.publication.deltaHorizon()} up to ${cur.version}; fetch the snapshot or your buckets again`,
      );
    }
    const body = cachedSigned(ctx, `d:${cur.version}:${from}`, () =>
      signContent(
        { kind: 'delta', meta: cur.meta, fromVersion: from, prefixes: null, bucketHexChars: ctx.cfg.bucketHexChars },
        encodeRows(ctx.publication.delta(from)),
        ctx.key,
      ),
    );
    return sendBytes(req, res, 200, SIGNED_MEDIA_TYPE, body, { etag, 'x-rarecon-version': String(cur.version) });
  }

  const bucketMatch = /^\/v1\/baseline\/buckets\/([^/]+)$/.exec(path);
  if (bucketMatch !== null && method === 'GET') {
    if (hostAuth(ctx, req, res) === null) return;
    const prefix = (bucketMatch[1] as string).toLowerCase();
    if (!validPrefix(ctx, prefix))
      return sendError(
        req,
        res,
        400,
        'bad-prefix',
        `a bucket is named by ${ctx.cfg.bucketHexChars} hex digits of the sha256 (a cell by <sha256>-<bits>-<cell>), got "${bucketMatch[1] as string}"`,
      );
    const cur = currentOr404(ctx, req, res);
    if (cur === null) return;
    const etag = `"b${cur.version}-${prefix}"`;
    if (notModified(req, etag)) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    const body = cachedSigned(ctx, `b:${cur.version}:${prefix}`, () =>
      signContent(
        { kind: 'buckets', meta: cur.meta, fromVersion: null, prefixes: [prefix], bucketHexChars: ctx.cfg.bucketHexChars },
        encodeRows(ctx.publication.buckets([prefix], null, ctx.cfg.bucketHexChars)),
        ctx.key,
      ),
    );
    return sendBytes(req, res, 200, SIGNED_MEDIA_TYPE, body, { etag, 'x-rarecon-version': String(cur.version) });
  }

  if (path === '/v1/baseline/buckets' && method === 'POST') {
    if (hostAuth(ctx, req, res) === null) return;
    const j = await readJson(req, limits.maxBodyBytes);
    if (!j.ok) return sendError(req, res, j.status, j.code, j.error);
    const b = j.value as Record<string, unknown>;
    if (b === null || typeof b !== 'object' || !Array.isArray(b.prefixes))
      return sendError(req, res, 400, 'bad-request', 'prefixes: expected a list of bucket prefixes');
    if (b.prefixes.length > limits.maxPrefixesPerRequest)
      return sendError(
        req,
        res,
        413,
        'too-large',
        `prefixes: ${b.prefixes.length} in one request, the limit is ${limits.maxPrefixesPerRequest}`,
      );
    const prefixes: string[] = [];
    for (let i = 0; i < b.prefixes.length; i++) {
      const p = typeof b.prefixes[i] === 'string' ? (b.prefixes[i] as string).toLowerCase() : b.prefixes[i];
      if (!validPrefix(ctx, p))
        return sendError(
          req,
          res,
          400,
          'bad-prefix',
          `prefixes[${i}]: expected ${ctx.cfg.bucketHexChars} hex digits or a cell key <sha256>-<bits>-<cell>, got ${JSON.stringify(b.prefixes[i])}`,
        );
      prefixes.push(p);
    }
    const unique = [...new Set(prefixes)].sort();
    const since = b.since === undefined || b.since === null ? null : Number(b.since);
    if (since !== null && (!Number.isSafeInteger(since) || since < 0))
      return sendError(req, res, 400, 'bad-request', 'since: the version you hold, a whole number, or null');
    const cur = currentOr404(ctx, req, res);
    if (cur === null) return;
    if (since !== null && since >= cur.version) {
      res.writeHead(304, { etag: `"v${cur.version}"` });
      res.end();
      return;
    }
    // Too old for a delta: the whole buckets, which replace what the endpoint holds.
    const from = since !== null && since >= ctx.publication.deltaHorizon() ? since : null;
    const body = signContent(
      { kind: 'buckets', meta: cur.meta, fromVersion: from, prefixes: unique, bucketHexChars: ctx.cfg.bucketHexChars },
      encodeRows(ctx.publication.buckets(unique, from, ctx.cfg.bucketHexChars)),
      ctx.key,
    );
    return sendBytes(req, res, 200, SIGNED_MEDIA_TYPE, body, { 'x-rarecon-version': String(cur.version) });
  }

  const known = [
    '/v1/health',
    '/v1/enroll',
    '/v1/sightings',
    '/v1/alerts',
    '/v1/baseline',
    '/v1/baseline/snapshot',
    '/v1/baseline/delta',
    '/v1/baseline/buckets',
    '/v1/admin/build',
    '/v1/admin/hosts',
  ];
  if (known.includes(path) || bucketMatch !== null)
    return sendError(req, res, 405, 'method-not-allowed', `${method} is not allowed on ${path}`);
  sendError(req, res, 404, 'not-found', `no route ${path} (routes are under /v1: see the server README)`);
}
