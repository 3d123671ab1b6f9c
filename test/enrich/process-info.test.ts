import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessInfoReader } from '../../src/enrich/process-info.js';
import { deadline, formatCmdline, parseStat, procErrorCode, readSmallProcSync } from '../../src/common/proc.js';

const SLEEP = '/usr/bin/sleep';
let dir: string;
const children: ChildProcess[] = [];

async function run(args: string[], opts: { uid?: number; argv0?: string } = {}): Promise<{ pid: number; spawnedAtMs: number }> {
  const spawnedAtMs = Date.now();
  const child = spawn(SLEEP, args, { stdio: 'ignore', ...opts });
  children.push(child);
  const pid = child.pid as number;
  for (let i = 0; i < 200 && (await readlink(`/proc/${pid}/exe`).catch(() => '')) !== SLEEP; i++)
    await new Promise((r) => setTimeout(r, 10));
  return { pid, spawnedAtMs };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-procinfo-'));
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('ProcessInfoReader', () => {
  it('reads command line, user, parent, start time and image path of a real process', async () => {
    const { pid, spawnedAtMs } = await run(['30'], { argv0: 'my sleep' });
    const r = await new ProcessInfoReader().read(pid);
    if ('error' in r) throw new Error(r.error);
    expect(r).toMatchObject({ pid, path: SLEEP, cmdline: `'my sleep' 30`, uid: 0, user: 'root' });
    expect(r.parent).toEqual({ pid: process.pid, path: await readlink('/proc/self/exe'), cmdline: expect.stringContaining('node') });
    // btime has whole-second precision.
    expect(Math.abs((r.startTimeMs ?? 0) - spawnedAtMs)).toBeLessThan(2_000);
  });

  it('gives the same start time on every read, so pid + start time names the process', async () => {
    const { pid } = await run(['30']);
    const a = new ProcessInfoReader();
    const b = new ProcessInfoReader({ maxEntries: 1 });
    const first = await a.read(pid);
    const again = await b.read(pid);
    expect('startTimeMs' in first && first.startTimeMs).toBe('startTimeMs' in again && again.startTimeMs);
    await a.read(pid);
    expect(a.stats().cache).toMatchObject({ hitsTotal: 1, missesTotal: 1 });
  });

  it('names the effective user, from a given passwd file', async () => {
    const { pid } = await run(['30'], { uid: 65534 });
    expect(await new ProcessInfoReader().read(pid)).toMatchObject({ uid: 65534, user: 'nobody' });
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nrarecon-test:x:65534:65534::/:/bin/false\n');
    expect(await new ProcessInfoReader({ passwdPath: passwd, getentCommand: null }).read(pid)).toMatchObject({ user: 'rarecon-test' });
  });

  it('reports a process that is gone', async () => {
    const child = spawn(SLEEP, ['0']);
    await new Promise((r) => child.on('exit', r));
    const reader = new ProcessInfoReader();
    expect(await reader.read(child.pid as number)).toEqual({ error: 'no-such-process' });
    expect(reader.stats().errorsTotal['no-such-process']).toBe(1);
  });
});

describe('parsers', () => {
  it('parses stat with a comm holding spaces and parentheses', () => {
    const own = parseStat(readFileSync('/proc/self/stat', 'latin1'));
    expect(own?.pid).toBe(process.pid);
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    const s = parseStat(`42 (a) b (c)) S ${fields.slice(1).join(' ')}`);
    expect(s).toMatchObject({ pid: 42, comm: 'a) b (c)', state: 'S', ppid: 4, startTicks: 22 });
  });

  it('formats a command line for an analyst', () => {
    expect(formatCmdline(Buffer.from("curl\0-H\0X: y\0it's\0\0"), 100)).toBe(`curl -H 'X: y' 'it'\\''s'`);
    expect(formatCmdline(Buffer.from('nginx: worker process\0\0\0'), 100)).toBe('nginx: worker process');
    expect(formatCmdline(Buffer.from(''), 100)).toBeNull();
    expect(formatCmdline(Buffer.from('a\0bbbbbbbbbb'), 5)).toBe('a bbb…');
  });
});

describe('readSmallProcSync', () => {
  it('reads a whole /proc status file, and a vanished process as no-such-process', async () => {
    const { pid } = await run(['30']);
    const text = readSmallProcSync(`/proc/${pid}/status`);
    expect(text).toMatch(new RegExp(`^Pid:\\s+${pid}$`, 'm'));
    expect(text).toMatch(/^TracerPid:\s+0$/m);
    // The last line comes through: the file is read to its end, not one read's worth.
    expect(text.trimEnd().split('\n').pop()).toBe(readFileSync(`/proc/${pid}/status`, 'latin1').trimEnd().split('\n').pop());
    let code: string | null = null;
    try {
      readSmallProcSync('/proc/999999999/status');
    } catch (err) {
      code = procErrorCode(err);
    }
    expect(code).toBe('no-such-process');
  });
});

describe('deadline', () => {
  it('fires after its time, never before, shared by lookups due in the same slot', async () => {
    // Two lookups in the same millisecond are in the same slot; on a loaded
    // machine the pair may straddle a slot boundary, so take a pair that did not.
    let t0 = 0;
    let a: AbortSignal | null = null;
    let b: AbortSignal | null = null;
    for (let i = 0; i < 1000 && (a === null || Date.now() !== t0); i++) {
      t0 = Date.now();
      a = deadline(200);
      b = deadline(200);
    }
    expect(Date.now()).toBe(t0);
    expect(b).toBe(a);
    if (a === null) throw new Error('no deadline');
    await new Promise<void>((r) => a.addEventListener('abort', () => r(), { once: true }));
    const took = Date.now() - t0;
    // Never early; how late is the event loop's (a loaded machine runs timers late), not the deadline's.
    expect(took).toBeGreaterThanOrEqual(199);
    expect(procErrorCode(a.reason)).toBe('timeout');
    // A fired slot is not handed out again.
    expect(deadline(200).aborted).toBe(false);
  });

  it('fires at once with its parent, and keeps parents apart', () => {
    const p1 = new AbortController();
    const p2 = new AbortController();
    const a = deadline(60_000, p1.signal);
    const b = deadline(60_000, p2.signal);
    expect(b).not.toBe(a);
    expect(deadline(60_000, p1.signal)).toBe(a);
    p1.abort();
    expect(a.aborted).toBe(true);
    expect(b.aborted).toBe(false);
    expect(deadline(60_000, p1.signal).aborted).toBe(true);
    p2.abort();
  });
});
