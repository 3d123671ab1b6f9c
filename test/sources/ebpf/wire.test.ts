import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import {
  CONNECT_V1_SIZE,
  ConnectFlag,
  ConnectKindCode,
  ExecFlag,
  DnsFlag,
  FrameDecoder,
  HelloFlag,
  LAYOUT,
  RecordType,
  VerdictCode,
  VmaKindCode,
  WIRE,
  formatAddress,
  kernelDevToStatDev,
  type DecodeProblem,
  type RawConnect,
  type RawDns,
  type RawRecord,
} from '../../../src/sources/ebpf/wire.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// ---- the C side ----------------------------------------------------------------

function findCompiler(): string | null {
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  return null;
}

interface CLayout {
  constants: Record<string, number>;
  structs: Record<string, { size: number; offsets: Record<string, number> }>;
}

const compiler = findCompiler();
const workDir = mkdtempSync(path.join(tmpdir(), 'rarecon-wire-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function cLayout(): CLayout {
  const exe = path.join(workDir, 'layout');
  execFileSync(compiler as string, [
    '-std=gnu11',
    '-Wall',
    '-I',
    path.join(repoRoot, 'native-events'),
    '-o',
    exe,
    path.join(repoRoot, 'native-events/tools/layout.c'),
  ]);
  return JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as CLayout;
}

if (!compiler) console.log('wire.test: skipping the C layout comparison: no C compiler (cc, gcc, clang) found');

describe('wire layout agrees with native-events/rarecon_events.h', () => {
  it.skipIf(!compiler)('has the same struct sizes and field offsets', () => {
    const c = cLayout();
    const ts = LAYOUT as unknown as CLayout['structs'];
    expect(Object.keys(c.structs).sort()).toEqual(Object.keys(ts).sort());
    for (const [name, s] of Object.entries(c.structs)) {
      expect({ struct: name, size: ts[name]?.size }).toEqual({ struct: name, size: s.size });
      expect({ struct: name, offsets: ts[name]?.offsets }).toEqual({ struct: name, offsets: s.offsets });
    }
  });

  it.skipIf(!compiler)('has the same constants', () => {
    const k = cLayout().constants;
    expect({
      magic: WIRE.magic,
      protocolVersion: WIRE.protocolVersion,
      maxFrameSize: WIRE.maxFrameSize,
      maxStackFrames: WIRE.maxStackFrames,
      stackScanWords: WIRE.stackScanWords,
      dnsMaxPayload: WIRE.dnsMaxPayload,
      commLen: WIRE.commLen,
      recHello: RecordType.hello,
      recConnect: RecordType.connect,
      recDns: RecordType.dns,
      recLoss: RecordType.loss,
      recExit: RecordType.exit,
      kindTcpConnect: ConnectKindCode.tcpConnect,
      kindUdpConnect: ConnectKindCode.udpConnect,
      kindUdpSend: ConnectKindCode.udpSend,
      helloFlagTcp4: HelloFlag.tcp4,
      helloFlagTcp6: HelloFlag.tcp6,
      helloFlagUdp4: HelloFlag.udp4,
      helloFlagUdp6: HelloFlag.udp6,
      helloFlagDns: HelloFlag.dns,
      helloFlagDnsTcp: HelloFlag.dnsTcp,
      helloFlagExit: HelloFlag.exit,
      helloFlagStackScan: HelloFlag.stackScan,
      connectFlagKernelThread: ConnectFlag.kernelThread,
      dnsFlagTruncated: DnsFlag.truncated,
      recExec: RecordType.exec,
      helloFlagExec: HelloFlag.exec,
      helloFlagFindVma: HelloFlag.findVma,
      helloFlagImageFds: HelloFlag.imageFds,
      connectFlagExeMemfd: ConnectFlag.exeMemfd,
      connectFlagExeDeleted: ConnectFlag.exeDeleted,
      connectFlagJudged: ConnectFlag.judged,
      connectFlagTracerOddExe: ConnectFlag.tracerOddExe,
      execFlagMemfd: ExecFlag.memfd,
      execFlagDeleted: ExecFlag.deleted,
      execFlagSeeded: ExecFlag.seeded,
      execFlagPathTruncated: ExecFlag.pathTruncated,
      execFlagArgsTruncated: ExecFlag.argsTruncated,
      verdictFrame: VerdictCode.frame,
      verdictReturn: VerdictCode.return,
      verdictUndecided: VerdictCode.undecided,
      vmaAnon: VmaKindCode.anon,
      vmaMemfd: VmaKindCode.memfd,
      vmaDeleted: VmaKindCode.deleted,
      vmaSpecial: VmaKindCode.special,
      connectV1Size: CONNECT_V1_SIZE,
    }).toEqual(k);
  });

  it('spells the magic "RCEV" in the byte stream', () => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(WIRE.magic);
    expect(b.toString('latin1')).toBe('RCEV');
  });
});

// ---- an encoder for the tests (the helper is the real one) ---------------------------

let nextSeq = 0;

function frame(type: number, body: Buffer, opts: { seq?: number; version?: number } = {}): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(WIRE.magic, 0);
  h.writeUInt16LE(opts.version ?? WIRE.protocolVersion, 4);
  h.writeUInt16LE(type, 6);
  h.writeUInt32LE(16 + body.length, 8);
  h.writeUInt32LE(opts.seq ?? nextSeq++, 12);
  return Buffer.concat([h, body]);
}

function helloBody(): Buffer {
  const o = LAYOUT.hello.offsets;
  const b = Buffer.alloc(LAYOUT.hello.size);
  b.writeUInt32LE(WIRE.protocolVersion, o.protocolVersion);
  b.writeUInt32LE(4242, o.helperPid);
  b.writeBigInt64LE(1_700_000_000_000_000_000n, o.bootToRealtimeNs);
  b.writeUInt32LE(32, o.stackFrames);
  b.writeUInt32LE(16, o.stackScanWords);
  b.writeUInt32LE(60000, o.udpDedupMs);
  b.writeUInt32LE(HelloFlag.tcp4 | HelloFlag.tcp6 | HelloFlag.dns, o.flags);
  b.writeUInt32LE(32, o.maxStackFrames);
  b.writeUInt32LE(4096, o.dnsMaxPayload);
  b.write('6.1.0-test', o.kernelRelease, 'latin1');
  b.write('0.1.0', o.helperVersion, 'latin1');
  return b;
}

function connectBody(over: { pid?: number; family?: number; port?: number; stack?: bigint[]; kind?: number } = {}): Buffer {
  const o = LAYOUT.connect.offsets;
  const b = Buffer.alloc(LAYOUT.connect.size);
  b.writeBigUInt64LE(5_000_000_000n, o.bootNs);
  b.writeBigUInt64LE(1_759_312_800_123_456_789n, o.realtimeNs);
  b.writeBigUInt64LE(4_000_000_000n, o.procStartBootNs);
  b.writeUInt32LE(over.pid ?? 1234, o.pid);
  b.writeUInt32LE(1235, o.tid);
  b.writeUInt32LE(1, o.ppid);
  b.writeUInt32LE(1000, o.uid);
  b.writeUInt32LE(1000, o.gid);
  b.writeUInt32LE((8 << 20) | 1, o.exeDev);
  b.writeBigUInt64LE(777n, o.exeIno);
  b.write('curl', o.comm, 'latin1');
  const family = over.family ?? 2;
  b.writeUInt16LE(family, o.family);
  b.writeUInt8(6, o.protocol);
  b.writeUInt8(over.kind ?? ConnectKindCode.tcpConnect, o.kind);
  b.writeUInt16LE(0, o.localPort);
  b.writeUInt16LE(over.port ?? 8443, o.remotePort);
  if (family === 2) {
    Buffer.from([10, 0, 0, 5]).copy(b, o.localAddr);
    Buffer.from([203, 0, 113, 10]).copy(b, o.remoteAddr);
  } else {
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(b, o.remoteAddr);
  }
  b.writeUInt32LE(4026531840, o.netnsIno);
  const stack = over.stack ?? [0x7f0000001000n, 0x55550000abcdn];
  b.writeUInt16LE(stack.length, o.stackCount);
  stack.forEach((ip, i) => b.writeBigUInt64LE(ip, o.stack + 8 * i));
  b.writeUInt16LE(2, o.scanCount);
  b.writeBigUInt64LE(0x7f0000002000n, o.scan);
  b.writeBigUInt64LE(42n, o.scan + 8);
  b.writeBigUInt64LE(0x7ffc00000000n, o.userSp);
  b.writeBigUInt64LE(99n, o.cgroupId);
  return b;
}

function dnsBody(payload: Buffer): Buffer {
  const o = LAYOUT.dns.offsets;
  const b = Buffer.alloc(LAYOUT.dns.size);
  b.writeBigUInt64LE(1_759_312_800_000_000_000n, o.realtimeNs);
  b.writeUInt16LE(2, o.family);
  b.writeUInt8(17, o.transport);
  b.writeUInt16LE(40000, o.clientPort);
  b.writeUInt16LE(53, o.serverPort);
  Buffer.from([203, 0, 113, 1]).copy(b, o.clientAddr);
  Buffer.from([203, 0, 113, 53]).copy(b, o.serverAddr);
  b.writeUInt32LE(3, o.ifindex);
  b.writeUInt16LE(payload.length, o.payloadLen);
  b.writeUInt16LE(payload.length, o.origLen);
  return Buffer.concat([b, payload]);
}

function lossBody(drops: number): Buffer {
  const b = Buffer.alloc(LAYOUT.loss.size);
  b.writeBigUInt64LE(BigInt(drops), LAYOUT.loss.offsets.ringbufDrops);
  b.writeBigUInt64LE(10n, LAYOUT.loss.offsets.kernelEvents);
  return b;
}

function stream(): Buffer {
  nextSeq = 0;
  return Buffer.concat([
    frame(RecordType.hello, helloBody()),
    frame(RecordType.connect, connectBody()),
    frame(RecordType.dns, dnsBody(Buffer.from('12348180', 'hex'))),
    frame(RecordType.connect, connectBody({ family: 10, port: 443 })),
    frame(RecordType.loss, lossBody(3)),
  ]);
}

// ---- decoder -------------------------------------------------------------------------

describe('FrameDecoder', () => {
  it('decodes every record type with its fields', () => {
    const d = new FrameDecoder();
    const recs = d.push(stream());
    expect(recs.map((r) => r.type)).toEqual(['hello', 'connect', 'dns', 'connect', 'loss']);
    const hello = recs[0];
    expect(hello).toMatchObject({
      type: 'hello',
      seq: 0,
      protocolVersion: 1,
      helperPid: 4242,
      kernelRelease: '6.1.0-test',
      helperVersion: '0.1.0',
      capabilities: { tcp4: true, tcp6: true, udp4: false, dns: true, exit: false },
    });
    const c = recs[1] as RawConnect;
    expect(c).toMatchObject({
      type: 'connect',
      pid: 1234,
      tid: 1235,
      ppid: 1,
      uid: 1000,
      comm: 'curl',
      family: 4,
      protocol: 'tcp',
      kind: 'tcp-connect',
      local: { ip: '10.0.0.5', port: 0 },
      remote: { ip: '203.0.113.10', port: 8443 },
      timeMs: 1_759_312_800_123,
      stack: [0x7f0000001000n, 0x55550000abcdn],
      stackScan: [0x7f0000002000n, 42n],
      stackError: 0,
      kernelThread: false,
      cgroupId: 99n,
      exe: { dev: (8 << 8) | 1, ino: 777n },
    });
    expect((recs[3] as RawConnect).remote).toEqual({ ip: '2001:db8::1', port: 443 });
    const dns = recs[2] as RawDns;
    expect(dns).toMatchObject({
      transport: 'udp',
      client: { ip: '203.0.113.1', port: 40000 },
      server: { ip: '203.0.113.53', port: 53 },
      truncated: false,
    });
    expect(Buffer.from(dns.payload).toString('hex')).toBe('12348180');
    expect(recs[4]).toMatchObject({ type: 'loss', ringbufDrops: 3, kernelEvents: 10 });
    expect(d.stats()).toMatchObject({ framesTotal: 5, recordsTotal: 5, decodeErrorsTotal: 0, seqGapsTotal: 0 });
  });

  it('gives the same records whatever the chunking, byte by byte included', () => {
    const all = stream();
    const whole = new FrameDecoder().push(all);
    for (const size of [1, 2, 3, 7, 15, 16, 17, 100, 531]) {
      const d = new FrameDecoder();
      const got: RawRecord[] = [];
      for (let i = 0; i < all.length; i += size) got.push(...d.push(all.subarray(i, i + size)));
      expect(got).toEqual(whole);
      expect(d.stats().decodeErrorsTotal).toBe(0);
      expect(d.end()).toBe(0);
    }
  });

  it('does not keep references to the caller chunk', () => {
    const all = stream();
    const d = new FrameDecoder();
    const copy = Buffer.from(all);
    const first = d.push(copy.subarray(0, 200));
    copy.fill(0xee, 0, 200); // the caller reuses its buffer
    const rest = d.push(copy.subarray(200));
    expect([...first, ...rest].map((r) => r.type)).toEqual(['hello', 'connect', 'dns', 'connect', 'loss']);
  });

  it('counts garbage as decode errors and resynchronises on the next frame', () => {
    const problems: DecodeProblem[] = [];
    const d = new FrameDecoder((p) => problems.push(p));
    const all = stream();
    const garbage = Buffer.from('this is not a frame at all, just noise........');
    const mixed = Buffer.concat([garbage, all.subarray(0, 144), Buffer.from([1, 2, 3]), all.subarray(144)]);
    const got: RawRecord[] = [];
    for (let i = 0; i < mixed.length; i += 13) got.push(...d.push(mixed.subarray(i, i + 13)));
    expect(got.map((r) => r.type)).toEqual(['hello', 'connect', 'dns', 'connect', 'loss']);
    const s = d.stats();
    expect(s.decodeErrorsTotal).toBe(2);
    expect(s.bytesSkippedTotal).toBe(garbage.length + 3);
    expect(problems.map((p) => p.code)).toEqual(['bad-magic', 'bad-magic']);
    expect(problems[0]?.offset).toBe(0);
  });

  it('rejects impossible lengths without losing the frames after them', () => {
    nextSeq = 0;
    const bad = frame(RecordType.connect, connectBody());
    bad.writeUInt32LE(3, 8); // shorter than the header
    const huge = frame(RecordType.connect, connectBody());
    huge.writeUInt32LE(10_000_000, 8);
    const good = frame(RecordType.loss, lossBody(0), { seq: 9 });
    const d = new FrameDecoder();
    const recs = d.push(Buffer.concat([bad, huge, good]));
    expect(recs.map((r) => r.type)).toEqual(['loss']);
    expect(d.stats().decodeErrorsTotal).toBe(1); // one run of garbage
  });

  it('counts and skips unknown record types', () => {
    nextSeq = 0;
    const d = new FrameDecoder();
    const recs = d.push(
      Buffer.concat([
        frame(RecordType.hello, helloBody()),
        frame(99, Buffer.from('a record from the future')),
        frame(RecordType.loss, lossBody(1)),
      ]),
    );
    expect(recs.map((r) => r.type)).toEqual(['hello', 'loss']);
    expect(d.stats()).toMatchObject({ unknownTypesTotal: 1, decodeErrorsTotal: 0, framesTotal: 3 });
  });

  it('reads longer bodies (fields appended later) and rejects short ones', () => {
    nextSeq = 0;
    const d = new FrameDecoder();
    const longer = Buffer.concat([lossBody(5), Buffer.alloc(24, 0xab)]);
    const recs = d.push(Buffer.concat([frame(RecordType.loss, longer), frame(RecordType.connect, connectBody().subarray(0, 100))]));
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ type: 'loss', ringbufDrops: 5 });
    expect(d.stats().decodeErrorsTotal).toBe(1);
  });

  it('rejects bad values and other protocol versions as decode errors', () => {
    nextSeq = 0;
    const d = new FrameDecoder();
    const problems: string[] = [];
    const d2 = new FrameDecoder((p) => problems.push(p.code));
    const input = Buffer.concat([
      frame(RecordType.connect, connectBody({ family: 1 })),
      frame(RecordType.connect, connectBody({ kind: 9 })),
      frame(RecordType.hello, helloBody(), { version: 2 }),
      frame(RecordType.connect, connectBody()),
    ]);
    expect(d.push(input).map((r) => r.type)).toEqual(['connect']);
    expect(d.stats().decodeErrorsTotal).toBe(3);
    d2.push(input);
    expect(problems).toEqual(['bad-value', 'bad-value', 'unsupported-version']);
  });

  it('counts missing sequence numbers and restarts counting at HELLO', () => {
    const d = new FrameDecoder();
    d.push(
      Buffer.concat([
        frame(RecordType.hello, helloBody(), { seq: 0 }),
        frame(RecordType.loss, lossBody(0), { seq: 1 }),
        frame(RecordType.loss, lossBody(0), { seq: 4 }),
        frame(RecordType.hello, helloBody(), { seq: 0 }),
        frame(RecordType.loss, lossBody(0), { seq: 1 }),
      ]),
    );
    expect(d.stats().seqGapsTotal).toBe(2);
  });

  it('reports a stream cut inside a frame at end()', () => {
    const d = new FrameDecoder();
    const all = stream();
    d.push(all.subarray(0, all.length - 10));
    expect(d.end()).toBeGreaterThan(0);
    expect(d.stats().decodeErrorsTotal).toBe(1);
  });

  it('copies DNS payloads out of the stream buffer', () => {
    nextSeq = 0;
    const d = new FrameDecoder();
    const input = frame(RecordType.dns, dnsBody(Buffer.from('abcdef', 'hex')));
    const [rec] = d.push(input) as RawDns[];
    input.fill(0);
    expect(Buffer.from(rec?.payload ?? []).toString('hex')).toBe('abcdef');
  });
});

describe('formatAddress', () => {
  const v6 = (hex: string): string => formatAddress(6, Buffer.from(hex, 'hex'));

  it('writes IPv6 per RFC 5952', () => {
    expect(v6('00000000000000000000000000000001')).toBe('::1');
    expect(v6('00000000000000000000000000000000')).toBe('::');
    expect(v6('20010db8000000000000000000000001')).toBe('2001:db8::1');
    expect(v6('20010db8000000010000000000000001')).toBe('2001:db8:0:1::1');
    expect(v6('20010db8000000000001000000000001')).toBe('2001:db8::1:0:0:1');
    expect(v6('20010db8000100000000000000000000')).toBe('2001:db8:1::');
    expect(v6('fe800000000000000000000000000000')).toBe('fe80::');
    expect(v6('20010db8000100010001000100010001')).toBe('2001:db8:1:1:1:1:1:1');
    expect(v6('20010db8000000010001000100010001')).toBe('2001:db8:0:1:1:1:1:1');
    expect(v6('00000000000000000000ffffcb00710a')).toBe('::ffff:203.0.113.10');
  });

  it('writes IPv4 dotted', () => {
    expect(formatAddress(4, Buffer.from([198, 51, 100, 7]))).toBe('198.51.100.7');
  });
});

describe('kernelDevToStatDev', () => {
  it('matches glibc makedev for small and large minors', () => {
    expect(kernelDevToStatDev((8 << 20) | 1)).toBe(0x801);
    expect(kernelDevToStatDev((259 << 20) | 3)).toBe((259 << 8) | 3);
    // minor 0x12345: low byte stays, the rest moves up by 12 bits
    expect(kernelDevToStatDev((0 << 20) | 0x12345)).toBe(0x45 + 0x12300 * 0x1000);
  });
});
