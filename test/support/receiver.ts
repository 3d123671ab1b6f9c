// A real HTTP(S) receiver on 127.0.0.1 for tests: records what arrives by uid
// and can be told to be down (503, closed connections, not listening), to
// answer 400 or 429 with Retry-After, or to be slow.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type Mode =
  { kind: 'up'; delayMs?: number } | { kind: 'status'; status: number; retryAfter?: string } | { kind: 'reset' } | { kind: 'hang' };

/** The fields the receiver reads from an OCSF or an ECS document. */
interface Doc {
  metadata?: { uid?: string };
  event?: { id?: string };
  device?: { uid?: string };
  host?: { id?: string };
}

export interface Received {
  atMs: number;
  uids: string[];
  hosts: string[];
  headers: http.IncomingHttpHeaders;
}

export class Receiver {
  readonly requests: Received[] = [];
  /** Every request, answered or not. */
  attempts: Array<{ atMs: number; status: number }> = [];
  mode: Mode = { kind: 'up' };
  private server: http.Server;
  port = 0;

  constructor(tls?: https.ServerOptions) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.handle(req, res);
    this.server = tls === undefined ? http.createServer(handler) : https.createServer(tls, handler);
    this.server.keepAliveTimeout = 1000;
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening and drops open connections (the upstream is gone). */
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `${this.server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${this.port}/ingest`;
  }

  /** Uids in arrival order, duplicates included. */
  get uids(): string[] {
    return this.requests.flatMap((r) => r.uids);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const mode = this.mode;
    if (mode.kind === 'reset') {
      this.attempts.push({ atMs: Date.now(), status: 0 });
      req.socket.destroy();
      return;
    }
    if (mode.kind === 'hang') {
      this.attempts.push({ atMs: Date.now(), status: 0 });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = Date.now();
      if (mode.kind === 'status') {
        this.attempts.push({ atMs: now, status: mode.status });
        res.writeHead(mode.status, mode.retryAfter === undefined ? {} : { 'retry-after': mode.retryAfter });
        res.end(mode.status === 400 ? '{"error":"schema mismatch: field class_uid"}' : 'try later');
        return;
      }
      this.attempts.push({ atMs: now, status: 200 });
      const delayMs = mode.delayMs ?? 0;
      const raw = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      const docs: Doc[] = text.trimStart().startsWith('[')
        ? (JSON.parse(text) as Doc[])
        : text
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as Doc);
      this.requests.push({
        atMs: now,
        uids: docs.map((d) => d.metadata?.uid ?? d.event?.id ?? '(no uid)'),
        hosts: docs.map((d) => d.device?.uid ?? d.host?.id ?? '(no host)'),
        headers: req.headers,
      });
      const answer = (): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  }
}

/** Duplicates and the uids never seen, against the expected set. */
export function deliveryReport(seen: readonly string[], expected: readonly string[]): { missing: string[]; duplicates: number } {
  const s = new Set(seen);
  return { missing: expected.filter((u) => !s.has(u)), duplicates: seen.length - s.size };
}

/** For each host, the order in which its uids first arrived must be the order they were enqueued. */
export function outOfOrder(seen: readonly string[], expected: readonly string[], hostOf: (uid: string) => string): string[] {
  const rank = new Map(expected.map((u, i) => [u, i]));
  const firstSeen = new Set<string>();
  const lastRank = new Map<string, number>();
  const bad: string[] = [];
  for (const u of seen) {
    if (firstSeen.has(u)) continue;
    firstSeen.add(u);
    const h = hostOf(u);
    const r = rank.get(u) ?? -1;
    if (r < (lastRank.get(h) ?? -1)) bad.push(u);
    lastRank.set(h, r);
  }
  return bad;
}
