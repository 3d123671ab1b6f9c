// The connection enricher on repeats: a (process instance, code path) already
// judged costs no /proc read and no hashing; what belongs to the process
// instance (image, signer, libraries, tracer) is decided once; a reused pid is
// another instance. /proc reads are counted by wrapping node:fs and
// node:fs/promises; the process is a real one (a sleep child).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { ConnectionEnricher } from '../../src/enrich/connection-enricher.js';
import type { LiveConnect } from '../../src/sources/source.js';

// Hoisted with the mocks: every read of a /proc path through the wrapped fs functions is counted.
const procReads = vi.hoisted(() => {
  const reads = {
    count: 0,
    paths: [] as string[],
    counted: <F extends (...a: never[]) => unknown>(f: F): F =>
      ((...args: Parameters<F>) => {
        const p = args[0] as unknown;
        if (typeof p === 'string' && p.startsWith('/proc/')) {
          reads.count++;
          reads.paths.push(p);
        }
        return f(...args);
      }) as F,
  };
  return reads;
});

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const counted = procReads.counted;
  return { ...real, default: real, open: counted(real.open), openSync: counted(real.openSync), readFileSync: counted(real.readFileSync) };
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const counted = procReads.counted;
  const names = ['open', 'readFile', 'readlink', 'stat', 'lstat', 'readdir', 'access'] as const;
  const out: Record<string, unknown> = { ...real };
  for (const n of names) out[n] = counted(real[n] as (...a: never[]) => unknown);
  return { ...out, default: out };
});

let child: ChildProcess;
let pid = 0;

beforeAll(async () => {
  child = spawn('/bin/sleep', ['60'], { stdio: 'ignore' });
  pid = child.pid ?? 0;
  // Until the child runs sleep, not the fork of this process.
  for (let i = 0; i < 500; i++) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep') break;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
});

afterAll(() => {
  child.kill('SIGKILL');
});

let base: LiveConnect;
let maps0: string[] = [];

/** A connect record of the child as the eBPF source gives it (start time and image identity included). */
function connect(over: Partial<LiveConnect> = {}): LiveConnect {
  return { ...base, timeMs: Date.now(), ...over };
}

beforeAll(() => {
  const st = statSync(`/proc/${pid}/exe`, { bigint: true });
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const startTicks = BigInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0');
  maps0 = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  base = {
    kind: 'connect',
    timeMs: 0,
    pid,
    tid: pid,
    uid: 0,
    protocol: 'tcp',
    localIp: '127.0.0.1',
    localPort: 40_000,
    remoteIp: '127.0.0.1',
    remotePort: 9,
    stack: [],
    stackScan: [],
    processStartBootNs: startTicks * 10_000_000n,
    exe: { dev: Number(st.dev), ino: st.ino },
  };
});

function enricher(now?: () => number): ConnectionEnricher {
  return new ConnectionEnricher(DEFAULT_CONFIG.enrich, { org: 'test', id: 'h1' }, now);
}

describe('connection enricher: repeats', () => {
  it('judges a process instance once: its repeats read nothing from /proc and hash nothing', async () => {
    const e = enricher();
    const first = await e.enrich(connect());
    expect(first.process.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(first.process.path).toBe('/usr/bin/sleep');
    const hashed = e.stats().hash.hashedFilesTotal;
    procReads.count = 0;
    procReads.paths = [];
    const later: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await e.enrich(connect({ remotePort: 1000 + (i % 5), timeMs: Date.now() }));
      later.push(r.process.sha256 ?? '');
    }
    expect(procReads.paths).toEqual([]);
    expect(e.stats().hash.hashedFilesTotal).toBe(hashed);
    expect(new Set(later)).toEqual(new Set([first.process.sha256]));
    // The tracer was read once for the instance's thread, not per connection.
    expect(e.stats().tracerChecksTotal).toBe(1);
  });

  it('answers a repeat at once (enrichRepeat) with the same event, and nothing before the instance is judged', async () => {
    const e = enricher();
    expect(e.enrichRepeat(connect())).toBeNull();
    const first = await e.enrich(connect());
    procReads.count = 0;
    const again = e.enrichRepeat(connect({ remotePort: 4242 }));
    expect(procReads.count).toBe(0);
    expect(again).not.toBeNull();
    expect(again?.process).toEqual({ ...first.process });
    expect(again?.remote.port).toBe(4242);
    expect(e.stats().repeatsTotal).toBe(1);
  });

  it('reads the tracer again after a second, and a reused pid (another start time) is judged afresh', async () => {
    let t = 1_000_000;
    const e = enricher(() => t);
    await e.enrich(connect());
    expect(e.enrichRepeat(connect())).not.toBeNull();
    t += 1_500;
    // The tracer verdict is stale: not a repeat until it is read again.
    expect(e.enrichRepeat(connect())).toBeNull();
    procReads.paths = [];
    await e.enrich(connect());
    expect(procReads.paths).toEqual([`/proc/${pid}/status`]);
    expect(e.stats().tracerChecksTotal).toBe(2);
    expect(e.enrichRepeat(connect())).not.toBeNull();
    // Same pid, another process start: another instance, read again.
    const other = connect({ processStartBootNs: 1n });
    expect(e.enrichRepeat(other)).toBeNull();
    procReads.count = 0;
    await e.enrich(other);
    expect(procReads.count).toBeGreaterThan(0);
  });

  it('inspects a new code path of a judged instance (its stack is not a repeat)', async () => {
    const e = enricher();
    await e.enrich(connect());
    const maps = maps0;
    const code = maps.find((l) => l.split(' ')[1]?.includes('x') && l.includes('/usr/bin/sleep'));
    const start = BigInt(`0x${(code ?? '').split('-')[0] ?? '0'}`);
    expect(start).toBeGreaterThan(0n);
    expect(e.enrichRepeat(connect({ stack: [start + 16n] }))).toBeNull();
    await e.enrich(connect({ stack: [start + 16n] }));
    expect(e.enrichRepeat(connect({ stack: [start + 16n] }))).not.toBeNull();
  });
});
