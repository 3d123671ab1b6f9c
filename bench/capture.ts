// Benchmark: how many new TCP connections per second the eBPF helper captures
// without loss. A C load generator (test/e2e/triggers/connect_load.c) opens
// connections to a loopback listener at increasing rates; the helper's
// CONNECT records for the generator's pid are counted through the real path
// (kernel ring buffer -> helper -> pipe -> TypeScript decoder) and compared
// with what the generator attempted. Prints figures; never fails on a time.
// Needs root; runs make in native-events (RARECON_NATIVE_DIR overrides where that is).

import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { HelperProcess } from '../src/sources/ebpf/helper-process.js';
import type { RawLoss } from '../src/sources/ebpf/wire.js';
import { NATIVE_DIR } from '../test/support/env.js';

const execFileP = promisify(execFile);

function nativeDir(): string {
  return process.env['RARECON_NATIVE_DIR'] || NATIVE_DIR;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number, ticksPerSecond: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

interface Step {
  /** Per generator, e.g. `5000`, `max`, `max x2`. */
  targetRate: string;
  attempted: number;
  captured: number;
  ringbufDrops: number;
  elapsedMs: number;
  helperCpuPct: number | null;
  nodeCpuPct: number;
}

function runLoad(bin: string, rate: number, durationMs: number): Promise<{ pid: number; attempted: number; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [String(rate), String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const m = /pid=(\d+) .*attempted=(\d+) .*elapsed_ms=(\d+)/.exec(out);
      if (!m) reject(new Error(`connect_load printed: ${out}`));
      else resolve({ pid: Number(m[1]), attempted: Number(m[2]), elapsedMs: Number(m[3]) });
    });
  });
}

interface Pass {
  label: string;
  ringbufKb: number | undefined;
  rates: Array<{ rate: number | 'max'; generators: number }>;
}

async function runPass(dir: string, load: string, ticks: number, pass: Pass): Promise<Step[] | string> {
  const helper = new HelperProcess({
    binaryPath: path.join(dir, 'build/rarecon-events'),
    dns: false,
    statsIntervalMs: 200,
    ...(pass.ringbufKb === undefined ? {} : { ringbufKb: pass.ringbufKb }),
  });
  const probe = await helper.probe();
  if (!probe.ok) return probe.reason;

  const perPid = new Map<number, number>();
  let lastLoss: RawLoss | null = null;
  let helloSeen!: () => void;
  const hello = new Promise<void>((r) => (helloSeen = r));
  const consumer = (async () => {
    for await (const r of helper.records()) {
      if (r.type === 'connect') perPid.set(r.pid, (perPid.get(r.pid) ?? 0) + 1);
      else if (r.type === 'loss') lastLoss = r;
      else if (r.type === 'hello') helloSeen();
    }
  })();
  await hello;
  const waitLoss = async (): Promise<RawLoss | null> => {
    const before = lastLoss;
    const deadline = Date.now() + 2000;
    while (lastLoss === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return lastLoss;
  };

  const durationMs = 2000;
  const steps: Step[] = [];
  try {
    for (const { rate, generators } of pass.rates) {
      const helperPid = helper.stats().helperPid;
      const dropsBefore = (await waitLoss())?.ringbufDrops ?? 0;
      const cpu0 = helperPid ? cpuSeconds(helperPid, ticks) : null;
      const node0 = process.cpuUsage();
      const t0 = Date.now();
      const runs = await Promise.all(Array.from({ length: generators }, () => runLoad(load, rate === 'max' ? 0 : rate, durationMs)));
      // Let the pipeline drain, then read the counters.
      await new Promise((r) => setTimeout(r, 500));
      const loss = await waitLoss();
      const wallS = (Date.now() - t0) / 1000;
      const cpu1 = helperPid ? cpuSeconds(helperPid, ticks) : null;
      const node1 = process.cpuUsage(node0);
      steps.push({
        targetRate: generators > 1 ? `${rate} x${generators}` : String(rate),
        attempted: runs.reduce((n, r) => n + r.attempted, 0),
        captured: runs.reduce((n, r) => n + (perPid.get(r.pid) ?? 0), 0),
        ringbufDrops: (loss?.ringbufDrops ?? 0) - dropsBefore,
        elapsedMs: Math.max(...runs.map((r) => r.elapsedMs)),
        helperCpuPct: cpu0 !== null && cpu1 !== null ? (100 * (cpu1 - cpu0)) / wallS : null,
        nodeCpuPct: (100 * (node1.user + node1.system)) / 1e6 / wallS,
      });
    }
  } finally {
    await helper.shutdown();
    await consumer;
  }
  return steps;
}

function report(label: string, steps: Step[]): void {
  console.log(`capture: ${label}`);
  console.log('  target/s  achieved/s  attempted  captured  ring-drops  helper-cpu  node-cpu');
  for (const s of steps) {
    const achieved = Math.round(s.attempted / (s.elapsedMs / 1000));
    console.log(
      `  ${s.targetRate.padStart(8)}  ${String(achieved).padStart(10)}  ${String(s.attempted).padStart(9)}  ${String(s.captured).padStart(8)}  ${String(s.ringbufDrops).padStart(10)}  ${(s.helperCpuPct === null ? 'n/a' : `${s.helperCpuPct.toFixed(1)}%`).padStart(10)}  ${`${s.nodeCpuPct.toFixed(1)}%`.padStart(8)}`,
    );
  }
  const lossy = steps.find((s) => s.captured < s.attempted || s.ringbufDrops > 0);
  const clean = steps.filter((s) => s.captured >= s.attempted && s.ringbufDrops === 0);
  const best = clean.reduce((m, s) => Math.max(m, s.attempted / (s.elapsedMs / 1000)), 0);
  console.log(`capture: highest rate captured without loss: ${Math.round(best)} connections/s`);
  console.log(
    lossy
      ? `capture: first loss at ${lossy.targetRate}/s: ${lossy.attempted - lossy.captured} of ${lossy.attempted} missed, ${lossy.ringbufDrops} ring buffer drops counted`
      : 'capture: no loss at any rate tried (the load generator, not the helper, was the limit)',
  );
}

export async function benchCapture(): Promise<void> {
  const dir = nativeDir();
  console.log('capture: eBPF helper, new TCP connections per second captured without loss');
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    console.log('capture: skipped: needs Linux and root');
    return;
  }
  try {
    await execFileP('make', ['-C', dir, 'all', 'build/triggers/connect_load'], { maxBuffer: 16 << 20 });
  } catch (err) {
    console.log(`capture: skipped: make -C native-events failed: ${(err as Error).message.split('\n')[0] ?? ''}`);
    return;
  }
  const ticks = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  const load = path.join(dir, 'build/triggers/connect_load');

  const passes: Pass[] = [
    {
      label: 'default ring buffer (4 MiB), helper -> pipe -> TypeScript decoder',
      ringbufKb: undefined,
      rates: [
        { rate: 1000, generators: 1 },
        { rate: 5000, generators: 1 },
        { rate: 10_000, generators: 1 },
        { rate: 'max', generators: 1 },
        { rate: 'max', generators: 2 },
      ],
    },
    {
      // A ring buffer of ~120 records: shows where loss starts and that it is counted.
      label: 'small ring buffer (64 KiB), to find the loss point and check the loss counters',
      ringbufKb: 64,
      rates: [
        { rate: 5000, generators: 1 },
        { rate: 'max', generators: 1 },
        { rate: 'max', generators: 2 },
      ],
    },
  ];
  for (const pass of passes) {
    const steps = await runPass(dir, load, ticks, pass);
    if (typeof steps === 'string') {
      console.log(`capture: skipped: ${steps}`);
      return;
    }
    report(pass.label, steps);
  }
}
