import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageHasher } from '../../src/enrich/image-hash.js';
import { procErrorCode } from '../../src/common/proc.js';

const SLEEP = '/usr/bin/sleep';
const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

let dir: string;
let memfdExec: string | null = null;
const children: ChildProcess[] = [];

/** Spawns and waits until the kernel shows the new image (exec done). */
async function run(file: string, args: string[], imageMatches: (link: string) => boolean): Promise<number> {
  const child = spawn(file, args, { stdio: 'ignore' });
  children.push(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`spawn ${file} failed`);
  for (let i = 0; i < 200; i++) {
    const link = await readlink(`/proc/${pid}/exe`).catch(() => '');
    if (imageMatches(link)) return pid;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${file} did not start`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-hash-'));
  try {
    memfdExec = join(dir, 'memfd_exec');
    execFileSync('cc', ['-O2', '-o', memfdExec, join(import.meta.dirname, '../e2e/triggers/memfd_exec.c')]);
  } catch (err) {
    console.warn(`memfd trigger not built, memfd test skipped: ${(err as Error).message}`);
    memfdExec = null;
  }
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('ImageHasher.hashPid', () => {
  it('hashes a running /usr/bin/sleep to the sha256 of the file', async () => {
    const pid = await run(SLEEP, ['30'], (l) => l === SLEEP);
    const r = await new ImageHasher().hashPid(pid);
    expect(r).toEqual({ sha256: sha256Of(SLEEP), path: SLEEP, deleted: false, memfd: false, sizeBytes: readFileSync(SLEEP).length });
  });

  it('gives a copy the same sha256 and a modified copy a different one', async () => {
    const copy = join(dir, 'sleep-copy');
    const modified = join(dir, 'sleep-modified');
    copyFileSync(SLEEP, copy);
    copyFileSync(SLEEP, modified);
    appendFileSync(modified, 'rarecon'); // trailing bytes: still a runnable ELF
    const h = new ImageHasher();
    const a = await h.hashPid(await run(copy, ['30'], (l) => l === copy));
    const b = await h.hashPid(await run(modified, ['30'], (l) => l === modified));
    expect(a).toMatchObject({ sha256: sha256Of(SLEEP), path: copy });
    expect(b).toMatchObject({ sha256: sha256Of(modified), path: modified });
    expect('sha256' in b && b.sha256).not.toBe(sha256Of(SLEEP));
  });

  it('still hashes a deleted executable and flags it', async () => {
    const exe = join(dir, 'sleep-deleted');
    copyFileSync(SLEEP, exe);
    const pid = await run(exe, ['30'], (l) => l === exe);
    unlinkSync(exe);
    const r = await new ImageHasher().hashPid(pid);
    expect(r).toMatchObject({ sha256: sha256Of(SLEEP), path: exe, deleted: true, memfd: false });
  });

  it('hashes a memfd-executed image and flags it', async (ctx) => {
    if (memfdExec === null) return ctx.skip();
    const pid = await run(memfdExec, [SLEEP, '30'], (l) => l.startsWith('/memfd:'));
    const r = await new ImageHasher().hashPid(pid);
    expect(r).toMatchObject({ sha256: sha256Of(SLEEP), path: '/memfd:rarecon-trigger', deleted: false, memfd: true });
  });

  it('serves repeats from the cache and reads concurrent requests once', async () => {
    const pid = await run(SLEEP, ['30'], (l) => l === SLEEP);
    const h = new ImageHasher();
    const results = await Promise.all(Array.from({ length: 8 }, () => h.hashPid(pid)));
    expect(new Set(results.map((r) => ('sha256' in r ? r.sha256 : r.error))).size).toBe(1);
    await h.hashPid(pid);
    const s = h.stats();
    expect(s.hashedFilesTotal).toBe(1);
    expect(s.cache.hitsTotal).toBeGreaterThanOrEqual(1);
  });

  it('reports a pid that does not exist as no-such-process', async () => {
    const child = spawn(SLEEP, ['0']);
    const pid = child.pid as number;
    await new Promise((r) => child.on('exit', r));
    const h = new ImageHasher();
    expect(await h.hashPid(pid)).toEqual({ error: 'no-such-process' });
    expect(h.stats().errorsTotal['no-such-process']).toBe(1);
  });
});

describe('ImageHasher.hashFile', () => {
  it('hashes a file changed on disk again', async () => {
    const f = join(dir, 'changing');
    writeFileSync(f, 'one');
    const h = new ImageHasher();
    const first = await h.hashFile(f);
    expect(await h.hashFile(f)).toEqual(first);
    writeFileSync(f, 'two'); // same inode and size, new mtime/ctime
    const second = await h.hashFile(f);
    expect(second).toMatchObject({ sha256: createHash('sha256').update('two').digest('hex') });
    expect(h.stats().cache).toMatchObject({ hitsTotal: 1, missesTotal: 2 });
  });

  it('gives up with timeout on a file it cannot finish in time', async () => {
    const f = join(dir, 'big');
    writeFileSync(f, '');
    truncateSync(f, 512 * 1024 * 1024); // sparse: costs no disk
    const r = await new ImageHasher({ timeoutMs: 5 }).hashFile(f);
    expect(r).toEqual({ error: 'timeout' });
  });

  it('reports a missing file as no-such-file', async () => {
    expect(await new ImageHasher().hashFile(join(dir, 'absent'))).toEqual({ error: 'no-such-file' });
  });

  it('hashes large files in chunks without stalling the event loop (figures printed)', async () => {
    const f = join(dir, 'large');
    const block = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(f, Buffer.concat(Array.from({ length: 256 }, () => block)));
    const h = new ImageHasher();
    let maxLagMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxLagMs = Math.max(maxLagMs, now - last - 5);
      last = now;
    }, 5);
    const started = performance.now();
    const r = await h.hashFile(f);
    const ms = performance.now() - started;
    clearInterval(timer);
    expect(r).toMatchObject({ sha256: sha256Of(f), sizeBytes: 256 * 1024 * 1024 });
    console.log(
      `image-hash: 256 MiB in ${ms.toFixed(0)} ms = ${(256 / (ms / 1000)).toFixed(0)} MiB/s, max event-loop lag ${maxLagMs.toFixed(1)} ms`,
    );
  });
});

describe('procErrorCode', () => {
  it('maps errno codes to enricher error codes', () => {
    expect(procErrorCode(Object.assign(new Error(), { code: 'ENOENT' }))).toBe('no-such-process');
    expect(procErrorCode(Object.assign(new Error(), { code: 'EACCES' }))).toBe('permission-denied');
    expect(procErrorCode(Object.assign(new Error(), { code: 'EPERM' }))).toBe('permission-denied');
    expect(procErrorCode(Object.assign(new Error(), { code: 'EIO' }))).toBe('read-failed');
  });
});
