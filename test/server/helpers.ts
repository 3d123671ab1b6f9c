// Helpers of the server tests: temp folders, a server in this process or in a
// child process (the compiled `rarecon server`), and plain HTTP calls.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_SERVER, type ServerConfig } from '../../src/server/config.js';
import { startBaselineServer, type RunningServer } from '../../src/server/server.js';
import type { LogFn } from '../../src/report/log.js';
import { REPO } from '../helpers/cli.js';

export const DIST_SERVER_CLI = join(REPO, 'dist', 'test', 'server', 'run-cli.js');

export function tempDir(name: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `rarecon-${name}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sha(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}

export const DAY = 86_400_000;

export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

export function memoryLog(): { log: LogFn; lines: Logged[] } {
  const lines: Logged[] = [];
  return { lines, log: (level, msg, fields = {}) => void lines.push({ level, msg, fields }) };
}

export async function startTestServer(dir: string, over: Partial<ServerConfig> = {}): Promise<{ server: RunningServer; lines: Logged[] }> {
  const { log, lines } = memoryLog();
  const cfg: ServerConfig = {
    ...structuredClone(DEFAULT_SERVER),
    stateDir: dir,
    listenHost: '127.0.0.1',
    port: 0,
    observerUnit: 'host',
    buildInWorker: false,
    ...over,
  };
  const server = await startBaselineServer(cfg, log, { noInitialBuild: true });
  return { server, lines };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: any;
}

export function http(
  url: string,
  opts: { method?: string; token?: string; body?: unknown; rawBody?: Buffer; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = opts.rawBody ?? (opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body)));
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (payload !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? (payload === undefined ? 'GET' : 'POST'), headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body = Buffer.concat(chunks);
        if (res.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        let json: any = null;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export function distBuilt(): boolean {
  return existsSync(DIST_SERVER_CLI);
}
