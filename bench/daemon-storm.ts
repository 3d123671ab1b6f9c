// Benchmark: an alert storm against the live daemon as shipped (`rarecon run`,
// the eBPF helper, the default config with its safety valve of 5,000 alerts a
// host in 24 h and its watchdog budgets) on the real kernel. One process (the
// C generator test/e2e/triggers/connect_ports.c) opens 10,000 new TCP
// connections a second for 10 s to a test host in a network namespace whose
// name the daemon saw resolved by a real DNS server (dnsmasq), one port per
// connection: each is a new (root domain, port) combination of a globally
// common binary, so each would raise its own alert (a DGA or a scanner).
// Prints: resident memory peak (daemon and helper, sampled every 50 ms, and
// the daemon's own high-water mark), detection alerts raised before the valve
// and health alerts (both as the stdout sink delivered them, through the
// outbox), connections counted while paused, connections lost, and how long
// the daemon kept watching (it must not exit); then a probe connection after
// the storm shows capture goes on.
// Tunable: RARECON_BENCH_STORM="RATE:SECONDS" (default 10000:10).
// Prints figures; never fails on a time. Needs root. Traffic goes only to the
// test host (198.51.100.208/28).

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { BaselineBuilder } from '../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import type { DaemonStatus } from '../src/daemon/status.js';
import { DAY_MS } from '../src/model/baseline.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';
import { CLI, REPO } from '../test/support/cli.js';
import { TRIGGER_SRC, buildNative, childPids, rootReason, sha256File, sleep } from '../test/support/env.js';
import { TestHost } from '../test/support/testhost.js';

const execFileP = promisify(execFile);

// The storm's test host: its own /28, apart from the e2e tests' and bench/daemon.ts's (198.51.100.144/28).
const HOST_SIDE = '198.51.100.209/28';
const DNS_IP = '198.51.100.210';
const TARGET_IP = '198.51.100.211';
const NAME = 'storm.storm-bench.example';
const PORT_BASE = 10_000;
const PORT_COUNT = 55_000;
/** The probe after the storm: a port the storm did not use. */
const PROBE_PORT = 9_000;

/** VmRSS and VmHWM in MiB; null when the process is gone. */
function memory(pid: number | null): { rss: number; hwm: number; anon: number; file: number; shmem: number } | null {
  if (pid === null) return null;
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return {
      rss: kb('VmRSS') / 1024,
      hwm: kb('VmHWM') / 1024,
      anon: kb('RssAnon') / 1024,
      file: kb('RssFile') / 1024,
      shmem: kb('RssShmem') / 1024,
    };
  } catch {
    return null;
  }
}

function plan(): { rate: number; seconds: number } {
  const asked = (process.env['RARECON_BENCH_STORM'] ?? '').trim();
  if (asked === '') return { rate: 10_000, seconds: 10 };
  const m = /^(\d+):(\d+)$/.exec(asked);
  if (m === null) throw new Error(`RARECON_BENCH_STORM: "${asked}" is not RATE:SECONDS`);
  return { rate: Number(m[1]), seconds: Number(m[2]) };
}

/** The daemon with the shipped defaults; what its stdout sink delivers is counted, not kept. */
class StormDaemon {
  readonly child: ChildProcess;
  readonly state: string;
  log = '';
  detections = 0;
  health = 0;
  private partial = '';
  exit: { code: number | null; signal: NodeJS.Signals | null; atMs: number } | null = null;

  constructor(dir: string, baseline: string) {
    mkdirSync(dir, { recursive: true });
    this.state = path.join(dir, 'state');
    const config = path.join(dir, 'config.yaml');
    // Shipped defaults (the stdout sink, the valve, the watchdog) but a status file every 500 ms to follow the storm,
    // and metrics on any free port (another daemon may hold the default).
    writeFileSync(config, 'statusIntervalMs: 500\nmetrics:\n  port: 0\n');
    const args = [CLI, 'run', '--config', config, '--baseline', baseline, '--state', this.state, '--activation-days', '0'];
    const nodeArgs = (process.env['RARECON_BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
    this.child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (b: Buffer) => {
      const lines = (this.partial + b.toString('utf8')).split('\n');
      this.partial = lines.pop() ?? '';
      for (const l of lines) {
        if (l.includes('"types":["health"]')) this.health++;
        else if (l.startsWith('{')) this.detections++;
      }
    });
    this.child.stderr?.on('data', (b: Buffer) => {
      if (this.log.length < 4 << 20) this.log += b.toString('utf8');
    });
    this.child.on('close', (code, signal) => (this.exit = { code, signal, atMs: Date.now() }));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async started(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!this.log.includes('rarecon is watching outbound connections.')) {
      if (this.exit !== null || Date.now() > deadline) throw new Error(`rarecon run did not start:\n${this.log.slice(-2000)}`);
      await sleep(50);
    }
  }

  status(): DaemonStatus | null {
    try {
      return JSON.parse(readFileSync(path.join(this.state, 'status.json'), 'utf8')) as DaemonStatus;
    } catch {
      return null;
    }
  }

  /** Distinct warning and error messages of its log. */
  problems(): string[] {
    const out = new Set<string>();
    for (const l of this.log.split('\n')) {
      if (!/"level":"(warn|error)"/.test(l)) continue;
      try {
        out.add((JSON.parse(l) as { message: string }).message);
      } catch {
        out.add(l.slice(0, 200));
      }
    }
    return [...out];
  }

  async stop(): Promise<void> {
    if (this.exit !== null) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await done;
    clearTimeout(t);
  }
}

function generate(
  bin: string,
  rate: number,
  durationMs: number,
  port: number,
  ports: number,
): Promise<{ attempted: number; elapsedMs: number; child: ChildProcess }> {
  // stdin stays open: the generator lives on after its load, so its last connections can still be enriched.
  const child = spawn(bin, [String(rate), String(durationMs), TARGET_IP, String(port), String(ports)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /attempted=(\d+) failed=(\d+) elapsed_ms=(\d+)/.exec(out);
      if (m) resolve({ attempted: Number(m[1]), elapsedMs: Number(m[3]), child });
    });
    child.on('error', reject);
    child.on('close', () => reject(new Error(`connect_ports ended early: ${out}`)));
  });
}

/** Connections the daemon has accounted for: scored (paused ones included) or counted by the valve without scoring. */
function accounted(s: DaemonStatus | null): number {
  if (s === null) return 0;
  return s.score.connectionsTotal + (s.counters['valveCountedTotal'] ?? 0);
}

function shedConnections(s: DaemonStatus | null): number {
  const by = s?.watchdog?.shedByReason as Record<string, number> | undefined;
  if (by === undefined) return 0;
  return (by['connection_not_common'] ?? 0) + (by['connection_sampled'] ?? 0) + (by['connection_oldest'] ?? 0);
}

export async function benchDaemonStorm(): Promise<void> {
  const { rate, seconds } = plan();
  console.log(
    `daemon-storm: ${rate.toLocaleString('en-US')} new alerting connections/s for ${seconds} s from one process, shipped defaults (valve 5,000 alerts/host/24 h)`,
  );
  const cannot = rootReason();
  if (cannot !== null) {
    console.log(`daemon-storm: skipped: ${cannot}`);
    return;
  }
  try {
    await buildNative();
  } catch (err) {
    console.log(`daemon-storm: skipped: ${(err as Error).message.split('\n')[0] ?? ''}`);
    return;
  }
  const work = mkdtempSync(path.join(tmpdir(), 'rarecon-bench-storm-'));
  let host: TestHost | null = null;
  let d: StormDaemon | null = null;
  const gens: ChildProcess[] = [];
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
      tag: 'r18s',
      hostSide: HOST_SIDE,
      addresses: [DNS_IP, TARGET_IP],
      names: { [NAME]: TARGET_IP },
      ports: [],
      dir: work,
    });
    console.log(
      `daemon-storm: ${CLI}, kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, ${(await execFileP('nproc')).stdout.trim()} cores, load avg ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
    );

    d = new StormDaemon(path.join(work, 'daemon'), baseline);
    await d.started();
    const daemon = d;
    if (!host.resolve(NAME)) throw new Error('the storm name did not resolve');
    await sleep(1500);
    const before = d.status();
    const helper = childPids(d.pid, 'rarecon-events')[0] ?? null;

    // Memory and liveness, every 50 ms, from the storm's start until the daemon is stopped.
    let peakTotal = 0;
    let peakDaemon = 0;
    let hwm = 0;
    let lastFreshMs = Date.now();
    let lastUpdated = before?.updatedMs ?? 0;
    const idleMiB = memory(d.pid)?.rss ?? 0;
    const timeline: Array<{ atMs: number; rssMiB: number; anonMiB: number; fileMiB: number; s: DaemonStatus; delivered: number }> = [];
    const sampler = setInterval(() => {
      const m = memory(daemon.exit === null ? daemon.pid : null);
      if (m === null) return;
      const h = memory(helper);
      peakDaemon = Math.max(peakDaemon, m.rss);
      peakTotal = Math.max(peakTotal, m.rss + (h?.rss ?? 0));
      hwm = Math.max(hwm, m.hwm);
      const s = daemon.status();
      if (s !== null && s.updatedMs !== lastUpdated) {
        lastUpdated = s.updatedMs;
        lastFreshMs = Date.now();
        timeline.push({ atMs: Date.now(), rssMiB: m.rss, anonMiB: m.anon, fileMiB: m.file + m.shmem, s, delivered: daemon.detections });
      }
    }, 50);

    const t0 = Date.now();
    const load = await generate(bin, rate, seconds * 1000, PORT_BASE, PORT_COUNT);
    gens.push(load.child);
    const loadEnd = Date.now();
    // Drain: until the daemon has accounted for every connection made, or nothing moves for 5 s (or it is gone).
    let last = -1;
    let lastMove = Date.now();
    for (;;) {
      const got = accounted(d.status()) - accounted(before);
      if (got >= load.attempted || d.exit !== null || Date.now() - lastMove > 5000 || Date.now() - loadEnd > 120_000) break;
      if (got !== last) {
        last = got;
        lastMove = Date.now();
      }
      await sleep(100);
    }
    const drainMs = Date.now() - loadEnd;
    // The probe: after the storm, five more connections of another process; counted only if capture goes on.
    const afterStorm = d.status();
    let probe = 'not run: the daemon had exited';
    if (d.exit === null) {
      const p = await generate(bin, 50, 100, PROBE_PORT, 1);
      gens.push(p.child);
      const deadline = Date.now() + 15_000;
      let seen = 0;
      while (Date.now() < deadline && d.exit === null) {
        seen = accounted(d.status()) - accounted(afterStorm);
        if (seen >= p.attempted) break;
        await sleep(100);
      }
      probe =
        seen >= p.attempted
          ? `${p.attempted} of ${p.attempted} probe connections counted`
          : `only ${seen} of ${p.attempted} probe connections counted`;
    }
    await sleep(1000); // the sink's last batch
    clearInterval(sampler);
    const alive = d.exit === null;
    const end = Date.now();
    const watchedMs = (alive ? end : Math.min(lastFreshMs, d.exit?.atMs ?? end)) - t0;
    await d.stop();
    const s = d.status();
    const counted = s?.counters['valveCountedTotal'] ?? 0;
    const paused = (s?.score.pausedTotal ?? 0) + counted;
    const seen = accounted(afterStorm) - accounted(before);
    const detections = s === null ? 0 : Object.values(s.score.alertsByName).reduce((a, x) => a + x, 0);
    const src = s?.source;
    console.log(
      `daemon-storm: made ${load.attempted.toLocaleString('en-US')} connections in ${(load.elapsedMs / 1000).toFixed(1)} s (${Math.round(load.attempted / (load.elapsedMs / 1000)).toLocaleString('en-US')}/s); ` +
        `daemon ${alive ? 'still running' : `EXITED (code ${d.exit?.code ?? 'none'}, signal ${d.exit?.signal ?? 'none'}) ${(((d.exit?.atMs ?? end) - t0) / 1000).toFixed(1)} s after the storm began`}`,
    );
    console.log(
      `daemon-storm: RSS peak daemon ${peakDaemon.toFixed(0)} MiB (high-water mark ${hwm.toFixed(0)} MiB), daemon + helper ${peakTotal.toFixed(0)} MiB (watchdog.memoryBytes 200 MiB, hard limit 280 MiB)`,
    );
    console.log(
      `daemon-storm: alerts raised before the valve: ${detections.toLocaleString('en-US')} (delivered by the stdout sink: ${d.detections.toLocaleString('en-US')}); ` +
        `health alerts: ${s?.score.healthAlertsTotal ?? 0} (delivered: ${d.health})`,
    );
    console.log(
      `daemon-storm: of ${load.attempted.toLocaleString('en-US')} made: ${seen.toLocaleString('en-US')} scored or counted (${paused.toLocaleString('en-US')} counted while paused${counted > 0 ? `, ${counted.toLocaleString('en-US')} of them without enrichment` : ''}); ` +
        `not scored ${Math.max(0, load.attempted - seen).toLocaleString('en-US')}: shed by value and counted ${((s?.queue.droppedTotal ?? 0) + shedConnections(s)).toLocaleString('en-US')} (queue full ${s?.queue.droppedTotal ?? 0}, watchdog ${shedConnections(s)}), ` +
        `lost unseen ${Math.max(0, load.attempted - seen - (s?.queue.droppedTotal ?? 0) - shedConnections(s)).toLocaleString('en-US')} (kernel ring buffer ${src?.kernelDropsTotal ?? 0}); ` +
        `drained ${(drainMs / 1000).toFixed(1)} s after the storm`,
    );
    console.log(
      `daemon-storm: kept watching ${(watchedMs / 1000).toFixed(1)} s of ${((end - t0) / 1000).toFixed(1)} s (storm, drain and probe); after the storm: ${probe}; ` +
        `watchdog level at the end ${s?.watchdog?.level ?? '?'}, shed ${s?.watchdog?.shedTotal ?? 0} items ${JSON.stringify(Object.fromEntries(Object.entries(s?.watchdog?.shedByReason ?? {}).filter(([, v]) => v > 0)))}`,
    );
    console.log(
      `daemon-storm: before the storm the daemon was ${idleMiB.toFixed(0)} MiB resident; as its status file told it (MiB; queue, helper's received and kernel drops in records):`,
    );
    console.log(
      'daemon-storm:   t s   RSS (anon+file)  heap used/total  external  queue  in flight  scored  counted  alerts  received  kernel drops  outbox rows  delivered',
    );
    for (const r of timeline) {
      const mem = r.s.memory;
      const mib = (b: number | undefined): string => ((b ?? 0) / 2 ** 20).toFixed(0);
      console.log(
        `daemon-storm: ${((r.atMs - t0) / 1000).toFixed(1).padStart(5)} ${r.rssMiB.toFixed(0).padStart(5)} ${`(${r.anonMiB.toFixed(0)}+${r.fileMiB.toFixed(0)})`.padStart(11)} ${`${mib(mem?.heapUsedBytes)}/${mib(mem?.heapTotalBytes)}`.padStart(16)} ${mib(mem?.externalBytes).padStart(9)} ` +
          `${String(r.s.queue.size).padStart(6)} ${String(r.s.queue.inFlight).padStart(10)} ${String(r.s.score.connectionsTotal).padStart(7)} ${String(r.s.counters['valveCountedTotal'] ?? 0).padStart(8)} ` +
          `${String(r.s.counters['alertsTotal'] ?? 0).padStart(7)} ${String(r.s.source?.receivedTotal ?? 0).padStart(9)} ${String(r.s.source?.kernelDropsTotal ?? 0).padStart(13)} ${String(r.s.report.outbox.rows).padStart(12)} ${String(r.delivered).padStart(10)}`,
      );
    }
    const problems = d.problems();
    if (problems.length > 0)
      console.log(
        `daemon-storm: daemon warnings and errors: ${problems.slice(0, 6).join(' | ')}${problems.length > 6 ? ` (+${problems.length - 6} more)` : ''}`,
      );
  } finally {
    await d?.stop();
    for (const g of gens) g.stdin?.end();
    host?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
