// Benchmark of the baseline server on PostgreSQL (issue 19), `npm run bench --
// server --store postgresql`. Prints figures; never fails on a time. Targets:
//   - 100M sightings aggregated and published in under 3 minutes;
//   - intake through two nodes at least 2x the SQLite store's (116,500/s).
// On a throwaway durable cluster (fsync on) and a pg_basebackup standby: the
// first half of the fleet uploads through one node, the second half through
// two; one build; bucket fetches through a node reading the primary and one
// reading the standby.
// Size: RARECON_BENCH_PG_ORGS (default 1,000 orgs x 10 hosts x 30 days x ~333 = 100M).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { DEFAULT_FLEET, simulateFleet, shaOf } from './fleet-sim.js';
import { httpJson } from './server-aggregate.js';
import { DEFAULT_SERVER, type ServerConfig } from '../src/config/defaults.js';
import { PgStore } from '../src/server/pg-store.js';
import { startPgCluster, startStandby, waitForReplay, pgMissingReason, type PgCluster } from '../test/support/postgres.js';

const DAY_MS = 86_400_000;
const SQLITE_INTAKE_PER_S = 116_500;

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/** CPU seconds (user + system) of the processes run by `uid`, from /proc. */
export function cpuOfUid(uid: number): number {
  let ticks = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m === null || Number(m[1]) !== uid) continue;
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

export function postgresUid(): number {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  return Number(line?.split(':')[2] ?? -1);
}

/** CPU seconds of a cluster: its postmaster (first line of postmaster.pid) and the postmaster's children. */
export function cpuOfCluster(dataDir: string): number {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return 0;
  }
  let ticks = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      if (Number(p) === postmaster || Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

/** CPU seconds (user + system) of one process, from /proc; 0 when it is gone. */
export function cpuOfPid(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

interface Child {
  child: ChildProcess;
  url: string;
  adminToken: string;
}

function startNode(stateDir: string, over: Partial<ServerConfig>): Promise<Child> {
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'server-child.js');
  const off = { perMinute: 0, burst: 1 };
  const cfg: Partial<ServerConfig> = {
    stateDir,
    observerUnit: 'org',
    omitSingleObserverCombos: false,
    buildInWorker: true,
    bucketHexChars: 4,
    requestTimeoutMs: 600_000,
    plainHttp: true,
    rateLimits: {
      ...DEFAULT_SERVER.rateLimits,
      enrolPerAddress: off,
      uploadPerAddress: off,
      downloadPerAddress: off,
      downloadPerCredential: off,
    },
    ...over,
  };
  // RARECON_BENCH_NODE_FLAGS: extra node flags for the server nodes (e.g. --cpu-prof --cpu-prof-dir=DIR).
  const flags = (process.env.RARECON_BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const child = spawn(process.execPath, ['--max-old-space-size=8192', ...flags, script, JSON.stringify(cfg)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ...(JSON.parse(out.slice(0, nl)) as { url: string; adminToken: string }) });
    });
    child.once('exit', (code) => reject(new Error(`the server node exited with code ${code}`)));
  });
}

async function stopNode(n: Child): Promise<void> {
  if (n.child.exitCode !== null) return;
  const done = new Promise((r) => n.child.once('exit', r));
  n.child.kill('SIGTERM');
  await done;
}

async function one<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows[0] as T;
  } finally {
    await c.end();
  }
}

/** Raw GET /v1/baseline/buckets/:prefix of `n` prefixes no cache has seen: p50 and p99 in ms. */
async function bucketFetches(url: string, cred: string, n: number, salt: string): Promise<{ p50: number; p99: number }> {
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await httpJson(`${url}/v1/baseline/buckets/${shaOf(`${salt}-${i}`).slice(0, 4)}`, 'GET', cred);
    if (r.status !== 200) throw new Error(`bucket fetch answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
    lat.push(r.ms);
  }
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) };
}

export interface BenchServerPgOptions {
  orgs?: number;
  out?: (line: string) => void;
}

export async function benchServerPg(opts: BenchServerPgOptions = {}): Promise<void> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const missing = pgMissingReason();
  if (missing !== null) {
    out(`server --store postgresql: not run: ${missing}`);
    return;
  }
  const envOrgs = Number(process.env.RARECON_BENCH_PG_ORGS);
  const orgs = opts.orgs ?? (Number.isInteger(envOrgs) && envOrgs >= 2 ? envOrgs : DEFAULT_FLEET.orgs);
  const half = Math.floor(orgs / 2);
  const fleet = { ...DEFAULT_FLEET, concurrency: 8 };
  const total = orgs * fleet.hostsPerOrg * fleet.days * fleet.sightingsPerHostDay;
  out(
    `rarecon server bench, PostgreSQL store: ${fmt(orgs)} orgs x ${fleet.hostsPerOrg} hosts x ${fleet.days} days x ~${fleet.sightingsPerHostDay} sightings (~${fmt(total)} sightings)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-pg-'));
  let primary: PgCluster | null = null;
  let standby: PgCluster | null = null;
  const nodes: Child[] = [];
  try {
    // Durable (fsync and synchronous commit on), sized for this 24 GB, 2-core machine.
    const settings = {
      shared_buffers: "'4GB'",
      work_mem: "'64MB'",
      maintenance_work_mem: "'1GB'",
      max_wal_size: "'16GB'",
      checkpoint_timeout: "'15min'",
      wal_compression: 'lz4',
      max_parallel_workers_per_gather: 2,
      effective_cache_size: "'16GB'",
      // The build's slow statements, printed at the end (where its minutes go).
      log_min_duration_statement: 1000,
      log_line_prefix: "'%m [%p] %a '",
      // Where intake's statements go (printed after the intake).
      shared_preload_libraries: "'pg_stat_statements'",
    };
    primary = await startPgCluster({ durable: true, settings });
    const url = await primary.createDatabase('rarecon');
    standby = await startStandby(primary, { durable: true, settings });
    const readUrl = standby.url('rarecon');
    const postgres = { ...DEFAULT_SERVER.postgres, url, statementTimeoutMs: 600_000, aggregateWorkMemMiB: 1024 };
    // Node 1 reads the primary, node 2 the standby; the operator shares the keys (one state folder here).
    const stateDir = join(dir, 'state');
    nodes.push(await startNode(stateDir, { store: 'postgresql', postgres }));
    nodes.push(await startNode(stateDir, { store: 'postgresql', postgres: { ...postgres, readUrl } }));
    const [n1, n2] = nodes as [Child, Child];
    const store = await PgStore.open(postgres, () => {}, { acceptDaysBack: 40 }, Date.now());
    const tokenFor = async (org: string): Promise<string> => (await store.createEnrolToken(org, 1_000, Date.now())).token;
    const endDayMs = Math.floor(Date.now() / DAY_MS) * DAY_MS;

    // Where intake's CPU goes: the fleet simulator (this process), each node, PostgreSQL (primary and standby).
    const pDir = primary.dataDir;
    const sDir = standby.dataDir;
    const cpuNow = (): number[] => {
      const me = process.cpuUsage();
      return [(me.user + me.system) / 1e6, cpuOfPid(n1.child.pid), cpuOfPid(n2.child.pid), cpuOfCluster(pDir), cpuOfCluster(sDir)];
    };
    const cpuLine = (before: number[], s: number): string => {
      const d = cpuNow().map((v, i) => v - (before[i] as number));
      const per = (v: number | undefined): string => `${(v as number).toFixed(0)} s (${(((v as number) / s) * 100).toFixed(0)} %)`;
      return `  CPU: fleet simulator ${per(d[0])}, node 1 ${per(d[1])}, node 2 ${per(d[2])}, PostgreSQL ${per(d[3])}, standby ${per(d[4])} over ${s.toFixed(0)} s; load average ${loadavg()[0]?.toFixed(1)}`;
    };
    let cpu0 = cpuNow();
    const r1 = await simulateFleet({ ...fleet, orgs: half, url: n1.url, tokenFor, endDayMs, progress: out });
    out(
      `intake through 1 node: ${fmt(r1.sightings)} sightings in ${(r1.elapsedMs / 1000).toFixed(1)} s: ${fmt(r1.sightingsPerSecond)} sightings/s (${(r1.sightingsPerSecond / SQLITE_INTAKE_PER_S).toFixed(2)}x the SQLite store's ${fmt(SQLITE_INTAKE_PER_S)}/s)`,
    );
    out(cpuLine(cpu0, r1.elapsedMs / 1000));
    cpu0 = cpuNow();
    const r2 = await simulateFleet({
      ...fleet,
      orgs: orgs - half,
      orgOffset: half,
      url: [n1.url, n2.url],
      tokenFor,
      endDayMs,
      progress: out,
    });
    out(
      `intake through 2 nodes: ${fmt(r2.sightings)} sightings in ${(r2.elapsedMs / 1000).toFixed(1)} s: ${fmt(r2.sightingsPerSecond)} sightings/s (${(r2.sightingsPerSecond / SQLITE_INTAKE_PER_S).toFixed(2)}x the SQLite store's; target >= 2x)`,
    );
    out(cpuLine(cpu0, r2.elapsedMs / 1000));
    await store.close();
    await topStatements(url, out);
    const size = await one<{ b: number }>(url, "SELECT pg_total_relation_size('sighting')::bigint AS b");
    const parts = await one<{ b: string }>(
      url,
      "SELECT sum(pg_total_relation_size(inhrelid))::bigint AS b FROM pg_inherits WHERE inhparent = 'sighting'::regclass",
    );
    const stored = Number(parts.b ?? size.b);
    out(`intake store: ${mib(stored)} of sightings (${(stored / (r1.sightings + r2.sightings)).toFixed(1)} bytes a sighting)`);

    const b = await httpJson(`${n1.url}/v1/admin/build`, 'POST', n1.adminToken);
    if (b.status !== 200) throw new Error(`build failed: ${b.body.toString()}`);
    const built = JSON.parse(b.body.toString()) as {
      version: number;
      meta: { processCount: number; comboCount: number; populationSize: number };
      figures: Record<string, number>;
    };
    const f = built.figures;
    const aggregated = (f.readAndFeedMs as number) + (f.lookupMs as number) + (f.writeMs as number);
    out(
      `aggregation: ${((f.totalMs as number) / 1000).toFixed(1)} s aggregated and published (target < 180 s) for ${fmt(f.sightingsRead as number)} sightings in the window: ` +
        `distinct observers in SQL ${fmt(f.readAndFeedMs as number)} ms (${fmt(f.sightingsFed as number)} observer-thing pairs), counts read ${fmt(f.lookupMs as number)} ms, ` +
        `baseline file written and signed ${fmt(f.writeMs as number)} ms; aggregated ${(aggregated / 1000).toFixed(1)} s, publish ${((f.publishMs as number) / 1000).toFixed(1)} s`,
    );
    out(
      `baseline: version ${built.version}, ${fmt(built.meta.processCount)} processes, ${fmt(built.meta.comboCount)} combos, ${fmt(built.meta.populationSize)} observers, snapshot ${mib(f.snapshotBytes as number)}`,
    );

    await waitForReplay(primary, standby, 'rarecon', 600_000);
    const cred = await enrolOne(n1.url, await freshToken(postgres));
    // Node 2 reads the standby: wait until its current version is the new one.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const h = JSON.parse((await httpJson(`${n2.url}/v1/health`, 'GET', null)).body.toString()) as { baselineVersion: number | null };
      if (h.baselineVersion === built.version) break;
      if (Date.now() > deadline) throw new Error('the standby never served the new version');
      await new Promise((r) => setTimeout(r, 200));
    }
    const fromPrimary = await bucketFetches(n1.url, cred, 300, 'primary');
    const fromStandby = await bucketFetches(n2.url, cred, 300, 'standby');
    out(
      `bucket fetch (raw GET /v1/baseline/buckets/:prefix, 300 prefixes no cache held): from the primary p50 ${fromPrimary.p50.toFixed(1)} ms, p99 ${fromPrimary.p99.toFixed(1)} ms; ` +
        `from the standby p50 ${fromStandby.p50.toFixed(1)} ms, p99 ${fromStandby.p99.toFixed(1)} ms`,
    );
    const slow = primary
      .log()
      .split('\n')
      .filter((l) => l.includes('duration:') && l.includes('rarecon-server-build'));
    for (const l of slow)
      out(
        `  slow statement of the build: ${l
          .replace(/^.*duration: /, '')
          .replace(/\s+/g, ' ')
          .slice(0, 220)}`,
      );
  } finally {
    for (const n of nodes) await stopNode(n).catch(() => undefined);
    await standby?.stop();
    await primary?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The intake's costliest statements (pg_stat_statements), then its counters reset for the build. */
async function topStatements(url: string, out: (line: string) => void): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const r = await c.query<{ ms: number; calls: number; rows: number; q: string }>(
      `SELECT total_exec_time::float8 AS ms, calls::int8 AS calls, rows::int8 AS rows, query AS q FROM pg_stat_statements
       ORDER BY total_exec_time DESC LIMIT 6`,
    );
    for (const s of r.rows)
      out(
        `  intake statement: ${fmt(s.ms)} ms in ${fmt(Number(s.calls))} calls (${fmt(Number(s.rows))} rows): ${s.q.replace(/\s+/g, ' ').slice(0, 140)}`,
      );
    await c.query('SELECT pg_stat_statements_reset()');
  } catch (e) {
    out(`  intake statements: not read (${(e as Error).message})`);
  } finally {
    await c.end();
  }
}

async function freshToken(postgres: ServerConfig['postgres']): Promise<string> {
  const store = await PgStore.open(postgres, () => {}, { acceptDaysBack: 40 }, Date.now());
  try {
    return (await store.createEnrolToken('bench-endpoint', 10, Date.now())).token;
  } finally {
    await store.close();
  }
}

async function enrolOne(url: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL('/v1/enroll', url);
    const body = Buffer.from(JSON.stringify({ token, hostId: 'bench-endpoint' }));
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`enrolment failed: ${res.statusCode} ${text}`));
          resolve((JSON.parse(text) as { credential: string }).credential);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
