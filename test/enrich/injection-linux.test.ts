import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { open, readFile, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InjectionInspector,
  endsWithCall,
  frameIndicators,
  mappingKind,
  parseMaps,
  type Mapping,
} from '../../src/enrich/injection-linux.js';

const SLEEP = '/usr/bin/sleep';
const LIBZ = ['/usr/lib/x86_64-linux-gnu/libz.so.1', '/usr/lib/aarch64-linux-gnu/libz.so.1', '/lib/x86_64-linux-gnu/libz.so.1'].find((p) =>
  existsSync(p),
);

let dir: string;
let memfdExec: string | null = null;
const children: ChildProcess[] = [];

async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function run(file: string, args: string[], ready: (pid: number) => Promise<boolean>, env?: NodeJS.ProcessEnv): Promise<number> {
  const child = spawn(file, args, { stdio: 'ignore', env: env ?? process.env });
  children.push(child);
  const pid = child.pid as number;
  await waitFor(`${file} to start`, () => ready(pid));
  return pid;
}
const exeIs = (path: string) => async (pid: number) => (await readlink(`/proc/${pid}/exe`)) === path;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-inject-'));
  try {
    memfdExec = join(dir, 'memfd_exec');
    execFileSync('cc', ['-O2', '-o', memfdExec, join(import.meta.dirname, '../e2e/triggers/memfd_exec.c')]);
  } catch (err) {
    console.warn(`memfd trigger not built, memfd tests skipped: ${(err as Error).message}`);
    memfdExec = null;
  }
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('InjectionInspector.inspect on real processes', () => {
  it('finds nothing in a plain /usr/bin/sleep', async () => {
    const pid = await run(SLEEP, ['30'], exeIs(SLEEP));
    expect(await new InjectionInspector().inspect(pid, pid)).toEqual({ injection: { injected: false, indicators: [] }, error: null });
  });

  it('flags a memfd-executed binary, and a stack frame inside its memfd mapping', async (ctx) => {
    if (memfdExec === null) return ctx.skip();
    const pid = await run(memfdExec, [SLEEP, '30'], async (p) => (await readlink(`/proc/${p}/exe`)).startsWith('/memfd:'));
    const maps = parseMaps(await readFile(`/proc/${pid}/maps`, 'latin1'));
    const code = maps.find((m) => m.path.startsWith('/memfd:') && m.perms.includes('x')) as Mapping;
    const r = await new InjectionInspector().inspect(pid, pid, [code.start + 16]);
    expect(r.error).toBeNull();
    expect(r.injection.injected).toBe(true);
    expect(r.injection.indicators).toContain('memfd-exe:/memfd:rarecon-trigger');
    expect(r.injection.indicators).toContain(`memfd-exec-frame:0x${(code.start + 16).toString(16)} /memfd:rarecon-trigger (deleted)`);
  });

  it('flags an executable deleted from disk', async () => {
    const exe = join(dir, 'sleep-gone');
    copyFileSync(SLEEP, exe);
    const pid = await run(exe, ['30'], exeIs(exe));
    unlinkSync(exe);
    const r = await new InjectionInspector().inspect(pid);
    expect(r.injection).toEqual({ injected: true, indicators: [`deleted-exe:${exe}`] });
  });

  it.skipIf(LIBZ === undefined)(
    'flags an LD_PRELOAD library from a world-writable directory, not one from a system directory',
    async () => {
      const drop = join(dir, 'drop');
      mkdirSync(drop);
      chmodSync(drop, 0o1777);
      const lib = join(drop, 'libz.so.1');
      copyFileSync(LIBZ as string, lib);
      const inspector = new InjectionInspector();
      const evil = await run(SLEEP, ['30'], async (p) => (await readFile(`/proc/${p}/maps`, 'latin1')).includes(lib), {
        ...process.env,
        LD_PRELOAD: lib,
      });
      const r = await inspector.inspect(evil);
      expect(r.injection).toEqual({ injected: true, indicators: [`ld-preload-world-writable:${lib}`] });
      expect((await inspector.unusualLibraries(evil)).libraries).toEqual([lib]);

      const fine = await run(SLEEP, ['30'], async (p) => (await readFile(`/proc/${p}/maps`, 'latin1')).includes('libz'), {
        ...process.env,
        LD_PRELOAD: LIBZ,
      });
      expect((await inspector.inspect(fine)).injection.injected).toBe(false);
      expect((await inspector.unusualLibraries(fine)).libraries).toEqual([]);
    },
  );

  it('flags a tracer that is not a known debugger, not strace', async (ctx) => {
    const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
    if (strace === undefined) return ctx.skip();
    const inspector = new InjectionInspector();
    const traced = async (pid: number) => /^TracerPid:\s*[1-9]/m.test(readFileSync(`/proc/${pid}/status`, 'latin1'));

    const a = await run(SLEEP, ['30'], exeIs(SLEEP));
    const disguised = join(dir, 'helper'); // the same tracer under a name no debugger has
    copyFileSync(strace, disguised);
    chmodSync(disguised, 0o755);
    const tracer = spawn(disguised, ['-o', '/dev/null', '-p', String(a)], { stdio: 'ignore' });
    children.push(tracer);
    await waitFor('the tracer to attach', () => traced(a));
    const tracerPid = tracer.pid as number;
    expect((await inspector.inspect(a, a)).injection).toEqual({ injected: true, indicators: [`ptrace:helper[${tracerPid}]`] });

    const b = await run(SLEEP, ['30'], exeIs(SLEEP));
    const realTracer = spawn(strace, ['-o', '/dev/null', '-p', String(b)], { stdio: 'ignore' });
    children.push(realTracer);
    await waitFor('strace to attach', () => traced(b));
    expect((await inspector.inspect(b, b)).injection.injected).toBe(false);
  });

  it('reports a process that is gone', async () => {
    const child = spawn(SLEEP, ['0']);
    await new Promise((r) => child.on('exit', r));
    const r = await new InjectionInspector().inspect(child.pid as number);
    expect(r).toEqual({ injection: { injected: false, indicators: [] }, error: 'no-such-process' });
  });
});

describe('stack frames (explicit ips, as the eBPF helper gives them)', () => {
  // node's JIT code lives in anonymous executable memory: a real process with all three kinds of mapping.
  let pid: number;
  let maps: Mapping[];
  let anon: Mapping;
  let libc: Mapping;
  let image: Mapping;

  beforeAll(async () => {
    const exe = await readlink('/proc/self/exe');
    const pick = (ms: Mapping[]) => ({
      anon: ms.find((m) => m.path === '' && m.perms.includes('x')),
      libc: ms.find((m) => /\/libc\.so/.test(m.path) && m.perms.includes('x')),
      image: ms.find((m) => m.path === exe && m.perms.includes('x')),
    });
    const complete = (ms: Mapping[]) => Object.values(pick(ms)).every((m) => m !== undefined);
    pid = await run(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], async (p) =>
      complete(parseMaps(await readFile(`/proc/${p}/maps`, 'latin1'))),
    );
    maps = parseMaps(await readFile(`/proc/${pid}/maps`, 'latin1'));
    ({ anon, libc, image } = pick(maps) as { anon: Mapping; libc: Mapping; image: Mapping });
    expect(anon && libc && image).toBeTruthy();
  });

  it('flags the first frame past the C library when it is in anonymous executable memory', async () => {
    const r = await new InjectionInspector().inspect(pid, pid, [libc.start + 8, anon.start + 32]);
    expect(r.injection).toEqual({ injected: true, indicators: [`anon-exec-frame:0x${(anon.start + 32).toString(16)}`] });
  });

  it('stops at the first file-backed caller, so JIT frames deeper down are not flagged', async () => {
    const r = await new InjectionInspector().inspect(pid, pid, [libc.start + 8, image.start + 8, anon.start + 32]);
    expect(r.injection.injected).toBe(false);
  });

  it('flags a raw syscall made straight from anonymous memory', () => {
    expect(frameIndicators(maps, [BigInt(anon.start + 4)])).toEqual([`anon-exec-frame:0x${(anon.start + 4).toString(16)}`]);
  });
});

const CONNECT_NR: Record<string, number> = { x64: 42, arm64: 203 };

describe.skipIf(CONNECT_NR[process.arch] === undefined)("stack scan (the eBPF helper's raw stack words)", () => {
  // In a namespace of our own, 203.0.113.0/24 leads nowhere: a connect there
  // blocks in SYN_SENT, so the trigger stays inside libc's connect() while we look.
  const ns = `rarecon-inject-${process.pid}`;
  let trigger: string | null = null;

  beforeAll(() => {
    const steps = [
      ['netns', 'add', ns],
      ['-n', ns, 'link', 'set', 'lo', 'up'],
      ['-n', ns, 'addr', 'add', '203.0.113.1/32', 'dev', 'lo'],
      ['-n', ns, 'route', 'add', '203.0.113.0/24', 'dev', 'lo', 'src', '203.0.113.1'],
    ];
    for (const args of steps) {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) {
        console.warn(`ip ${args.join(' ')} failed (${r.stderr.trim()}): stack scan tests skipped`);
        return;
      }
    }
    try {
      trigger = join(dir, 'anon_connect');
      execFileSync('cc', ['-O2', '-o', trigger, join(import.meta.dirname, '../e2e/triggers/anon_connect.c')]);
    } catch (err) {
      console.warn(`anon_connect trigger not built, stack scan tests skipped: ${(err as Error).message}`);
      trigger = null;
    }
  });

  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', ns]);
  });

  /** Starts the trigger, waits until it blocks in connect(), and reads what the helper would send. */
  async function blockedConnect(
    mode: string,
  ): Promise<{ pid: number; region: { start: number; end: number }; pc: bigint; scan: bigint[] }> {
    const child = spawn('ip', ['netns', 'exec', ns, trigger as string, mode, '203.0.113.9', '80'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const line = await new Promise<string>((resolve) => child.stdout?.once('data', (d: Buffer) => resolve(d.toString())));
    const m = /region=(0x[0-9a-f]+|\(nil\))-(0x[0-9a-f]+|\(nil\))/.exec(line);
    const region = { start: Number(m?.[1] === '(nil)' ? 0 : m?.[1]), end: Number(m?.[2] === '(nil)' ? 0 : m?.[2]) };
    const pid = child.pid as number; // `ip netns exec` execs the trigger in place
    let fields: string[] = [];
    await waitFor('the trigger to block in connect', async () => {
      fields = (await readFile(`/proc/${pid}/syscall`, 'latin1')).trim().split(' ');
      return Number(fields[0]) === CONNECT_NR[process.arch];
    });
    const sp = BigInt(fields[7] as string);
    const pc = BigInt(fields[8] as string);
    const mem = await open(`/proc/${pid}/mem`, 'r');
    const words = Buffer.alloc(20 * 8);
    await mem.read(words, 0, words.length, Number(sp)); // a bigint position fails with EIO on Node 20
    await mem.close();
    const scan = Array.from({ length: 20 }, (_, i) => words.readBigUInt64LE(i * 8));
    return { pid, region, pc, scan };
  }

  it('finds the return address into an anonymous stub that called libc connect()', async (ctx) => {
    if (trigger === null) return ctx.skip();
    const { pid, region, pc, scan } = await blockedConnect('anon-libc');
    const inspector = new InjectionInspector();
    // Frame-pointer unwinding gives the libc frame only: not enough on its own.
    expect((await inspector.inspect(pid, pid, [pc])).injection.injected).toBe(false);
    const r = await inspector.inspect(pid, pid, [pc], { stackScan: scan });
    expect(r.error).toBeNull();
    expect(r.injection.injected).toBe(true);
    const hit = /^anon-exec-return:(0x[0-9a-f]+)$/.exec(r.injection.indicators[0] ?? '');
    expect(Number(hit?.[1])).toBeGreaterThanOrEqual(region.start);
    expect(Number(hit?.[1])).toBeLessThan(region.end);
    // A word pointing into the stub but not after a call is data, not a frame.
    expect((await inspector.inspect(pid, pid, [pc], { stackScan: [BigInt(region.start + 20)] })).injection.injected).toBe(false);
  });

  it('finds nothing for the same connect() made from ordinary code', async (ctx) => {
    if (trigger === null) return ctx.skip();
    const { pid, pc, scan } = await blockedConnect('normal');
    expect((await new InjectionInspector().inspect(pid, pid, [pc], { stackScan: scan })).injection).toEqual({
      injected: false,
      indicators: [],
    });
  });

  it('answers repeat scans of ordinary code from its call checks, without opening /proc/<pid>/mem again', async (ctx) => {
    if (trigger === null) return ctx.skip();
    const { pid, pc, scan } = await blockedConnect('normal');
    const inspector = new InjectionInspector();
    const clean = { injection: { injected: false, indicators: [] }, error: null };
    expect(await inspector.inspect(pid, pid, [pc], { stackScan: scan })).toEqual(clean);
    const opens = inspector.stats().memOpensTotal;
    expect(opens).toBe(1);
    for (let i = 0; i < 5; i++) expect(await inspector.inspect(pid, pid, [pc], { stackScan: scan })).toEqual(clean);
    expect(inspector.stats().memOpensTotal).toBe(opens);
  });

  it('reads an anonymous stub again on every scan: its code may change', async (ctx) => {
    if (trigger === null) return ctx.skip();
    const { pid, pc, scan } = await blockedConnect('anon-libc');
    const inspector = new InjectionInspector();
    for (let i = 1; i <= 3; i++) {
      const r = await inspector.inspect(pid, pid, [pc], { stackScan: scan, processKey: `${pid}:test` });
      expect(r.injection.injected).toBe(true);
      expect(inspector.stats().memOpensTotal).toBe(i);
    }
  });
});

describe('parseMaps and frameIndicators', () => {
  const text = [
    '00400000-00401000 r-xp 00000000 fe:00 12 /usr/bin/prog',
    '7f0000000000-7f0000001000 rwxp 00000000 00:00 0 ',
    '7f0000001000-7f0000002000 r-xp 00000000 00:01 99 /memfd:x (deleted)',
    '7f0000002000-7f0000003000 r-xp 00000000 fe:00 13 /tmp/dir with space/lib.so (deleted)',
    '7f0000003000-7f0000004000 r-xp 00000000 fe:00 14 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0000004000-7f0000005000 rw-p 00000000 00:00 0 ',
    '7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]',
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]',
  ].join('\n');
  const maps = parseMaps(text);

  it('recognises return addresses by the call instruction before them', () => {
    const x64 = (...bytes: number[]) => Uint8Array.from([...Array(8 - bytes.length).fill(0x90), ...bytes]);
    expect(endsWithCall(x64(0xe8, 1, 2, 3, 4), 'x64')).toBe(true); // call rel32
    expect(endsWithCall(x64(0xff, 0xd0), 'x64')).toBe(true); // call rax
    expect(endsWithCall(x64(0x41, 0xff, 0xd3), 'x64')).toBe(true); // call r11
    expect(endsWithCall(x64(0xff, 0x15, 1, 2, 3, 4), 'x64')).toBe(true); // call [rip+disp32]
    expect(endsWithCall(x64(0xff, 0x54, 0x24, 0x08), 'x64')).toBe(true); // call [rsp+8]
    expect(endsWithCall(x64(0xff, 0xe0), 'x64')).toBe(false); // jmp rax
    expect(endsWithCall(x64(0x48, 0x83, 0xc4, 0x08), 'x64')).toBe(false); // add rsp, 8
    const arm = (insn: number) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(insn >>> 0, 4);
      return b;
    };
    expect(endsWithCall(arm(0x94000010), 'arm64')).toBe(true); // bl
    expect(endsWithCall(arm(0xd63f0200), 'arm64')).toBe(true); // blr x16
    expect(endsWithCall(arm(0xd65f03c0), 'arm64')).toBe(false); // ret
  });

  it('parses every line, paths with spaces included', () => {
    expect(maps).toHaveLength(8);
    expect(maps[3]).toMatchObject({ start: 0x7f0000002000, perms: 'r-xp', inode: 13, path: '/tmp/dir with space/lib.so (deleted)' });
    expect(maps.map(mappingKind)).toEqual(['file', 'anon', 'memfd', 'deleted', 'file', 'anon', 'kernel', 'kernel']);
  });

  it('skips the C library and vdso, and judges the first other frame', () => {
    expect(frameIndicators(maps, [0x7ffd00000010, 0x7f0000003010, 0x7f0000002010])).toEqual([
      'deleted-exec-frame:0x7f0000002010 /tmp/dir with space/lib.so (deleted)',
    ]);
    expect(frameIndicators(maps, [0x7f0000003010, 0x400010, 0x7f0000000010])).toEqual([]);
    // A return address in non-executable memory is a broken unwind.
    expect(frameIndicators(maps, [0x7f0000004010])).toEqual([]);
    // An address in no mapping: the maps are stale.
    expect(frameIndicators(maps, [0x500000])).toBeUndefined();
  });
});

describe('InjectionInspector with the source’s process key', () => {
  it('keys the maps on it and needs no /proc/<pid>/stat read', async () => {
    const proc = mkdtempSync(join(tmpdir(), 'rarecon-fakeproc-'));
    try {
      const pid = 4242;
      mkdirSync(join(proc, String(pid)));
      const maps =
        '55d0a0000000-55d0a0001000 r-xp 00000000 08:01 1234 /usr/bin/sleep\n7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n';
      writeFileSync(join(proc, String(pid), 'maps'), maps);
      writeFileSync(join(proc, String(pid), 'status'), 'Name:\tsleep\nTracerPid:\t0\n');
      writeFileSync(join(proc, String(pid), 'environ'), 'PATH=/usr/bin\0');
      symlinkSync(SLEEP, join(proc, String(pid), 'exe'));
      const inspector = new InjectionInspector({ procRoot: proc });
      // Without a key the inspector tells a reused pid by its stat, which this process lacks.
      expect((await inspector.inspect(pid, pid)).error).toBe('no-such-process');
      const r = await inspector.inspect(pid, pid, [0x55d0a0000010], { processKey: `${pid}:1:2:3` });
      expect(r).toEqual({ injection: { injected: false, indicators: [] }, error: null });
      expect(await inspector.unusualLibraries(pid, undefined, `${pid}:1:2:3`)).toEqual({ libraries: [], error: null });
      // One maps read serves both, under the same key.
      expect(inspector.stats().mapsCache).toMatchObject({ entries: 1, hitsTotal: 1 });
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
