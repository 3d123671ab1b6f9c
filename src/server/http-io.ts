// Request bodies with a size limit (gzip allowed), JSON answers and errors in
// one shape: {"error": {"code": "...", "message": "..."}}.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createGunzip, gzipSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { Reservation } from './memory-budget.js';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; status: 400 | 413 | 415 | 503; code: string; error: string };

/** Body bytes reserved at a time beyond the declared length (gzip, chunked): fewer calls, a little more held. */
const RESERVE_STEP_BYTES = 1024 * 1024;

const overBudget = (): BodyResult => ({
  ok: false,
  status: 503,
  code: 'busy',
  error: 'the server holds as many request bodies in memory as it allows (server.limits.memoryBudgetBytes); try again later',
});

/**
 * Reads the whole body, gunzipping `Content-Encoding: gzip`; more than maxBytes
 * (after gunzip) is refused with 413. With a reservation, room for the body is
 * taken from the memory budget before its bytes are kept (the declared length
 * at once, the rest as it comes): what does not fit is refused with 503.
 */
export function readBody(req: IncomingMessage, maxBytes: number, reservation?: Reservation): Promise<BodyResult> {
  const enc = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (enc !== 'identity' && enc !== 'gzip')
    return Promise.resolve({
      ok: false,
      status: 415,
      code: 'unsupported-encoding',
      error: `Content-Encoding ${enc} is not supported (use gzip or none)`,
    });
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (enc === 'identity' && Number.isFinite(declared) && declared > maxBytes) {
    void discardBody(req, declared);
    return Promise.resolve({ ok: false, status: 413, code: 'too-large', error: `the body is ${declared} bytes, the limit is ${maxBytes}` });
  }
  let reserved = 0;
  if (reservation !== undefined && Number.isFinite(declared) && declared > 0) {
    const first = Math.min(declared, maxBytes);
    if (!reservation.grow(first)) return discardBody(req, maxBytes).then(overBudget);
    reserved = first;
  }
  const source: Readable = enc === 'gzip' ? req.pipe(createGunzip()) : req;
  // A declared length is read into one buffer of that size (no chunk list, no concatenated copy).
  const into = enc === 'identity' && Number.isFinite(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : null;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: BodyResult): void => {
      if (done) return;
      done = true;
      resolve(r);
    };
    source.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > maxBytes) {
        done = true;
        source.destroy();
        void discardBody(req, Number.isFinite(declared) ? declared : maxBytes).then(() =>
          resolve({ ok: false, status: 413, code: 'too-large', error: `the body is larger than the limit of ${maxBytes} bytes` }),
        );
        return;
      }
      if (reservation !== undefined && size > reserved) {
        const more = Math.min(Math.max(size - reserved, RESERVE_STEP_BYTES), maxBytes - reserved);
        if (!reservation.grow(more)) {
          chunks.length = 0;
          done = true;
          source.destroy();
          void discardBody(req, Number.isFinite(declared) ? declared : maxBytes).then(() => resolve(overBudget()));
          return;
        }
        reserved += more;
      }
      if (into !== null && size <= into.length) c.copy(into, size - c.length);
      else chunks.push(c);
    });
    source.on('end', () => {
      if (into === null) return finish({ ok: true, body: Buffer.concat(chunks) });
      // Node's parser ends a body at its Content-Length: a shorter one is an aborted request.
      finish(
        size === into.length
          ? { ok: true, body: into }
          : { ok: false, status: 400, code: 'aborted', error: 'the body is shorter than its Content-Length' },
      );
    });
    source.on('error', (e) => finish({ ok: false, status: 400, code: 'bad-body', error: `the body could not be read: ${e.message}` }));
    req.on('aborted', () => finish({ ok: false, status: 400, code: 'aborted', error: 'the client went away mid-body' }));
  });
}

/**
 * Reads the rest of a refused body without keeping it; done once it has all
 * come (or the client went away). The refusal is answered then: over TLS, an
 * answer sent while the client is still sending is lost to its write error.
 * A client sending on past `capBytes` is cut off.
 */
function discardBody(req: IncomingMessage, capBytes: number): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    req.unpipe();
    req.removeAllListeners('data');
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > capBytes) req.socket.destroy();
    });
    req.once('end', () => resolve());
    req.once('close', () => resolve());
    req.resume();
  });
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; status: 400 | 413 | 415 | 503; code: string; error: string };

export async function readJson(req: IncomingMessage, maxBytes: number, reservation?: Reservation): Promise<JsonResult> {
  const b = await readBody(req, maxBytes, reservation);
  if (!b.ok) return b;
  try {
    return { ok: true, value: JSON.parse(b.body.toString('utf8')) as unknown };
  } catch (e) {
    return { ok: false, status: 400, code: 'bad-json', error: `the body is not JSON: ${(e as Error).message}` };
  }
}

function acceptsGzip(req: IncomingMessage): boolean {
  return /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
}

/** Sends bytes, gzipped when the client accepts it and it is worth it. */
export function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: Buffer,
  headers: Record<string, string> = {},
): void {
  const h: Record<string, string | number> = { 'content-type': contentType, ...headers };
  let out = body;
  if (body.length > 1024 && acceptsGzip(req)) {
    out = gzipSync(body, { level: 1 });
    h['content-encoding'] = 'gzip';
    h.vary = 'Accept-Encoding';
  }
  h['content-length'] = out.length;
  res.writeHead(status, h);
  res.end(out);
}

export function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  sendBytes(req, res, status, 'application/json', Buffer.from(JSON.stringify(value), 'utf8'), headers);
}

export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(req, res, status, { error: { code, message } }, headers);
}

export function bearer(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(h.trim());
  return m === null ? null : (m[1] as string);
}

/** True when If-None-Match names this ETag. */
export function notModified(req: IncomingMessage, etag: string): boolean {
  const inm = req.headers['if-none-match'];
  if (inm === undefined) return false;
  return inm
    .split(',')
    .map((s) => s.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
