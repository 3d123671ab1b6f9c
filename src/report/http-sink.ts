// POSTs batches of alerts to a webhook: a JSON array or NDJSON of OCSF or ECS
// documents, with a bearer token, optional mutual TLS and a custom CA.
// 2xx is success; 408, 425, 429, 5xx, timeouts and connection errors are
// retryable (Retry-After honoured); any other answer is a failure, because
// sending the same body again would get the same answer.
import http from 'node:http';
import https from 'node:https';
import { gzipSync } from 'node:zlib';
import type { Alert } from '../model/alert.js';
import { PRODUCT_VERSION } from '../model/product.js';
import type { HttpSinkConfig } from '../config/defaults.js';
import { parseRetryAfterMs } from '../common/backoff.js';
import { renderAlert } from './render.js';
import { TokenSource, type SecretResult } from '../common/token-source.js';
import { errorText, failure, retryable, type AlertSink, type SendResult } from './sink.js';
import { loadTlsFiles } from '../common/tls-files.js';
import { PinnedAgent } from '../common/tls-pin.js';

const RETRYABLE_STATUS = new Set([408, 425, 429]);
const ERROR_BODY_BYTES = 2048;

export interface HttpSinkOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  /** The bearer token from elsewhere than tokenEnv/tokenFile (the server sink's host credential); asked per batch. */
  token?: () => SecretResult | null;
  /** Talk only to the server whose certificate has this sha256 (`sha256:<hex>`), instead of checking a CA. */
  pin?: string | null;
  /** More statuses that mean "later" (the server sink: 401 while the host enrols again). */
  retryStatus?: readonly number[];
}

export class HttpSink implements AlertSink {
  readonly name: string;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly token: () => SecretResult | null;
  private readonly now: () => number;
  private readonly retryStatus: ReadonlySet<number>;
  /** The address without credentials or query, for messages. */
  private readonly where: string;

  /** Throws when the TLS files or the token cannot be read: a start-up failure. */
  constructor(
    private readonly cfg: HttpSinkConfig,
    opts: HttpSinkOptions = {},
  ) {
    this.name = cfg.name;
    this.url = new URL(cfg.url);
    this.where = `${this.url.protocol}//${this.url.host}${this.url.pathname}`;
    this.now = opts.now ?? Date.now;
    if (opts.token !== undefined) {
      this.token = opts.token;
    } else {
      const source = new TokenSource(cfg.tokenEnv, cfg.tokenFile, opts.env);
      const first = source.get();
      if (first !== null && !first.ok) throw new Error(`sink ${cfg.name}: ${first.error}`);
      this.token = () => source.get();
    }
    this.retryStatus = new Set([...RETRYABLE_STATUS, ...(opts.retryStatus ?? [])]);
    const pin = opts.pin ?? null;
    this.agent =
      this.url.protocol !== 'https:'
        ? new http.Agent({ keepAlive: true, maxSockets: 1 })
        : pin !== null
          ? new PinnedAgent(pin, { keepAlive: true, maxSockets: 1, ...loadTlsFiles(cfg, cfg.name) })
          : new https.Agent({ keepAlive: true, maxSockets: 1, ...loadTlsFiles(cfg, cfg.name) });
  }

  private body(batch: readonly Alert[]): string {
    const docs = batch.map((a) => JSON.stringify(renderAlert(a, this.cfg.format)));
    return this.cfg.body === 'ndjson' ? `${docs.join('\n')}\n` : `[${docs.join(',')}]`;
  }

  send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    if (signal.aborted) return Promise.resolve(retryable('aborted by shutdown'));
    const headers: Record<string, string> = {
      'content-type': this.cfg.body === 'ndjson' ? 'application/x-ndjson' : 'application/json',
      'user-agent': `rarecon/${PRODUCT_VERSION}`,
    };
    const token = this.token();
    if (token !== null) {
      if (!token.ok) return Promise.resolve(retryable(`no bearer token: ${token.error}`));
      headers['authorization'] = `Bearer ${token.value}`;
    }
    let payload: Buffer = Buffer.from(this.body(batch));
    if (this.cfg.gzip) {
      payload = gzipSync(payload);
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = String(payload.length);
    const lib = this.url.protocol === 'https:' ? https : http;

    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const finish = (r: SendResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const req = lib.request(this.url, { method: 'POST', agent: this.agent, headers });
      const timer = setTimeout(() => {
        finish(retryable(`${this.where} did not answer within ${this.cfg.timeoutMs} ms`));
        req.destroy();
      }, this.cfg.timeoutMs);
      const onAbort = (): void => {
        finish(retryable('aborted by shutdown'));
        req.destroy();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => finish(retryable(`cannot deliver to ${this.where}: ${errorText(err)}`)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          if (kept < ERROR_BODY_BYTES) {
            chunks.push(c);
            kept += c.length;
          }
        });
        res.on('error', (err) => finish(retryable(`the answer of ${this.where} broke off: ${errorText(err)}`)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return finish({ status: 'success' });
          const text = Buffer.concat(chunks).toString('utf8').slice(0, ERROR_BODY_BYTES).replace(/\s+/g, ' ').trim();
          const message = `${this.where} answered HTTP ${status}${text === '' ? '' : `: ${text.slice(0, 300)}`}`;
          if (status >= 500 || this.retryStatus.has(status)) {
            const header = res.headers['retry-after'];
            return finish(retryable(message, parseRetryAfterMs(Array.isArray(header) ? header[0] : header, this.now())));
          }
          return finish(failure(message));
        });
      });
      req.end(payload);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
