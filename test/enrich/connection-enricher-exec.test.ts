// The connection enricher with what the eBPF helper recorded at exec and at
// the connect: a process gone before /proc is read is hashed through the
// handle the helper holds on its image (a deleted or memfd image still gets
// its own sha256 and is flagged), and the kernel's stack verdict and tracer
// stand in for /proc/<pid>/maps and /proc/<pid>/status.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { ConnectionEnricher } from '../../src/enrich/connection-enricher.js';
import type { ExecImage, LiveConnect } from '../../src/sources/source.js';

let dir = '';
let child: ChildProcess;
let livePid = 0;
const held: FileHandle[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-enrich-exec-'));
  child = spawn('/bin/sleep', ['60'], { stdio: 'ignore' });
  livePid = child.pid ?? 0;
  for (let i = 0; i < 500; i++) {
    try {
      if (readFileSync(`/proc/${livePid}/comm`, 'utf8').trim() === 'sleep') break;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
});

afterAll(async () => {
  child.kill('SIGKILL');
  for (const fh of held) await fh.close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** A pid no process has now: one that ran and was reaped. */
function gonePid(): number {
  return spawnSync('/bin/true').pid ?? 0;
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A copy of /bin/true held open by this process, as the helper holds an exec'd image; optionally unlinked. */
async function heldImage(name: string, opts: { unlink?: boolean; memfd?: boolean } = {}): Promise<{ image: ExecImage; sha: string }> {
  const path = join(dir, name);
  copyFileSync('/bin/true', path);
  const sha = sha256(path);
  const fh = await open(path, 'r');
  held.push(fh);
  const st = statSync(path, { bigint: true });
  if (opts.unlink === true) unlinkSync(path);
  return {
    sha,
    image: {
      path: opts.memfd === true ? '/memfd:payload' : path,
      dev: Number(st.dev),
      ino: st.ino,
      memfd: opts.memfd === true,
      deleted: false,
      heldPath: `/proc/${process.pid}/fd/${fh.fd}`,
      args: [path, '--beacon', 'a b'],
      uid: 0,
      ppid: 1,
    },
  };
}

function connect(pid: number, over: Partial<LiveConnect> = {}): LiveConnect {
  return {
    kind: 'connect',
    timeMs: Date.now(),
    pid,
    tid: pid,
    uid: 0,
    protocol: 'tcp',
    localIp: null,
    localPort: null,
    remoteIp: '203.0.113.9',
    remotePort: 443,
    stack: [],
    stackScan: [],
    processStartBootNs: 123n,
    exe: null,
    kernel: { verdict: 'clean', offending: null },
    tracer: null,
    exeMemfd: false,
    exeDeleted: false,
    ...over,
  };
}

const enricher = (): ConnectionEnricher => new ConnectionEnricher(DEFAULT_CONFIG.enrich, { org: 'test', id: 'h1' });

describe('connection enricher: a process gone before it is enriched', () => {
  it('hashes the image it exec’d through the helper’s handle, with its path and command line from the exec', async () => {
    const { image, sha } = await heldImage('.hidden-dropper');
    const pid = gonePid();
    const r = await enricher().enrich(connect(pid, { image, exe: { dev: image.dev, ino: image.ino } }));
    expect(r.process.sha256).toBe(sha);
    expect(r.process.path).toBe(image.path);
    expect(r.process.cmdline).toBe(`${image.path} --beacon 'a b'`);
    expect(r.process.injection).toEqual({ injected: false, indicators: [] });
  });

  it('hashes a binary unlinked before it connected, and flags it deleted-exe', async () => {
    const { image, sha } = await heldImage('selfdelete', { unlink: true });
    const r = await enricher().enrich(connect(gonePid(), { image, exeDeleted: true }));
    expect(r.process.sha256).toBe(sha);
    expect(r.process.injection).toEqual({ injected: true, indicators: [`deleted-exe:${image.path}`] });
    expect(r.process.signer.status).not.toBe('valid');
  });

  it('hashes a memfd image, flags it memfd-exe and calls it unsigned', async () => {
    const { image, sha } = await heldImage('memfd-like', { memfd: true });
    const r = await enricher().enrich(connect(gonePid(), { image, exeMemfd: true }));
    expect(r.process.sha256).toBe(sha);
    expect(r.process.path).toBe('/memfd:payload');
    expect(r.process.signer.status).toBe('unsigned');
    expect(r.process.injection.indicators).toEqual(['memfd-exe:/memfd:payload']);
  });

  it('does not take another file for the image when the handle’s fd number now holds something else', async () => {
    const { image } = await heldImage('reused');
    const r = await enricher().enrich(connect(gonePid(), { image: { ...image, ino: image.ino + 1n } }));
    expect(r.process.sha256).toBeNull();
  });

  it('hashes the file at the path the exec named when the helper holds no handle on it, if it is still the same file', async () => {
    const { image, sha } = await heldImage('no-handle');
    const e = enricher();
    const r = await e.enrich(connect(gonePid(), { image: { ...image, heldPath: null }, exe: { dev: image.dev, ino: image.ino } }));
    expect(r.process.sha256).toBe(sha);
    expect(r.process.path).toBe(image.path);
    expect(e.stats().errorsByCode).toMatchObject({ 'image-hash:no-such-process-by-exec-path': 1 });
  });

  it('does not take the file now at the exec’s path for the image when it is another file (replaced since)', async () => {
    const { image } = await heldImage('replaced');
    const other = join(dir, 'replaced.new');
    copyFileSync('/bin/false', other);
    renameSync(other, image.path);
    const r = await enricher().enrich(connect(gonePid(), { image: { ...image, heldPath: null } }));
    expect(r.process.sha256).toBeNull();
  });

  it('keeps the kernel’s anonymous-frame verdict for a process that is gone (the injected-thread indicator)', async () => {
    const { image } = await heldImage('shellcode-host');
    const r = await enricher().enrich(
      connect(gonePid(), {
        image,
        stack: [0x7f0000001008n],
        kernel: { verdict: 'frame', offending: { addr: 0x7f0000001008n, kind: 'anon', name: '' } },
      }),
    );
    expect(r.process.injection).toEqual({ injected: true, indicators: ['anon-exec-frame:0x7f0000001008'] });
  });
});

describe('connection enricher: the kernel’s verdict at the connect', () => {
  const live = (over: Partial<LiveConnect> = {}): LiveConnect => {
    const st = statSync(`/proc/${livePid}/exe`, { bigint: true });
    return connect(livePid, { exe: { dev: Number(st.dev), ino: st.ino }, ...over });
  };

  it('names the offending frame and return address as the user-space check does', async () => {
    const e = enricher();
    const frame = await e.enrich(
      live({ kernel: { verdict: 'return', offending: { addr: 0x7f00000a0010n, kind: 'memfd', name: 'memfd:stage2' } } }),
    );
    expect(frame.process.injection.indicators).toEqual(['memfd-exec-return:0x7f00000a0010 /memfd:stage2']);
  });

  it('takes the tracer from the task, not /proc/<pid>/status: a debugger is fine, anything else is an indicator', async () => {
    const e = enricher();
    const gdb = await e.enrich(live({ tracer: { pid: 77, exeName: 'gdb', oddExe: false } }));
    expect(gdb.process.injection).toEqual({ injected: false, indicators: [] });
    const odd = await e.enrich(live({ remotePort: 444, tracer: { pid: 77, exeName: 'gdb', oddExe: true } }));
    expect(odd.process.injection.indicators).toEqual(['ptrace:gdb (deleted)[77]']);
    const evil = await e.enrich(live({ remotePort: 445, tracer: { pid: 78, exeName: 'implant', oddExe: false } }));
    expect(evil.process.injection.indicators).toEqual(['ptrace:implant[78]']);
    expect(e.stats().tracerChecksTotal).toBe(0);
  });

  it('answers a repeat with the same verdict from what was decided, and not a repeat whose verdict differs', async () => {
    const e = enricher();
    const first = await e.enrich(live());
    expect(first.process.sha256).toMatch(/^[0-9a-f]{64}$/);
    const again = e.enrichRepeat(live({ remotePort: 8443 }));
    expect(again?.process.sha256).toBe(first.process.sha256);
    expect(again?.process.injection).toEqual({ injected: false, indicators: [] });
    expect(e.stats().repeatsTotal).toBe(1);
    const anon = { verdict: 'frame', offending: { addr: 0x7f1234n, kind: 'anon', name: '' } } as const;
    expect(e.enrichRepeat(live({ kernel: anon }))).toBeNull();
    const judged = await e.enrich(live({ kernel: anon }));
    expect(judged.process.injection.indicators).toEqual(['anon-exec-frame:0x7f1234']);
    expect(e.enrichRepeat(live({ kernel: anon }))?.process.injection.indicators).toEqual(['anon-exec-frame:0x7f1234']);
    // A tracer attached since is seen at once: it comes with each record.
    const traced = e.enrichRepeat(live({ tracer: { pid: 9, exeName: 'implant', oddExe: false } }));
    expect(traced?.process.injection.indicators).toEqual(['ptrace:implant[9]']);
  });

  it('falls back to the user-space check when the kernel did not judge (old kernel) or could not decide', async () => {
    const e = enricher();
    const old = await e.enrich(live({ kernel: null, tracer: undefined, exeMemfd: undefined, exeDeleted: undefined }));
    expect(old.process.injection).toEqual({ injected: false, indicators: [] });
    expect(e.stats().tracerChecksTotal).toBe(1);
    const undecided = await e.enrich(live({ remotePort: 9, kernel: { verdict: 'undecided', offending: null } }));
    expect(undecided.process.injection).toEqual({ injected: false, indicators: [] });
  });
});
