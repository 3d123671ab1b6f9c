// The baseline server under attack on loopback, with its default settings
// (HTTPS with its own certificate, default rate limits and memory budget).
// Prints figures; never fails on them. Issue 15's targets:
//   - 60 concurrent 30 MB alert uploads: server resident memory under 512 MiB
//     (peak, /proc VmHWM), the health check still answering;
//   - a bounded flood (bad-token enrolments, uploads and downloads from one
//     credential): how many the rate limits refused, and health-check p99.
// Run: npm run bench -- server (after the intake bench), or node dist/bench/server-hostile.js.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PinnedAgent } from '../src/common/tls-pin.js';
import { IntakeStore } from '../src/server/intake-store.js';
import { DEFAULT_SERVER } from '../src/config/defaults.js';

const UPLOADS = 60;
const UPLOAD_BYTES = 30 * 1024 * 1024;
const FLOOD_PER_KIND = 10_000;
const FLOOD_CONNECTIONS = 50;
/** How long the refused uploads are retried, honouring Retry-After. */
const RETRY_FOR_MS = 60_000;

export interface HostileOptions {
  out?: (line: string) => void;
  uploads?: number;
  floodPerKind?: number;
}

interface Child {
  child: ChildProcess;
  url: string;
  adminToken: string;
  certSha256: string;
}

function startServer(stateDir: string): Promise<Child> {
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'server-child.js');
  const child = spawn(process.execPath, [script, JSON.stringify({ stateDir })], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ...(JSON.parse(out.slice(0, nl)) as Omit<Child, 'child'>) });
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
}

/** Resident memory now and at its peak (kernel's high-water mark), bytes. */
function rss(pid: number): { now: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

interface Answer {
  status: number;
  ms: number;
  retryAfterS: number | null;
}

function call(agent: PinnedAgent, url: string, method: string, token: string | null, body?: Buffer): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        const ra = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, retryAfterS: ra === undefined ? null : Number(ra) });
      });
      res.on('error', () => resolve({ status: 0, ms: performance.now() - started, retryAfterS: null }));
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started, retryAfterS: null }));
    req.end(body);
  });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Health checks one after another until stopped: their latencies. */
function healthPoller(agent: PinnedAgent, url: string): { stop: () => Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const a = await call(agent, `${url}/v1/health`, 'GET', null);
      times.push(a.status === 200 ? a.ms : Number.POSITIVE_INFINITY);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return times.sort((a, b) => a - b);
    },
  };
}

/** One alert batch of about `bytes` bytes: OCSF-like alerts of ~6 KB (a long command line), as a real endpoint sends them. */
function alertBatch(bytes: number): Buffer {
  const one = (i: number): string =>
    JSON.stringify({
      metadata: { uid: `bench-${i}`, version: '1.3.0' },
      class_uid: 2004,
      severity_id: 3,
      time: Date.now(),
      finding_info: { title: 'Globally uncommon root-domain port combination by a common process (sha256)' },
      actor: { process: { cmd_line: `/usr/bin/curl ${'x'.repeat(5_800)}`, file: { path: '/usr/bin/curl' } } },
    });
  const parts: string[] = [];
  let size = 2;
  for (let i = 0; size < bytes - 8_000 && parts.length < 5_000; i++) {
    const a = one(i);
    parts.push(a);
    size += a.length + 1;
  }
  return Buffer.from(`[${parts.join(',')}]`);
}

export async function benchServerHostile(opts: HostileOptions = {}): Promise<void> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const uploads = opts.uploads ?? UPLOADS;
  const perKind = opts.floodPerKind ?? FLOOD_PER_KIND;
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-hostile-'));
  const stateDir = join(dir, 'server');
  const server = await startServer(stateDir);
  const pid = server.child.pid as number;
  const agent = new PinnedAgent(server.certSha256, { keepAlive: true, maxSockets: FLOOD_CONNECTIONS + uploads + 2 });
  const healthAgent = new PinnedAgent(server.certSha256, { keepAlive: true, maxSockets: 1 });
  // A fresh connection per upload, as rarecon's sync does: a kept-alive one the server closes after 5 s idle would race the retry.
  const uploadAgent = new PinnedAgent(server.certSha256, { keepAlive: false });
  try {
    // Hosts made in server.db directly (same machine): the enrolment limit is measured in the flood below.
    const store = new IntakeStore(join(stateDir, 'server.db'));
    const token = store.createEnrolToken('bench', uploads + 10, Date.now()).token;
    const policy = { lifetimeMs: DEFAULT_SERVER.credentialLifetimeMs, graceMs: DEFAULT_SERVER.credentialGraceMs };
    const creds: string[] = [];
    for (let i = 0; i < uploads + 1; i++) {
      const r = store.enrol({ token, hostId: `bench-${i}`, hostName: null, proof: null }, policy, Date.now());
      if (!r.ok) throw new Error(r.error);
      creds.push(r.credential);
    }
    store.close();
    const idle = rss(pid);
    out(
      `rarecon server under attack (defaults: HTTPS, rate limits, memory budget ${DEFAULT_SERVER.limits.memoryBudgetBytes / 2 ** 20} MiB): idle resident ${(idle.now / 2 ** 20).toFixed(0)} MiB`,
    );

    // 1. Concurrent large uploads.
    const body = alertBatch(UPLOAD_BYTES);
    let peakSampled = 0;
    const sampler = setInterval(() => (peakSampled = Math.max(peakSampled, rss(pid).now)), 50);
    const health = healthPoller(healthAgent, server.url);
    const t0 = performance.now();
    const first = await Promise.all(creds.slice(0, uploads).map((c) => call(uploadAgent, `${server.url}/v1/alerts`, 'POST', c, body)));
    const firstMs = performance.now() - t0;
    const taken = first.filter((a) => a.status === 200).length;
    const busy = first.filter((a) => a.status === 503).length;
    const other = first.length - taken - busy;
    const otherKinds = [...new Set(first.filter((a) => a.status !== 200 && a.status !== 503).map((a) => a.status || 'reset'))].join('/');
    // Clients that honour Retry-After, for a while: the budget takes about one 30 MB body at a time.
    let pending = first.map((a, i) => ({ a, i })).filter(({ a }) => a.status !== 200);
    while (pending.length > 0 && performance.now() - t0 < RETRY_FOR_MS) {
      const wait = Math.max(...pending.map(({ a }) => a.retryAfterS ?? 1)) * 1000;
      await new Promise((r) => setTimeout(r, wait));
      const again = await Promise.all(
        pending.map(async ({ i }) => ({ a: await call(uploadAgent, `${server.url}/v1/alerts`, 'POST', creds[i] as string, body), i })),
      );
      pending = again.filter(({ a }) => a.status !== 200);
    }
    const allMs = performance.now() - t0;
    clearInterval(sampler);
    const h1 = await health.stop();
    const mem = rss(pid);
    out(
      `${uploads} concurrent uploads of ${(body.length / 2 ** 20).toFixed(1)} MiB: ${taken} taken at once, ${busy} refused 503 with Retry-After, ${other} other${other > 0 ? ` (${otherKinds})` : ''}, in ${(firstMs / 1000).toFixed(1)} s; ` +
        `retried as Retry-After says: ${uploads - pending.length} of ${uploads} stored after ${(allMs / 1000).toFixed(1)} s`,
    );
    out(
      `server resident memory under them: peak ${(mem.peak / 2 ** 20).toFixed(0)} MiB (VmHWM; target < 512 MiB), sampled max ${(peakSampled / 2 ** 20).toFixed(0)} MiB, after ${(mem.now / 2 ** 20).toFixed(0)} MiB`,
    );
    out(
      `health check meanwhile: ${h1.length} checks, p50 ${pct(h1, 50).toFixed(0)} ms, p99 ${pct(h1, 99).toFixed(0)} ms, max ${pct(h1, 100).toFixed(0)} ms`,
    );

    // 2. A bounded flood: bad-token enrolments, then uploads and downloads from one credential.
    const flooder = creds[uploads] as string;
    const sighting = Buffer.from(JSON.stringify({ days: [] }));
    const kinds: Array<{ name: string; one: (i: number) => Promise<Answer> }> = [
      {
        name: 'bad-token enrolments',
        one: (i) =>
          call(agent, `${server.url}/v1/enroll`, 'POST', null, Buffer.from(JSON.stringify({ token: `rce_guess${i}`, hostId: `g${i}` }))),
      },
      { name: 'uploads (one credential)', one: () => call(agent, `${server.url}/v1/sightings`, 'POST', flooder, sighting) },
      { name: 'downloads (one credential)', one: () => call(agent, `${server.url}/v1/baseline/buckets/0a1b`, 'GET', flooder) },
    ];
    const health2 = healthPoller(healthAgent, server.url);
    const results: string[] = [];
    let sent = 0;
    let refused = 0;
    const ft0 = performance.now();
    for (const k of kinds) {
      const counts = new Map<number, number>();
      const kt0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: FLOOD_CONNECTIONS }, async () => {
          while (next < perKind) {
            const a = await k.one(next++);
            counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
          }
        }),
      );
      const s = (performance.now() - kt0) / 1000;
      sent += perKind;
      refused += counts.get(429) ?? 0;
      const byStatus = [...counts.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([st, n]) => `${n} x ${st}`)
        .join(', ');
      results.push(`  ${k.name}: ${byStatus} (${Math.round(perKind / s)}/s)`);
    }
    const floodS = (performance.now() - ft0) / 1000;
    const h2 = await health2.stop();
    out(
      `bounded flood on loopback: ${sent} requests over ${FLOOD_CONNECTIONS} connections in ${floodS.toFixed(1)} s, ${refused} refused 429 by the rate limits (${((100 * refused) / sent).toFixed(1)} %)`,
    );
    for (const r of results) out(r);
    out(
      `health check during the flood: ${h2.length} checks, p50 ${pct(h2, 50).toFixed(0)} ms, p99 ${pct(h2, 99).toFixed(0)} ms, max ${pct(h2, 100).toFixed(0)} ms`,
    );
  } finally {
    agent.destroy();
    healthAgent.destroy();
    uploadAgent.destroy();
    server.child.removeAllListeners('exit');
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchServerHostile();
