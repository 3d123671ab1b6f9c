// Helpers of the server tests: temp folders, a server in this process or in a
// child process (the compiled `rarecon server`), and plain HTTP calls.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as plainRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as tlsRequest } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_SERVER, type ServerConfig } from '../../src/config/defaults.js';
import { startBaselineServer, type RunningServer, type StartOptions } from '../../src/server/server.js';
import type { LogFn } from '../../src/common/log.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, REPO, rarecon } from './cli.js';

export const DIST_SERVER_CLI = join(REPO, 'dist', 'src', 'cli', 'server.js');

/**
 * A request to the server under test, over HTTP or HTTPS. Over HTTPS the
 * certificate is not checked here: these helpers test the API; the pin is
 * tested with the product's own client (test/server/hostile.test.ts).
 */
export function request(opts: RequestOptions, cb?: (res: IncomingMessage) => void): ClientRequest {
  return opts.protocol === 'https:' ? tlsRequest({ ...opts, rejectUnauthorized: false }, cb) : plainRequest(opts, cb);
}

/** Starts `rarecon server --config FILE` (the built CLI) and waits for the URL in its "listening" log line. */
export function startServerProcess(
  configPath: string,
): Promise<{ child: ChildProcess; url: string; certSha256: string | null; log: () => string }> {
  const child = spawn(process.execPath, [CLI, 'server', '--config', configPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(() => reject(new Error(`rarecon server did not start: ${seen}`)), 30_000);
    let started = false;
    const look = (b: Buffer): void => {
      seen += b.toString();
      if (started) return;
      const m = /"url":"(https?:\/\/127\.0\.0\.1:\d+)"/.exec(seen);
      if (m !== null) {
        started = true;
        clearTimeout(t);
        child.off('close', early);
        const pin = /"certSha256":"(sha256:[0-9a-f]{64})"/.exec(seen);
        resolve({ child, url: m[1] as string, certSha256: pin === null ? null : (pin[1] as string), log: () => seen });
      }
    };
    const early = (code: number | null): void => {
      clearTimeout(t);
      reject(new Error(`rarecon server exited with ${code} before it listened: ${seen}`));
    };
    // The log goes to stdout or stderr depending on the logger's set-up: read both.
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('close', early);
  });
}

export interface ServerCli {
  dir: string;
  stateDir: string;
  configPath: string;
  url: string;
  /** The pin `server enroll` printed (null over plain HTTP). */
  certSha256: string | null;
  publicKey: string;
  adminToken: string;
  /** What the server logged so far. */
  log: () => string;
  child: ChildProcess;
  stop: () => Promise<void>;
}

/**
 * `rarecon server` as an operator runs it: a config file (the `server:` lines
 * given), `rarecon server enroll` once (which makes the keys and certificate),
 * then the server process.
 */
export async function startServerCli(dir: string, serverYaml: string): Promise<ServerCli & { token: string }> {
  const stateDir = join(dir, 'server');
  const configPath = join(dir, 'server.yaml');
  writeFileSync(configPath, `server:\n  stateDir: ${stateDir}\n  listenHost: 127.0.0.1\n  port: 0\n${serverYaml}`);
  const e = await rarecon(['server', 'enroll', '--org', 'first-org', '--json', '--config', configPath]);
  if (e.code !== 0) throw new Error(`rarecon server enroll failed: ${e.stderr}`);
  const enrolled = JSON.parse(e.stdout) as { token: string; publicKey: string; certSha256: string | null };
  const p = await startServerProcess(configPath);
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
      p.child.once('close', () => resolve());
      p.child.kill('SIGTERM');
    });
  return {
    dir,
    stateDir,
    configPath,
    url: p.url,
    certSha256: enrolled.certSha256,
    publicKey: enrolled.publicKey,
    adminToken: readFileSync(join(stateDir, 'admin-token'), 'utf8').trim(),
    log: p.log,
    child: p.child,
    stop,
    token: enrolled.token,
  };
}

/** `rarecon server enroll --org ORG [--max-hosts N]` against a server's config: the token, as --json gives it. */
export async function enrolToken(
  s: Pick<ServerCli, 'configPath'>,
  org: string,
  maxHosts?: number,
): Promise<{ token: string; tokenId: string }> {
  const args = ['server', 'enroll', '--org', org, '--json', '--config', s.configPath];
  if (maxHosts !== undefined) args.push('--max-hosts', String(maxHosts));
  const e = await rarecon(args);
  if (e.code !== 0) throw new Error(`rarecon server enroll failed: ${e.stderr}`);
  return JSON.parse(e.stdout) as { token: string; tokenId: string };
}

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

export async function startTestServer(
  dir: string,
  over: Partial<ServerConfig> = {},
  opts: StartOptions = {},
): Promise<{ server: RunningServer; lines: Logged[] }> {
  const { log, lines } = memoryLog();
  const cfg: ServerConfig = {
    ...structuredClone(DEFAULT_SERVER),
    stateDir: dir,
    listenHost: '127.0.0.1',
    port: 0,
    observerUnit: 'host',
    buildInWorker: false,
    // The API tests talk plain HTTP on loopback and count every host at once; the defences have their own tests.
    plainHttp: true,
    hostMinUploadDays: 1,
    ...over,
  };
  const server = await startBaselineServer(cfg, log, { noInitialBuild: true, ...opts });
  return { server, lines };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read whatever JSON a route answers
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
    const req = request(
      {
        protocol: u.protocol,
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body = Buffer.concat(chunks);
          if (res.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
          // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
          let json: any = null;
          try {
            json = JSON.parse(body.toString('utf8'));
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export function distBuilt(): boolean {
  return existsSync(DIST_SERVER_CLI);
}

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'status'; status: number }
  | { kind: 'hang' }
  /** The request goes through to the server; its answer never comes back (the server did the work, the client never hears). */
  | { kind: 'forward-then-hang' }
  | { kind: 'tamper' }
  | { kind: 'strip-signature' }
  | { kind: 'truncate' }
  | { kind: 'replay'; body: Buffer }
  | { kind: 'trickle'; bytesPerTick: number; tickMs: number };

/**
 * A misbehaving middle-man in front of a real server, on loopback: passes,
 * fails, hangs, tampers with, truncates or replays signed answers.
 */
export async function startProxy(
  target: string,
): Promise<{ url: string; mode: ProxyMode; last: Buffer | null; held: number; close: () => Promise<void> }> {
  const { createServer } = await import('node:http');
  const state: { url: string; mode: ProxyMode; last: Buffer | null; held: number; close: () => Promise<void> } = {
    url: '',
    mode: { kind: 'pass' },
    last: null,
    held: 0,
    close: async () => {},
  };
  const hanging: Array<import('node:http').ServerResponse> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const mode = state.mode;
      if (mode.kind === 'status') {
        res.writeHead(mode.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'test', message: `proxy says ${mode.status}` } }));
        return;
      }
      if (mode.kind === 'hang') {
        hanging.push(res);
        return;
      }
      const u = new URL(target);
      const headers = { ...req.headers };
      delete headers['accept-encoding'];
      const up = request({ protocol: u.protocol, host: u.hostname, port: u.port, path: req.url, method: req.method, headers }, (r) => {
        const body: Buffer[] = [];
        r.on('data', (c: Buffer) => body.push(c));
        r.on('end', () => {
          let b: Buffer = Buffer.concat(body);
          const signed = String(r.headers['content-type'] ?? '').startsWith('application/x-rarecon-signed') && r.statusCode === 200;
          if (signed) state.last = b;
          if (mode.kind === 'forward-then-hang') {
            state.held++;
            hanging.push(res);
            return;
          }
          const h = { ...r.headers };
          delete h['content-length'];
          if (signed && mode.kind === 'tamper') {
            b = Buffer.from(b);
            b[b.length - 5] = (b[b.length - 5] as number) ^ 0x01;
          } else if (signed && mode.kind === 'strip-signature') {
            const nl = b.indexOf(0x0a);
            const env = JSON.parse(b.subarray(0, nl).toString('utf8'));
            env.signature = '';
            b = Buffer.concat([Buffer.from(JSON.stringify(env)), b.subarray(nl)]);
          } else if (signed && mode.kind === 'replay') {
            b = mode.body;
          } else if (signed && mode.kind === 'truncate') {
            res.writeHead(r.statusCode ?? 500, { ...h, 'content-length': String(b.length) });
            res.write(b.subarray(0, Math.floor(b.length * 0.6)));
            setTimeout(() => res.destroy(), 20);
            return;
          } else if (signed && mode.kind === 'trickle') {
            res.writeHead(r.statusCode ?? 500, { ...h, 'content-length': String(b.length) });
            let off = 0;
            const t = setInterval(() => {
              if (res.destroyed) return clearInterval(t);
              res.write(b.subarray(off, off + mode.bytesPerTick));
              off += mode.bytesPerTick;
              if (off >= b.length) {
                clearInterval(t);
                res.end();
              }
            }, mode.tickMs);
            return;
          }
          res.writeHead(r.statusCode ?? 500, { ...h, 'content-length': String(b.length) });
          res.end(b);
        });
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as import('node:net').AddressInfo).port;
  state.url = `http://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** A fleet's worth of uploads for one day: popular binary and domains everywhere, a planted rare combo on a few hosts. */
export const POPULAR = sha('popular-binary');
export const OTHER = sha('other-binary');

export async function enrolHosts(url: string, token: string, n: number, prefix = 'host'): Promise<string[]> {
  const creds: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await http(`${url}/v1/enroll`, { body: { token, hostId: `${prefix}-${i}`, hostName: `${prefix}-${i}` } });
    if (r.status !== 200) throw new Error(`enrol failed: ${r.status} ${r.body.toString()}`);
    creds.push(r.json.credential as string);
  }
  return creds;
}

/** Every host: POPULAR -> popular.com:443; hosts 0 and 1 also POPULAR -> rare-c2.net:8443; `extra` more. */
export async function uploadFleetDay(
  url: string,
  creds: string[],
  dayMs: number,
  extra: Array<{ sha256: string; rootDomain: string; port: number }> = [],
): Promise<void> {
  for (let i = 0; i < creds.length; i++) {
    const combos = [{ sha256: POPULAR, rootDomain: 'popular.com', port: 443 }, ...extra];
    if (i < 2) combos.push({ sha256: POPULAR, rootDomain: 'rare-c2.net', port: 8443 });
    const r = await http(`${url}/v1/sightings`, {
      token: creds[i] as string,
      body: { days: [{ day: isoDay(dayMs), processes: [POPULAR, OTHER], combos }] },
    });
    if (r.status !== 200) throw new Error(`upload failed: ${r.status} ${r.body.toString()}`);
  }
}
