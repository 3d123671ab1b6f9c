// Benchmark: the live daemon as shipped (`rarecon run`, the eBPF helper, the
// default config but for the safety valve) on the real kernel.
//   1. idle: CPU and resident memory of the daemon and its helper over 20 s
//      with no connections made;
//   2. load: a C generator (test/e2e/triggers/connect_ports.c) opens paced new
//      TCP connections, at rising rates, either
//        - to a test host in a network namespace whose name the daemon saw
//          resolved by a real DNS server (dnsmasq), one port per connection, so
//          every connection is eligible and raises its own alert (the worst
//          case: enrichment, scoring, dedup state, alert outputs), or
//        - to 127.0.0.1 (not eligible: enriched, scored as internal, recorded);
//      for each rate: connections captured and scored (their records in the
//      --record file) against those attempted, drops the daemon counted, time
//      to drain, CPU per 1,000 connections/s, and connect-to-alert latency
//      (when a line reached the --alerts file, read every 5 ms, minus the
//      connect time in the record).
// Prints figures; never fails on a time. Needs root; runs make in native-events
// and cc for the generator. Traffic goes only to loopback and to the test
// host (198.51.100.144/28).

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { BaselineBuilder } from '../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';
import { DAY_MS } from '../src/model/baseline.js';
import { CLI, REPO } from '../test/support/cli.js';
import { TRIGGER_SRC, buildNative, childPids, rootReason, sha256File, sleep } from '../test/support/env.js';
import { TestHost } from '../test/support/testhost.js';

const execFileP = promisify(execFile);

// The test host: 198.51.100.144/28, its own /28 so it does not meet the e2e tests' hosts.
const HOST_SIDE = '198.51.100.145/28';
const DNS_IP = '198.51.100.146';
const TARGET_IP = '198.51.100.147';
const NAME = 'load.bench-test.example';
const PORT_BASE = 10_000;
const PORT_COUNT = 55_000;

// ---- process figures --------------------------------------------------------------------------

let ticksPerSecond = 100;

/** utime + stime of a process, in ms; 0 when it is gone. */
function cpuMs(pid: number | null): number {
  return cpuSplitMs(pid).user + cpuSplitMs(pid).system;
}

/** User and system CPU time of a process so far, in ms. */
function cpuSplitMs(pid: number | null): { user: number; system: number } {
  if (pid === null) return { user: 0, system: 0 };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(f[11]) * 1000) / ticksPerSecond, system: (Number(f[12]) * 1000) / ticksPerSecond };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** VmRSS and VmHWM in MiB. */
function memory(pid: number | null): { rss: number; hwm: number } {
  if (pid === null) return { rss: 0, hwm: 0 };
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

// ---- a file read as it grows ------------------------------------------------------------------

class Tail {
  private fd: number | null = null;
  private offset = 0;
  private partial = '';
  constructor(private readonly file: string) {}

  /** Complete lines appended since the last call. */
  lines(): string[] {
    if (this.fd === null) {
      if (!existsSync(this.file)) return [];
      this.fd = openSync(this.file, 'r');
    }
    const out: string[] = [];
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.offset);
      if (n <= 0) break;
      this.offset += n;
      const parts = (this.partial + buf.toString('utf8', 0, n)).split('\n');
      this.partial = parts.pop() ?? '';
      for (const p of parts) if (p !== '') out.push(p);
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

// ---- the daemon -------------------------------------------------------------------------------

interface StatusLite {
  updatedMs: number;
  source: { kernelDropsTotal: number; droppedTotal: number; decodeErrorsTotal: number } | null;
  queue: { size: number; droppedTotal: number };
  enrich: { enrichedTotal: number; reusedTotal?: number; repeatsTotal?: number };
  score: { connectionsTotal: number };
  watchdog?: { shedTotal: number } | null;
}

class Daemon {
  readonly child: ChildProcess;
  readonly alerts: string;
  readonly record: string;
  readonly state: string;
  private log = '';
  private readonly spawnedMs = Date.now();
  /** Spawn to the "watching" line, as this process saw it; and the daemon's own figure (process start to watching). */
  startToWatchingMs = 0;
  startUpMs: number | null = null;

  constructor(
    readonly dir: string,
    baseline: string,
    /** --record too (the record of every connection, an instrument the shipped daemon does not run with). */
    readonly recording: boolean,
  ) {
    mkdirSync(dir, { recursive: true });
    this.alerts = path.join(dir, 'alerts.jsonl');
    this.record = path.join(dir, 'record.jsonl');
    this.state = path.join(dir, 'state');
    const config = path.join(dir, 'config.yaml');
    // The shipped defaults (stdout sink included), but no safety valve: the load raises tens of thousands of alerts.
    // Without --record the connections are counted from status.json, written every 250 ms.
    writeFileSync(config, `detect:\n  maxAlertsPerHostPerDay: 100000000\n${recording ? '' : 'statusIntervalMs: 250\n'}`);
    const args = [
      CLI,
      'run',
      '--config',
      config,
      '--baseline',
      baseline,
      '--state',
      this.state,
      '--alerts',
      this.alerts,
      ...(recording ? ['--record', this.record] : []),
      '--activation-days',
      '0',
    ];
    // RARECON_BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the daemon under the load.
    const nodeArgs = (process.env['RARECON_BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
    this.child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (b: Buffer) => {
      if (this.log.length < 1 << 20) this.log += b.toString('utf8');
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async started(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!this.log.includes('rarecon is watching outbound connections.')) {
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`rarecon run did not start:\n${this.log.slice(-2000)}`);
      await sleep(5);
    }
    this.startToWatchingMs = Date.now() - this.spawnedMs;
    const line = this.log.split('\n').find((l) => l.includes('rarecon is watching outbound connections.'));
    const m = line === undefined ? null : /"startUpMs":(\d+)/.exec(line);
    this.startUpMs = m?.[1] === undefined ? null : Number(m[1]);
  }

  helperPid(): number | null {
    return childPids(this.pid, 'rarecon-events')[0] ?? null;
  }

  status(): StatusLite | null {
    try {
      return JSON.parse(readFileSync(path.join(this.state, 'status.json'), 'utf8')) as StatusLite;
    } catch {
      return null;
    }
  }

  warnings(): string[] {
    return this.log
      .split('\n')
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .map((l) => (JSON.parse(l) as { message: string }).message);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await done;
    clearTimeout(t);
  }
}

// ---- the load ---------------------------------------------------------------------------------

interface Generator {
  child: ChildProcess;
  pid: number;
  done: Promise<{ attempted: number; failed: number; elapsedMs: number }>;
}

function startGenerator(bin: string, rate: number, durationMs: number, ip: string, portBase: number, portCount: number): Generator {
  // stdin stays open: the generator lives on after its load, so its last connections can still be enriched.
  const child = spawn(bin, [String(rate), String(durationMs), ip, String(portBase), String(portCount)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const done = new Promise<{ attempted: number; failed: number; elapsedMs: number }>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /attempted=(\d+) failed=(\d+) elapsed_ms=(\d+)/.exec(out);
      if (m) resolve({ attempted: Number(m[1]), failed: Number(m[2]), elapsedMs: Number(m[3]) });
    });
    child.on('error', reject);
    child.on('close', () => reject(new Error(`connect_ports ended early: ${out}`)));
  });
  return { child, pid: child.pid ?? -1, done };
}

/**
 * alerting: every connection a new (root domain, port) combination, so each raises its own alert (worst case);
 * loopback: to 127.0.0.1, none eligible; mix: 99% loopback and 1% alerting, from two processes (a realistic host).
 */
type Kind = 'alerting' | 'loopback' | 'mix';

/** Share of the mix's connections that raise an alert. */
const MIX_ALERTING = 0.01;

interface StepResult {
  kind: Kind;
  rate: number;
  attempted: number;
  achievedRate: number;
  recorded: number;
  alerts: number;
  kernelDrops: number;
  queueDrops: number;
  /** Work the watchdog shed (default budgets): none of it is the generator's, a common process. */
  shed: number;
  drainMs: number;
  keptUp: boolean;
  othersCpuPct: number;
  loadavg: string;
  cpuMsPerConn: number;
  loadCpuPct: number;
  /** The same, of the daemon and of its helper alone. */
  daemonCpuPct: number;
  /** Of which in the kernel (system calls: pipe reads, file and SQLite writes). */
  daemonSysCpuPct: number;
  helperCpuPct: number;
  latency: { p50: number; p99: number; max: number; n: number } | null;
  rssMiB: number;
  hwmMiB: number;
  helperRssMiB: number;
  /** Connections the daemon scored in the step, every process's (the machine's other processes too). */
  scoredAll: number;
  /** Of the enriched connections, repeats of a process instance's code path answered without /proc. */
  repeats: number;
  enriched: number;
  startToWatchingMs: number;
  warnings: string[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Busy and total jiffies of the whole machine. */
function machineJiffies(): { busy: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * RARECON_BENCH_DAEMON_RECORD=1 runs the daemon with --record (every connection written as a line, the
 * way earlier figures were taken); by default it runs as shipped and the connections are counted from its status.
 */
const RECORDING = process.env['RARECON_BENCH_DAEMON_RECORD'] === '1';

/** Connections the daemon has scored, from its status.json (waits for the first one). */
async function scoredSoFar(d: Daemon): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const s = d.status();
    if (s !== null) return s.score.connectionsTotal;
    await sleep(25);
  }
  throw new Error('the daemon wrote no status.json');
}

/** A drain counts as keeping up when the backlog is gone this soon after the load ends. */
const KEPT_UP_MS = 2000;

async function runStep(opts: {
  kind: Kind;
  rate: number;
  durationMs: number;
  bin: string;
  baseline: string;
  dir: string;
  host: TestHost;
  idleCpuPct: number;
  recording: boolean;
}): Promise<StepResult> {
  const d = new Daemon(opts.dir, opts.baseline, opts.recording);
  try {
    await d.started();
    const helper = d.helperPid();
    if (opts.kind !== 'loopback' && !opts.host.resolve(NAME)) throw new Error('the load name did not resolve');
    await sleep(1000);
    const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const alertsTail = new Tail(d.alerts);
    const recordTail = opts.recording ? new Tail(d.record) : null;
    const seenAt = new Map<number, number>(); // port -> when its alert was read
    const connAt = new Map<number, number>(); // port -> connect time in the record (first one), or in the alert
    let recorded = 0;
    let alerts = 0;
    // Without the record: connections scored, from status.json (the generators' and the few of other processes).
    const scoredBefore = opts.recording ? 0 : await scoredSoFar(d);

    const alertingRate = opts.kind === 'alerting' ? opts.rate : opts.kind === 'mix' ? Math.max(1, Math.round(opts.rate * MIX_ALERTING)) : 0;
    const loopbackRate = opts.rate - alertingRate;
    const daemon0 = cpuMs(d.pid);
    const daemonSys0 = cpuSplitMs(d.pid).system;
    const helper0 = cpuMs(helper);
    const cpu0 = daemon0 + helper0;
    const self0 = process.cpuUsage();
    const m0 = machineJiffies();
    const t0 = Date.now();
    const gens: Generator[] = [];
    if (alertingRate > 0) gens.push(startGenerator(opts.bin, alertingRate, opts.durationMs, TARGET_IP, PORT_BASE, PORT_COUNT));
    if (loopbackRate > 0) gens.push(startGenerator(opts.bin, loopbackRate, opts.durationMs, '127.0.0.1', 41_000, 1000));
    const needles = gens.map((g) => `"pid":${g.pid},`);
    const ours = (l: string): boolean => needles.some((n) => l.includes(n));
    const poll = (): void => {
      const now = Date.now();
      for (const l of alertsTail.lines()) {
        if (!ours(l)) continue;
        alerts++;
        const a = JSON.parse(l) as { time?: number; evidences?: Array<{ dst_endpoint?: { port?: number } }> };
        const port = a.evidences?.[0]?.dst_endpoint?.port;
        if (port !== undefined && !seenAt.has(port)) seenAt.set(port, now);
        // The alert's time is its first connection's.
        if (!opts.recording && port !== undefined && a.time !== undefined && !connAt.has(port)) connAt.set(port, a.time);
      }
      if (recordTail === null) {
        const st = d.status();
        if (st !== null) recorded = Math.max(recorded, st.score.connectionsTotal - scoredBefore);
        return;
      }
      for (const l of recordTail.lines()) {
        if (!l.startsWith('{"type":"connection"') || !ours(l)) continue;
        recorded++;
        const r = JSON.parse(l) as { time: string; remote: { ip: string; port: number } };
        // Latency is of the alerting connections; loopback ports may repeat theirs.
        if (r.remote.ip === TARGET_IP && !connAt.has(r.remote.port)) connAt.set(r.remote.port, Date.parse(r.time));
      }
    };
    const timer = setInterval(poll, 5);
    const done = await Promise.all(gens.map((g) => g.done));
    const load = {
      attempted: done.reduce((a, x) => a + x.attempted, 0),
      elapsedMs: done.reduce((a, x) => Math.max(a, x.elapsedMs), 0),
    };
    const loadEnd = Date.now();
    const daemonLoad = cpuMs(d.pid);
    const daemonSysLoad = cpuSplitMs(d.pid).system;
    const helperLoad = cpuMs(helper);
    const cpuLoad = daemonLoad + helperLoad;
    const genCpu = gens.reduce((a, g) => a + cpuMs(g.pid), 0);
    const m1 = machineJiffies();
    const self1 = process.cpuUsage(self0);
    // Drain: until every attempt is recorded, or nothing moves for 5 s.
    let last = -1;
    let lastMove = Date.now();
    while (recorded < load.attempted && Date.now() - lastMove < 5000 && Date.now() - loadEnd < 180_000) {
      await sleep(20);
      if (recorded !== last) {
        last = recorded;
        lastMove = Date.now();
      }
    }
    const drainMs = (recorded >= load.attempted ? Date.now() : lastMove) - loadEnd;
    await sleep(300); // the last alerts to the file
    clearInterval(timer);
    poll();
    const cpu1 = cpuMs(d.pid) + cpuMs(helper);
    const wall = Date.now() - t0;
    const mem = memory(d.pid);
    const helperMem = memory(helper);
    for (const g of gens) g.child.stdin?.end();
    alertsTail.close();
    recordTail?.close();
    await d.stop(); // writes the final status
    const s = d.status();

    const lat: number[] = [];
    for (const [port, seen] of seenAt) {
      const at = connAt.get(port);
      if (at !== undefined) lat.push(seen - at);
    }
    lat.sort((a, b) => a - b);
    // Everything else the machine ran during the load: total busy time minus the daemon, helper, generator and this process.
    const busyMs = ((m1.busy - m0.busy) * 1000) / ticksPerSecond;
    const mine = cpuLoad - cpu0 + genCpu + (self1.user + self1.system) / 1000;
    const idleMs = (opts.idleCpuPct / 100) * wall;
    return {
      kind: opts.kind,
      rate: opts.rate,
      attempted: load.attempted,
      achievedRate: Math.round(load.attempted / (load.elapsedMs / 1000)),
      recorded,
      alerts,
      kernelDrops: s?.source?.kernelDropsTotal ?? 0,
      queueDrops: s?.queue.droppedTotal ?? 0,
      shed: s?.watchdog?.shedTotal ?? 0,
      drainMs: Math.max(0, drainMs),
      keptUp: recorded >= load.attempted && drainMs <= KEPT_UP_MS,
      othersCpuPct: Math.max(0, (100 * (busyMs - mine)) / (loadEnd - t0)),
      loadavg,
      cpuMsPerConn: Math.max(0, cpu1 - cpu0 - idleMs) / Math.max(1, recorded),
      loadCpuPct: (100 * (cpuLoad - cpu0)) / Math.max(1, loadEnd - t0),
      daemonCpuPct: (100 * (daemonLoad - daemon0)) / Math.max(1, loadEnd - t0),
      daemonSysCpuPct: (100 * (daemonSysLoad - daemonSys0)) / Math.max(1, loadEnd - t0),
      helperCpuPct: (100 * (helperLoad - helper0)) / Math.max(1, loadEnd - t0),
      latency:
        lat.length === 0 ? null : { p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1] as number, n: lat.length },
      rssMiB: mem.rss,
      hwmMiB: mem.hwm,
      helperRssMiB: helperMem.rss,
      scoredAll: s?.score.connectionsTotal ?? 0,
      repeats: s?.enrich.repeatsTotal ?? 0,
      enriched: s?.enrich.enrichedTotal ?? 0,
      startToWatchingMs: d.startToWatchingMs,
      warnings: d.warnings(),
    };
  } finally {
    await d.stop();
    rmSync(opts.dir, { recursive: true, force: true });
  }
}

function printStep(r: StepResult): void {
  const lat = r.latency === null ? '' : `  latency p50/p99/max ${r.latency.p50}/${r.latency.p99}/${r.latency.max} ms`;
  console.log(
    `  ${r.kind.padEnd(8)} ${String(r.rate).padStart(5)}/s (got ${String(r.achievedRate).padStart(5)}/s): ` +
      `${r.attempted} made, ${r.recorded} scored, ${r.alerts} alerts, lost ${r.attempted - r.recorded} (kernel ${r.kernelDrops}, queue ${r.queueDrops}); watchdog shed ${r.shed} items; ` +
      `drained ${(r.drainMs / 1000).toFixed(1)} s after the load${r.keptUp ? ' (kept up)' : ' (fell behind)'}; ` +
      `CPU ${r.loadCpuPct.toFixed(0)}% during load (daemon ${r.daemonCpuPct.toFixed(0)}% of which ${r.daemonSysCpuPct.toFixed(0)}% in the kernel, helper ${r.helperCpuPct.toFixed(0)}%) = ${(r.cpuMsPerConn * 100).toFixed(0)}% of a core per 1,000/s${lat}; ` +
      `RSS ${r.rssMiB.toFixed(0)} MiB (peak ${r.hwmMiB.toFixed(0)}), helper ${r.helperRssMiB.toFixed(0)} MiB; ` +
      `enriched ${r.enriched} (${r.repeats} repeats answered without /proc), ${Math.max(0, r.scoredAll - r.recorded)} connections of other processes scored; started in ${r.startToWatchingMs} ms; ` +
      `machine: load avg ${r.loadavg}, other processes ${r.othersCpuPct.toFixed(0)}% CPU`,
  );
  const w = [...new Set(r.warnings)];
  if (w.length > 0)
    console.log(`           daemon warnings: ${w.slice(0, 3).join(' | ')}${w.length > 3 ? ` (+${w.length - 3} more)` : ''}`);
}

const KINDS: readonly Kind[] = ['alerting', 'mix', 'loopback'];

/**
 * Rates per kind; RARECON_BENCH_DAEMON_STEPS narrows them, e.g. "alerting:1000,mix:1000"
 * (a kind named with no rate, e.g. "mix", runs its default rates).
 */
function stepPlan(): Record<Kind, number[]> {
  const all: Record<Kind, number[]> = {
    alerting: [500, 1000, 1500, 2000, 4000, 8000],
    mix: [1000, 2000, 4000, 8000],
    loopback: [1000, 2000, 4000, 8000, 16_000, 20_000],
  };
  const asked = process.env['RARECON_BENCH_DAEMON_STEPS'];
  if (asked === undefined || asked.trim() === '') return all;
  const plan: Record<Kind, number[]> = { alerting: [], mix: [], loopback: [] };
  for (const part of asked.split(',')) {
    const [k, r] = part.trim().split(':');
    if (!KINDS.includes(k as Kind)) throw new Error(`RARECON_BENCH_DAEMON_STEPS: unknown kind "${k}" (known: ${KINDS.join(', ')})`);
    if (r === undefined) plan[k as Kind] = all[k as Kind];
    else if (/^\d+$/.test(r)) plan[k as Kind].push(Number(r));
    else throw new Error(`RARECON_BENCH_DAEMON_STEPS: "${part}" is not kind:rate`);
  }
  return plan;
}

// ---- the benchmark ----------------------------------------------------------------------------

export async function benchDaemon(): Promise<void> {
  console.log('daemon: rarecon run on the real kernel: idle cost, CPU under load, connect-to-alert latency, loss point');
  const cannot = rootReason();
  if (cannot !== null) {
    console.log(`daemon: skipped: ${cannot}`);
    return;
  }
  try {
    await buildNative(); // make in native-events, and the built CLI is there
  } catch (err) {
    console.log(`daemon: skipped: ${(err as Error).message.split('\n')[0] ?? ''}`);
    return;
  }
  ticksPerSecond = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  const work = mkdtempSync(path.join(tmpdir(), 'rarecon-bench-daemon-'));
  let host: TestHost | null = null;
  try {
    const bin = path.join(work, 'connect_ports');
    execFileSync('cc', ['-O2', '-std=gnu11', '-Wall', '-o', bin, path.join(TRIGGER_SRC, 'connect_ports.c')]);
    // The generator is a globally common process; none of its combos is in the baseline.
    const sha = sha256File(bin);
    const baseline = path.join(work, 'baseline.db');
    const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    for (let o = 0; o < 12; o++)
      for (const day of [today - 20 * DAY_MS, today - DAY_MS])
        b.add({ observer: `bench-${o}`, dayMs: day, sha256: sha, rootDomain: null, port: null });
    const w = b.write(baseline, { version: 1, builtAtMs: Date.now() });
    if (!w.ok) throw new Error(w.error);
    host = await TestHost.start({
      tag: 'bnch',
      hostSide: HOST_SIDE,
      addresses: [DNS_IP, TARGET_IP],
      names: { [NAME]: TARGET_IP },
      ports: [], // the generator connects to ports nothing listens on
      dir: work,
    });
    console.log(
      `daemon: ${CLI}, kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, ${(await execFileP('nproc')).stdout.trim()} cores`,
    );

    // 1. Idle (skipped when the steps are narrowed: a quick run to profile or compare one rate).
    const idleDir = path.join(work, 'idle');
    let idleCpuPct = 0;
    // RARECON_BENCH_DAEMON_IDLE=1 measures it in a narrowed run too.
    const narrowed = (process.env['RARECON_BENCH_DAEMON_STEPS'] ?? '').trim() !== '' && process.env['RARECON_BENCH_DAEMON_IDLE'] !== '1';
    if (narrowed) console.log('daemon: idle skipped (RARECON_BENCH_DAEMON_STEPS set); load CPU below is not idle-subtracted');
    const d = narrowed ? null : new Daemon(idleDir, baseline, RECORDING);
    if (d !== null)
      try {
        await d.started();
        await sleep(3000);
        const helper = d.helperPid();
        const tail = new Tail(d.record);
        tail.lines();
        const [c0, h0, t0] = [cpuMs(d.pid), cpuMs(helper), Date.now()];
        await sleep(20_000);
        const [c1, h1, t1] = [cpuMs(d.pid), cpuMs(helper), Date.now()];
        const others = tail.lines().filter((l) => l.startsWith('{"type":"connection"')).length;
        tail.close();
        const dm = memory(d.pid);
        const hm = memory(helper);
        const pct = (a: number, b: number): number => (100 * (b - a)) / (t1 - t0);
        idleCpuPct = pct(c0 + h0, c1 + h1);
        console.log(
          `daemon: idle 20 s (no connections made by the bench; ${others} by other processes on the machine): ` +
            `daemon ${pct(c0, c1).toFixed(2)}% CPU, helper ${pct(h0, h1).toFixed(2)}% CPU; ` +
            `RSS daemon ${dm.rss.toFixed(0)} MiB, helper ${hm.rss.toFixed(1)} MiB (total ${(dm.rss + hm.rss).toFixed(0)} MiB); started (spawn to watching) in ${d.startToWatchingMs} ms`,
        );
      } finally {
        await d.stop();
        rmSync(idleDir, { recursive: true, force: true });
      }

    // 2. Load, at rising rates, a fresh daemon (and state) per step.
    console.log(
      'daemon: load, generator processes (mix: one alerting at 1% of the rate, one loopback), a fresh daemon per step; CPU = daemon + helper, idle subtracted; ' +
        (RECORDING
          ? 'with --record (every connection written as a line); latency = alert line read (5 ms polls) - connect time in the record; '
          : "as shipped (no --record; connections counted from status.json every 250 ms); latency = alert line read (5 ms polls) - the alert's time (its connection's); ") +
        `"kept up" = no loss and drained within ${KEPT_UP_MS / 1000} s`,
    );
    const results: StepResult[] = [];
    const plan = stepPlan();
    for (const kind of KINDS) {
      for (const rate of plan[kind]) {
        const r = await runStep({
          kind,
          rate,
          durationMs: rate <= 1000 ? 10_000 : 5000,
          bin,
          baseline,
          dir: path.join(work, `${kind}-${rate}`),
          host,
          idleCpuPct,
          recording: RECORDING,
        });
        printStep(r);
        results.push(r);
        // Up to the first step that lost connections (the queue of 10,000 hides a backlog for a while).
        if (r.recorded < r.attempted || r.achievedRate < r.rate * 0.8) break;
      }
    }

    for (const kind of KINDS) {
      const rs = results.filter((r) => r.kind === kind);
      if (rs.length === 0) continue;
      const noLoss = rs.filter((r) => r.recorded >= r.attempted).reduce((m, r) => Math.max(m, r.achievedRate), 0);
      const keptUp = rs.filter((r) => r.keptUp).reduce((m, r) => Math.max(m, r.achievedRate), 0);
      const firstLoss = rs.find((r) => r.recorded < r.attempted);
      const firstBehind = rs.find((r) => !r.keptUp);
      console.log(
        `daemon: ${kind}: kept up (no loss, no backlog) up to ${keptUp}/s` +
          (firstBehind ? `, fell behind from ${firstBehind.rate}/s` : '') +
          `; no loss in a step up to ${noLoss}/s; ` +
          (firstLoss
            ? `loss starts at ${firstLoss.rate}/s (${firstLoss.attempted - firstLoss.recorded} of ${firstLoss.attempted}: kernel ${firstLoss.kernelDrops}, queue full ${firstLoss.queueDrops})`
            : 'no loss at any rate tried'),
      );
    }
    const at1000 = results.find((r) => r.kind === 'alerting' && r.rate === 1000);
    if (at1000?.latency) {
      console.log(
        `daemon: connect-to-alert latency at 1,000 new alerting connections/s: p50 ${at1000.latency.p50} ms, p99 ${at1000.latency.p99} ms ` +
          `(max ${at1000.latency.max} ms, ${at1000.latency.n} alerts${at1000.keptUp ? '' : '; the daemon fell behind, so this includes queueing'}); ` +
          `CPU ${(at1000.cpuMsPerConn * 100).toFixed(0)}% of a core per 1,000 alerting connections/s`,
      );
    }
    const bestKept = results.filter((r) => r.kind === 'alerting' && r.keptUp && r.latency !== null).pop();
    if (bestKept?.latency && bestKept !== at1000) {
      console.log(
        `daemon: connect-to-alert latency at ${bestKept.rate} alerting connections/s (kept up): p50 ${bestKept.latency.p50} ms, p99 ${bestKept.latency.p99} ms (max ${bestKept.latency.max} ms)`,
      );
    }
    const mix1000 = results.find((r) => r.kind === 'mix' && r.rate === 1000);
    if (mix1000)
      console.log(
        `daemon: realistic mix at 1,000 connections/s (${MIX_ALERTING * 100}% alerting): CPU ${(mix1000.cpuMsPerConn * 100).toFixed(0)}% of a core per 1,000/s, ` +
          `lost ${mix1000.attempted - mix1000.recorded}` +
          (mix1000.latency
            ? `, connect-to-alert p50 ${mix1000.latency.p50} ms, p99 ${mix1000.latency.p99} ms (max ${mix1000.latency.max} ms, ${mix1000.latency.n} alerts)`
            : ''),
      );
    const starts = results.map((r) => r.startToWatchingMs).sort((a, b) => a - b);
    if (starts.length > 0)
      console.log(
        `daemon: start to watching (spawn to the "rarecon is watching" line, eBPF helper attached), ${starts.length} starts: ` +
          `median ${percentile(starts, 50)} ms, max ${starts[starts.length - 1]} ms`,
      );
    const lo1000 = results.find((r) => r.kind === 'loopback' && r.rate === 1000);
    if (lo1000)
      console.log(`daemon: CPU per 1,000 non-alerting (loopback) connections/s: ${(lo1000.cpuMsPerConn * 100).toFixed(0)}% of a core`);
  } finally {
    host?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
