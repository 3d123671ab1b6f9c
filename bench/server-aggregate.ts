// Benchmark of the baseline server and the endpoint's bucket cache. Prints
// figures; never fails on a time. Targets (issue 4):
//   - 100 million sightings (1,000 orgs x 10 hosts x 30 days) aggregated into a
//     baseline in under 10 minutes (intake sightings/s reported too);
//   - the endpoint's bucket cache under 20 MB next to a global baseline of
//     ~10 million combos;
//   - a delta of 100,000 changed combos applied in under 2 s;
//   - a bucket fetch for a new sha256 under 100 ms on loopback.
// Quick run: node dist/bench/server-aggregate.js --orgs 50 (full: --orgs 1000).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_FLEET, simulateFleet, shaOf, tokensFromStateDir } from './fleet-sim.js';
import { BucketCache } from '../src/sync/bucket-cache.js';
import { SyncClient } from '../src/sync/sync-client.js';
import { DEFAULT_SERVER, DEFAULT_SYNC } from '../src/config/defaults.js';
import { generateSigningKey, signContent, verifySigned } from '../src/baseline/signature.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';
import type { BaselineMeta } from '../src/model/baseline.js';

export interface BenchServerOptions {
  orgs?: number;
  hostsPerOrg?: number;
  days?: number;
  sightingsPerHostDay?: number;
  /** Keep the server's state folder (printed) instead of deleting it. */
  keep?: boolean;
  out?: (line: string) => void;
}

const DAY_MS = 86_400_000;

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** One plain-HTTP call with an optional bearer token: status, body and how long it took. */
export function httpJson(url: string, method: string, token: string | null): Promise<{ status: number; body: Buffer; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end();
  });
}

function startServerChild(stateDir: string): Promise<{ child: ChildProcess; url: string; adminToken: string; publicKey: string }> {
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'server-child.js');
  // A whole fleet behind one loopback address: no per-address limits here, and plain HTTP so the intake
  // figures stay comparable (TLS, the limits and the memory budget are measured by server-hostile.ts).
  const off = { perMinute: 0, burst: 1 };
  const cfg = {
    stateDir,
    observerUnit: 'org',
    omitSingleObserverCombos: false,
    buildInWorker: true,
    bucketHexChars: 4,
    requestTimeoutMs: 600_000,
    plainHttp: true,
    rateLimits: { ...DEFAULT_SERVER.rateLimits, enrolPerAddress: off, uploadPerAddress: off, downloadPerAddress: off },
  };
  const child = spawn(process.execPath, ['--max-old-space-size=8192', script, JSON.stringify(cfg)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ...(JSON.parse(out.slice(0, nl)) as { url: string; adminToken: string; publicKey: string }) });
    });
    child.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/** Applying a signed delta of `n` changed combos to a bucket cache holding them (the endpoint's side of a sync). */
async function benchDeltaApply(dir: string, n: number, out: (l: string) => void): Promise<void> {
  const key = generateSigningKey();
  const cache = new BucketCache(join(dir, 'delta-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 1000 });
  const prefixes = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(4, '0'));
  const shas = Array.from({ length: n / 10 }, (_, i) => shaOf(`delta-${i}`));
  const meta = (version: number): BaselineMeta => ({
    version,
    builtAtMs: Date.now(),
    windowStartMs: Date.now() - 30 * DAY_MS,
    windowEndMs: Date.now(),
    observerUnit: 'org',
    populationSize: 1000,
    policy: DEFAULT_POLICY,
    thresholds: DEFAULT_THRESHOLDS,
    omitsSingleObserverCombos: false,
    processCount: shas.length,
    comboCount: n,
  });
  const rows = (obs: number) => ({
    processes: shas.map((s) => [s, obs] as [string, number]),
    combos: shas.flatMap((s) => Array.from({ length: 10 }, (_, k) => [s, `dom${k}.com`, 443, obs + k] as [string, string, number, number])),
  });
  const covered = [...new Set(shas.map((s) => s.slice(0, 4)))].sort();
  const full = signContent(
    { kind: 'buckets', meta: meta(1), fromVersion: null, prefixes: covered, bucketHexChars: 4 },
    Buffer.from(JSON.stringify(rows(5))),
    key,
  );
  const v1 = verifySigned(full, key.publicKey);
  if (!v1.ok) throw new Error(v1.error);
  cache.apply(v1.header, JSON.parse(v1.content.toString('utf8')), 'new-buckets');
  const delta = signContent(
    { kind: 'buckets', meta: meta(2), fromVersion: 1, prefixes: covered, bucketHexChars: 4 },
    Buffer.from(JSON.stringify(rows(7))),
    key,
  );
  const started = performance.now();
  const v2 = verifySigned(delta, key.publicKey);
  if (!v2.ok) throw new Error(v2.error);
  const parsed = JSON.parse(v2.content.toString('utf8')) as unknown;
  const a = cache.apply(v2.header, parsed, 'refresh');
  const ms = performance.now() - started;
  if (!a.ok) throw new Error(a.error);
  out(
    `delta apply: ${fmt(a.comboRows)} changed combos + ${fmt(a.processRows)} processes (${mib(delta.length)} signed) verified, parsed and applied in ${fmt(ms)} ms (target < 2,000 ms), a synthetic signed delta over ${prefixes.length > 0 ? covered.length : 0} cached buckets`,
  );
  cache.close();
}

/** `RARECON_BENCH_SERVER_ORGS=50 npm run bench server` for a quick run (the full one takes about half an hour). */
function envOrgs(): number | undefined {
  const v = Number(process.env.RARECON_BENCH_SERVER_ORGS);
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

export async function benchServer(opts: BenchServerOptions = {}): Promise<void> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-server-'));
  const stateDir = join(dir, 'server');
  const fleet = {
    ...DEFAULT_FLEET,
    orgs: opts.orgs ?? envOrgs() ?? DEFAULT_FLEET.orgs,
    hostsPerOrg: opts.hostsPerOrg ?? DEFAULT_FLEET.hostsPerOrg,
    days: opts.days ?? DEFAULT_FLEET.days,
  };
  if (opts.sightingsPerHostDay !== undefined) fleet.sightingsPerHostDay = opts.sightingsPerHostDay;
  out(
    `rarecon server bench: ${fmt(fleet.orgs)} orgs x ${fleet.hostsPerOrg} hosts x ${fleet.days} days x ~${fleet.sightingsPerHostDay} sightings (${fmt(fleet.orgs * fleet.hostsPerOrg * fleet.days * fleet.sightingsPerHostDay)} sightings)`,
  );
  const server = await startServerChild(stateDir);
  const tokens = tokensFromStateDir(stateDir);
  try {
    const endDayMs = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const f = await simulateFleet({ ...fleet, url: server.url, tokenFor: tokens.tokenFor, endDayMs, progress: out });
    out(
      `intake: ${fmt(f.sightings)} sightings in ${fmt(f.requests)} requests (${mib(f.bytesSent)} JSON) in ${(f.elapsedMs / 1000).toFixed(1)} s: ${fmt(f.sightingsPerSecond)} sightings/s`,
    );
    const dbBytes = statSync(join(stateDir, 'server.db')).size;
    out(`intake store: ${mib(dbBytes)} (${(dbBytes / f.sightings).toFixed(1)} bytes a sighting)`);

    const b = await httpJson(`${server.url}/v1/admin/build`, 'POST', server.adminToken);
    if (b.status !== 200) throw new Error(`build failed: ${b.body.toString()}`);
    const built = JSON.parse(b.body.toString()) as { version: number; meta: BaselineMeta; figures: Record<string, number> };
    const fig = built.figures;
    out(
      `aggregation: ${fmt((fig.totalMs as number) / 1000)} s (target < 600 s) for ${fmt(fig.sightingsRead as number)} sightings in the window, ` +
        `${fmt(fig.sightingsFed as number)} fed to the builder after per-observer dedup; read+feed ${fmt(fig.readAndFeedMs as number)} ms, ` +
        `write ${fmt(fig.writeMs as number)} ms, lookups ${fmt(fig.lookupMs as number)} ms, publish ${fmt(fig.publishMs as number)} ms`,
    );
    out(
      `baseline: version ${built.version}, ${fmt(built.meta.processCount)} processes, ${fmt(built.meta.comboCount)} combos, ${built.meta.populationSize} observers, snapshot ${mib(fig.snapshotBytes as number)}`,
    );
    out(`publication store: ${mib(statSync(join(stateDir, 'publish.db')).size)}`);

    // The endpoint: a bucket cache for the processes one host runs.
    const epDir = join(dir, 'endpoint');
    mkdirSync(epDir, { recursive: true });
    const enrolToken = tokens.tokenFor('org-0');
    const client = new SyncClient({
      cfg: {
        ...DEFAULT_SYNC,
        serverUrl: server.url,
        serverPublicKey: server.publicKey,
        enrolTokenEnv: 'BENCH_TOKEN',
        mode: 'buckets',
        bucketFetchLingerMs: 0,
        requestTimeoutMs: 120_000,
      },
      stateDir: epDir,
      hostId: 'bench-endpoint',
      log: () => {},
      env: { BENCH_TOKEN: enrolToken },
    });
    const first = await client.syncNow();
    if (!first.ok) throw new Error(first.error);
    const reader = client.current();
    if (reader === null) throw new Error('no baseline on the endpoint');
    const hostShas = [
      ...Array.from({ length: 400 }, (_, i) => shaOf(`popular-${i}`)),
      ...Array.from({ length: 60 }, (_, i) => shaOf(`org-0-bin-${i}`)),
    ];
    for (const s of hostShas) reader.process(s);
    let t = performance.now();
    const fetched = await client.fetchWantedNow();
    if (!fetched.ok) throw new Error(fetched.error);
    // A month of browsing: each browser meets a few hundred root domains of the fleet's pool; their cells come on demand.
    let misses = 0;
    for (let b = 0; b < 6; b++) {
      for (let i = 0; i < 600; i++)
        if (reader.combo(shaOf(`popular-${b}`), `w${Math.floor(200_000 * Math.random() ** 3)}.com`, 443) === 0) misses++;
    }
    const cells = await client.fetchWantedNow();
    if (!cells.ok) throw new Error(cells.error);
    const cacheStats = client.bucketCache()?.stats();
    out(
      `endpoint cache: ${hostShas.length} processes and 3,600 browser visits -> ${cacheStats?.buckets} buckets + ${cacheStats?.cells} cells, ` +
        `${fmt(cacheStats?.processRows ?? 0)} processes, ${fmt(cacheStats?.comboRows ?? 0)} combos, ${mib(cacheStats?.sizeBytes ?? 0)} on disk (target < 20 MiB) ` +
        `next to a global ${fmt(built.meta.comboCount)} combos; fetched in ${fmt(performance.now() - t)} ms (${misses} lookups waited for a cell)`,
    );
    const planted = f.planted[0];
    if (planted !== undefined) {
      reader.process(planted.sha256);
      await client.fetchWantedNow();
      out(
        `scoring: planted rare combo ${planted.rootDomain}:${planted.port} -> ${reader.combo(planted.sha256, planted.rootDomain, planted.port)} observers; popular ${f.popular.rootDomain}:443 -> ${reader.combo(f.popular.sha256, f.popular.rootDomain, 443)} observers; process -> ${reader.process(planted.sha256)}`,
      );
    }
    // A new sha256: one bucket, fetched, verified and applied.
    const lat: number[] = [];
    for (let i = 0; i < 50; i++) {
      const s = shaOf(`never-seen-${i}`);
      reader.process(s);
      t = performance.now();
      const r = await client.fetchWantedNow();
      lat.push(performance.now() - t);
      if (!r.ok) throw new Error(r.error);
    }
    lat.sort((a, b) => a - b);
    const raw: number[] = [];
    const cred = (JSON.parse(readFileSync(join(epDir, 'server-credential.json'), 'utf8')) as { credential: string }).credential;
    for (let i = 0; i < 200; i++) {
      const prefix = shaOf(`raw-${i}`).slice(0, 4);
      raw.push((await httpJson(`${server.url}/v1/baseline/buckets/${prefix}`, 'GET', cred)).ms);
    }
    raw.sort((a, b) => a - b);
    out(
      `bucket fetch for a new sha256 (client: request, verify, apply): p50 ${percentile(lat, 0.5).toFixed(1)} ms, p99 ${percentile(lat, 0.99).toFixed(1)} ms (target < 100 ms); ` +
        `raw GET /v1/baseline/buckets/:prefix p50 ${percentile(raw, 0.5).toFixed(1)} ms, p99 ${percentile(raw, 0.99).toFixed(1)} ms`,
    );
    await client.stop();
    client.close();
    await benchDeltaApply(dir, 100_000, out);
  } finally {
    tokens.close();
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    if (opts.keep === true) out(`state kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      orgs: { type: 'string' },
      hosts: { type: 'string' },
      days: { type: 'string' },
      sightings: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const o: BenchServerOptions = { keep: values.keep };
  if (values.orgs !== undefined) o.orgs = num(values.orgs) as number;
  if (values.hosts !== undefined) o.hostsPerOrg = num(values.hosts) as number;
  if (values.days !== undefined) o.days = num(values.days) as number;
  if (values.sightings !== undefined) o.sightingsPerHostDay = num(values.sightings) as number;
  benchServer(o).catch((e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
