// HelperProcess against stand-in helpers (shell scripts that replay recorded
// frames and exit the way the real one does), so restart, back-off, fatal
// exits and back-pressure are checked without root or eBPF.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { HelperProcess, HelperUnavailableError, helperArgs, type HelperLogEntry } from '../../../src/sources/ebpf/helper-process.js';
import { LAYOUT, RecordType, WIRE, type RawRecord } from '../../../src/sources/ebpf/wire.js';

const dir = mkdtempSync(path.join(tmpdir(), 'rarecon-helper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function frame(type: number, body: Buffer, seq: number, version: number = WIRE.protocolVersion): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(WIRE.magic, 0);
  h.writeUInt16LE(version, 4);
  h.writeUInt16LE(type, 6);
  h.writeUInt32LE(16 + body.length, 8);
  h.writeUInt32LE(seq, 12);
  return Buffer.concat([h, body]);
}

function hello(version: number = WIRE.protocolVersion): Buffer {
  const b = Buffer.alloc(LAYOUT.hello.size);
  b.writeUInt32LE(version, LAYOUT.hello.offsets.protocolVersion);
  return b;
}

function loss(drops: number, deduped = 0): Buffer {
  const b = Buffer.alloc(LAYOUT.loss.size);
  b.writeBigUInt64LE(BigInt(drops), LAYOUT.loss.offsets.ringbufDrops);
  b.writeBigUInt64LE(BigInt(deduped), LAYOUT.loss.offsets.udpDeduped);
  return b;
}

let scripts = 0;

/** A stand-in helper: writes `frames` to stdout, `stderr` to stderr, then exits with `code` (or waits for SIGTERM). */
function fakeHelper(frames: Buffer, opts: { stderr?: string; code?: number; waitForTerm?: boolean }): string {
  const n = scripts++;
  const data = path.join(dir, `frames-${n}.bin`);
  writeFileSync(data, frames);
  const script = path.join(dir, `helper-${n}.sh`);
  const lines = ['#!/bin/sh'];
  // Like the real helper: a clean exit 0 on SIGTERM, handled before anything is written.
  if (opts.waitForTerm) lines.push("trap 'exit 0' TERM");
  lines.push(`cat '${data}'`);
  if (opts.stderr) lines.push(`echo '${opts.stderr}' >&2`);
  if (opts.waitForTerm) lines.push('while :; do sleep 0.05; done');
  else lines.push(`exit ${opts.code ?? 0}`);
  writeFileSync(script, `${lines.join('\n')}\n`);
  chmodSync(script, 0o755);
  return script;
}

async function collect(it: AsyncIterable<RawRecord>, until: (all: RawRecord[]) => boolean): Promise<RawRecord[]> {
  const all: RawRecord[] = [];
  for await (const r of it) {
    all.push(r);
    if (until(all)) break;
  }
  return all;
}

describe('HelperProcess', () => {
  it('builds the helper arguments from its options', () => {
    expect(helperArgs({ dns: false, udpDedupMs: 0, stackFrames: 8, ringbufKb: 8192, statsIntervalMs: 500 })).toEqual([
      '--no-dns',
      '--udp-dedup-ms',
      '0',
      '--stack-frames',
      '8',
      '--ringbuf-kb',
      '8192',
      '--stats-interval-ms',
      '500',
    ]);
    expect(helperArgs({})).toEqual([]);
  });

  it('probe() says the binary is missing, and records() ends with HelperUnavailableError', async () => {
    const h = new HelperProcess({ binaryPath: path.join(dir, 'no-such-helper') });
    const p = await h.probe();
    expect(p).toMatchObject({ ok: false, code: 'binary-missing' });
    if (!p.ok) expect(p.reason).toContain('make -C native-events');
    await expect(collect(h.records(), () => false)).rejects.toBeInstanceOf(HelperUnavailableError);
    await h.shutdown();
  });

  it('does not restart a helper that says it cannot run here, and passes its reason on', async () => {
    const logs: HelperLogEntry[] = [];
    const bin = fakeHelper(Buffer.alloc(0), {
      stderr: 'rarecon-events: error: kernel BTF missing at /sys/kernel/btf/vmlinux',
      code: 2,
    });
    const h = new HelperProcess({ binaryPath: bin, restartInitialDelayMs: 10, onLog: (e) => logs.push(e) });
    const err = await collect(h.records(), () => false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelperUnavailableError);
    expect((err as HelperUnavailableError).message).toContain('kernel BTF missing');
    expect((err as HelperUnavailableError).exitCode).toBe(2);
    expect(h.stats().restartsTotal).toBe(0);
    expect(logs).toContainEqual(expect.objectContaining({ level: 'error', message: 'kernel BTF missing at /sys/kernel/btf/vmlinux' }));
  });

  it('restarts a helper that crashed, with growing delays, and adds up drops across runs', async () => {
    const bin = fakeHelper(Buffer.concat([frame(RecordType.hello, hello(), 0), frame(RecordType.loss, loss(2, 5), 1)]), { code: 3 });
    const h = new HelperProcess({ binaryPath: bin, restartInitialDelayMs: 20, restartMaxDelayMs: 200 });
    const started = Date.now();
    const recs = await collect(h.records(), (all) => all.filter((r) => r.type === 'hello').length === 4);
    const elapsed = Date.now() - started;
    await h.shutdown();
    // Delays of about 20, 40, 80 ms (+-20 %) between the four runs.
    expect(elapsed).toBeGreaterThanOrEqual(0.8 * (20 + 40 + 80));
    const s = h.stats();
    expect(s.restartsTotal).toBe(3);
    expect(s.kernelDropsTotal).toBe(8);
    expect(s.droppedTotal).toBe(8);
    expect(s.udpDedupedTotal).toBe(20);
    expect(s.decodeErrorsTotal).toBe(0);
    expect(recs.map((r) => r.type)).toEqual(['hello', 'loss', 'hello', 'loss', 'hello', 'loss', 'hello']);
  });

  it('stops a running helper with SIGTERM, safely twice, and ends the iteration', async () => {
    const bin = fakeHelper(frame(RecordType.hello, hello(), 0), { waitForTerm: true });
    const h = new HelperProcess({ binaryPath: bin });
    const iterator = h.records();
    const first = await iterator.next();
    expect(first.value).toMatchObject({ type: 'hello' });
    expect(h.stats().running).toBe(true);
    await Promise.all([h.shutdown(), h.shutdown()]);
    await h.shutdown();
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    expect(h.stats()).toMatchObject({ running: false, restartsTotal: 0 });
    expect(h.stats().lastExit?.code).toBe(0);
  });

  it('stops when the abort signal fires', async () => {
    const bin = fakeHelper(frame(RecordType.hello, hello(), 0), { waitForTerm: true });
    const h = new HelperProcess({ binaryPath: bin });
    const ac = new AbortController();
    const recs: RawRecord[] = [];
    const done = (async () => {
      for await (const r of h.records(ac.signal)) {
        recs.push(r);
        ac.abort();
      }
    })();
    await done;
    expect(recs).toHaveLength(1);
    expect(h.stats().running).toBe(false);
  });

  it('refuses a helper whose HELLO announces another protocol version', async () => {
    const bin = fakeHelper(frame(RecordType.hello, hello(7), 0), { waitForTerm: true });
    const h = new HelperProcess({ binaryPath: bin });
    const err = await collect(h.records(), () => false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelperUnavailableError);
    expect((err as Error).message).toContain('protocol 7');
    await h.shutdown();
    expect(h.stats().running).toBe(false);
  });

  it('counts frames of another protocol version as decode errors and yields nothing for them', async () => {
    const bin = fakeHelper(Buffer.concat([frame(RecordType.hello, hello(2), 0, 2), frame(RecordType.loss, loss(1), 1, 2)]), {
      waitForTerm: true,
    });
    const h = new HelperProcess({ binaryPath: bin });
    const iterator = h.records();
    const next = await Promise.race([iterator.next(), new Promise((r) => setTimeout(() => r('nothing'), 300))]);
    expect(next).toBe('nothing');
    expect(h.stats().decodeErrorsTotal).toBe(2);
    await h.shutdown();
  });

  it('applies back-pressure to a fast helper instead of dropping records', async () => {
    const frames: Buffer[] = [frame(RecordType.hello, hello(), 0)];
    for (let i = 1; i <= 20_000; i++) frames.push(frame(RecordType.loss, loss(0, i), i));
    const bin = fakeHelper(Buffer.concat(frames), { waitForTerm: true });
    const h = new HelperProcess({ binaryPath: bin, maxQueuedRecords: 500 });
    let n = 0;
    let last = 0;
    let inOrder = true;
    for await (const r of h.records()) {
      if (r.type === 'loss') {
        if (r.udpDeduped !== last + 1) inOrder = false;
        last = r.udpDeduped;
      }
      if (++n % 1000 === 0) await new Promise((res) => setTimeout(res, 5)); // a slow consumer
      if (last === 20_000) break;
    }
    expect(inOrder).toBe(true);
    expect(h.stats()).toMatchObject({ receivedTotal: 20_001, decodeErrorsTotal: 0, seqGapsTotal: 0, running: false });
  });
});
