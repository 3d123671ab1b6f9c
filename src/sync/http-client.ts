// Requests to the baseline server. Plain answers (errors, JSON) come back in
// memory, at most 1 MiB; a signed answer's envelope line stays in memory while
// its content streams to a temp file in the state folder, hashed on the way and
// cut at sync.maxDownloadBytes, for the caller to verify and then remove.
// Nothing here trusts content: a signed download is only bytes and a digest.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { parseRetryAfterMs } from '../common/backoff.js';
import { PinnedAgent, normalizePin, tlsFailureHint } from '../common/tls-pin.js';
import { MAX_ENVELOPE_LINE_BYTES, SIGNED_MEDIA_TYPE } from '../baseline/signature.js';
import type { SyncConfig } from '../config/defaults.js';
import { fail, type Fail, type Step } from './step.js';

const DOWNLOAD_PREFIX = 'sync-download-';
/** Non-signed answers kept in memory, at most. */
const MAX_PLAIN_BYTES = 1024 * 1024;

export interface SignedDownload {
  envelope: Buffer;
  /** The content, in a temp file the caller removes. */
  file: string;
  sha256: string;
  bytes: number;
}

export interface Download {
  status: number;
  headers: IncomingMessage['headers'];
  /** Non-signed answers (errors, JSON), at most 1 MiB. */
  body: Buffer | null;
  signed: SignedDownload | null;
}

/** Where the bearer credential comes from, and what to do when the server no longer knows it. */
export interface CredentialSource {
  bearer(): string | null;
  /** The server answered 401: drop the credential so the next sync enrols again. */
  forget(): void;
}

/** What the steps of a sync need of the server connection. */
export interface ServerCalls {
  call(method: string, path: string, body: unknown, auth: boolean, extraHeaders?: Record<string, string>): Promise<Step<Download>>;
  /** A non-success answer as a failure, naming `what` was attempted. */
  failure(d: Download, what: string): Fail;
}

export type HttpConfig = Pick<
  SyncConfig,
  'serverUrl' | 'requestTimeoutMs' | 'maxDownloadBytes' | 'caFile' | 'serverName' | 'serverCertSha256'
>;

/** The error message of a server's JSON error answer, or the start of the body. */
export function errorMessage(body: Buffer | null): string {
  if (body === null) return '';
  try {
    const j = JSON.parse(body.toString('utf8')) as { error?: { message?: string } };
    return j.error?.message ?? body.toString('utf8').slice(0, 200);
  } catch {
    return body.toString('utf8').slice(0, 200);
  }
}

/** Downloads a crash left behind are never trusted. */
export function removeStaleDownloads(stateDir: string): void {
  for (const name of readdirSync(stateDir, { withFileTypes: true })) {
    if (name.isFile() && name.name.startsWith(DOWNLOAD_PREFIX)) rmSync(join(stateDir, name.name), { force: true });
  }
}

export class ServerHttp implements ServerCalls {
  private readonly tls: { ca?: Buffer; servername?: string } = {};
  /** With a certificate pin: connections are checked against it before a byte is sent. Without: a fresh connection each time. */
  private readonly pinned: PinnedAgent | null = null;
  private downloads = 0;

  /** Throws when sync.caFile cannot be read (a configuration failure). */
  constructor(
    private readonly cfg: HttpConfig,
    private readonly stateDir: string,
    private readonly credential: CredentialSource,
    private readonly now: () => number,
  ) {
    if (cfg.caFile !== null) {
      try {
        this.tls.ca = readFileSync(cfg.caFile);
      } catch (e) {
        throw new Error(`sync.caFile ${cfg.caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (cfg.serverName !== null) this.tls.servername = cfg.serverName;
    if (cfg.serverCertSha256 !== null) {
      const pin = normalizePin(cfg.serverCertSha256);
      if (pin === null) throw new Error(`sync.serverCertSha256 "${cfg.serverCertSha256}" is not sha256:<64 hex digits>`);
      // keepAlive off: a kept-alive socket the server has just closed fails as "socket hang up".
      this.pinned = new PinnedAgent(pin, { keepAlive: false });
    }
  }

  failure(d: Download, what: string): Fail {
    const msg = errorMessage(d.body);
    const retryAfterMs = parseRetryAfterMs(d.headers['retry-after'] as string | undefined, this.now());
    if (d.status === 401) {
      // Unknown there (server reset), expired or replaced: enrol again next time, with it as proof.
      this.credential.forget();
      return fail('unauthenticated', `${what}: the server does not take this host's credential (${msg}); it will enrol again`);
    }
    if (d.status === 429 || d.status === 503)
      return fail(
        d.status === 429 ? 'rate-limited' : 'server-busy',
        `${what}: the server answered ${d.status}${msg === '' ? '' : ` (${msg})`}`,
        retryAfterMs === undefined ? {} : { retryAfterMs },
      );
    if (d.status === 403) return fail('revoked', `${what}: the server refuses this host (${msg})`);
    return fail(
      `http-${d.status}`,
      `${what}: the server answered ${d.status}${msg === '' ? '' : ` (${msg})`}`,
      retryAfterMs === undefined ? {} : { retryAfterMs },
    );
  }

  call(method: string, path: string, body: unknown, auth: boolean, extraHeaders: Record<string, string> = {}): Promise<Step<Download>> {
    const base = new URL(this.cfg.serverUrl as string);
    const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base.href : `${base.href}/`);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string> = { 'accept-encoding': 'gzip', ...extraHeaders };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const bearer = auth ? this.credential.bearer() : null;
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
    const isHttps = url.protocol === 'https:';
    const requestFn = isHttps ? httpsRequest : httpRequest;
    const timeoutMs = this.cfg.requestTimeoutMs;
    return new Promise((resolve) => {
      let settled = false;
      const tmpFiles: string[] = [];
      const finish = (r: Step<Download>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (!r.ok) for (const f of tmpFiles) rmSync(f, { force: true });
        resolve(r);
      };
      const where = `${method} ${url.pathname}`;
      // A fresh connection each time: a kept-alive socket the server has just closed fails as "socket hang up".
      const agent = isHttps && this.pinned !== null ? this.pinned : false;
      const req = requestFn(url, { method, headers, agent, ...(isHttps ? this.tls : {}) }, (res) => {
        const status = res.statusCode ?? 0;
        const source: Readable = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
        const signedType = String(res.headers['content-type'] ?? '').startsWith(SIGNED_MEDIA_TYPE);
        if (!signedType || status !== 200) {
          this.readPlain(res, source, status, where, finish);
          return;
        }
        const file = join(this.stateDir, `${DOWNLOAD_PREFIX}${process.pid}-${++this.downloads}`);
        tmpFiles.push(file);
        this.readSigned(res, source, status, file, where, () => settled, finish);
      });
      // Idle sockets and a hanging server end in a timeout, retried with backoff.
      req.setTimeout(timeoutMs, () => {
        req.destroy(new Error(`no answer for ${timeoutMs} ms`));
      });
      const deadline = setTimeout(() => req.destroy(new Error(`not done after ${timeoutMs * 10} ms`)), timeoutMs * 10);
      deadline.unref();
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ERR_TLS_PIN_MISMATCH') return finish(fail('tls-pin', `${where}: refused: ${e.message}`, { refused: true }));
        const hint = tlsFailureHint(e);
        if (hint !== null) return finish(fail('tls', `${where}: ${e.message}: ${hint}`));
        finish(fail(/no answer|not done/.test(e.message) ? 'timeout' : 'network', `${where}: ${e.message}`));
      });
      req.end(payload);
    });
  }

  private readPlain(res: IncomingMessage, source: Readable, status: number, where: string, finish: (r: Step<Download>) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    source.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_PLAIN_BYTES) chunks.push(c);
    });
    source.on('end', () => finish({ ok: true, value: { status, headers: res.headers, body: Buffer.concat(chunks), signed: null } }));
    source.on('error', (e) => finish(fail('network', `${where}: ${e.message}`)));
    res.on('aborted', () => finish(fail('network', `${where}: the connection was cut mid-answer`)));
  }

  /** Signed: the envelope line in memory, the content to `file`, hashed on the way. */
  private readSigned(
    res: IncomingMessage,
    source: Readable,
    status: number,
    file: string,
    where: string,
    settled: () => boolean,
    finish: (r: Step<Download>) => void,
  ): void {
    const maxBytes = this.cfg.maxDownloadBytes;
    // Exclusive (O_EXCL): a file or link already at the name is never written through.
    const out = createWriteStream(file, { mode: 0o600, flags: 'wx' });
    const hash = createHash('sha256');
    let envelope: Buffer | null = null;
    let head: Buffer[] = [];
    let headBytes = 0;
    let bytes = 0;
    let failed = false;
    const bad = (f: Fail): void => {
      failed = true;
      source.destroy();
      out.destroy();
      finish(f);
    };
    const done = (line: Buffer): Step<Download> => ({
      ok: true,
      value: { status, headers: res.headers, body: null, signed: { envelope: line, file, sha256: hash.digest('hex'), bytes } },
    });
    source.on('data', (c: Buffer) => {
      if (failed) return;
      let rest = c;
      if (envelope === null) {
        const nl = c.indexOf(0x0a);
        if (nl < 0) {
          head.push(c);
          headBytes += c.length;
          if (headBytes > MAX_ENVELOPE_LINE_BYTES)
            bad(fail('unsigned', 'refused: the answer does not start with a signature envelope', { refused: true }));
          return;
        }
        envelope = Buffer.concat([...head, c.subarray(0, nl)]);
        head = [];
        rest = c.subarray(nl + 1);
      }
      bytes += rest.length;
      if (bytes > maxBytes) {
        bad(fail('too-large', `the download passed the limit of ${maxBytes} bytes (sync.maxDownloadBytes)`));
        return;
      }
      hash.update(rest);
      if (!out.write(rest)) {
        source.pause();
        out.once('drain', () => source.resume());
      }
    });
    source.on('end', () => {
      if (failed) return;
      out.end(() => {
        if (envelope === null) {
          finish(fail('unsigned', 'refused: the answer carries no signature envelope', { refused: true }));
          return;
        }
        finish(done(envelope));
      });
    });
    const cut = (why: string): void => {
      if (failed || settled()) return;
      // What arrived is kept for the check: a truncated download is refused by its digest.
      out.end(() => {
        if (envelope === null) finish(fail('network', `${where}: ${why}`));
        else finish(done(envelope));
      });
    };
    source.on('error', (e) => cut(e.message));
    res.on('aborted', () => cut('the connection was cut mid-download'));
  }
}
