// The wire contract of the native helper (native-events/rarecon_events.h),
// mirrored: constants, struct layouts, typed records and a decoder that turns
// a byte stream (frames split anywhere) into records. Garbage, unknown record
// types and short records are counted and skipped; nothing here throws on
// input.
//
// test/sources/ebpf/wire.test.ts compiles native-events/tools/layout.c and
// checks that every size, offset and constant below matches the C header.
import { formatIpv6 } from '../../model/address.js';

/** Constants of rarecon_events.h. */
export const WIRE = Object.freeze({
  /** "RCEV" as the bytes 52 43 45 56, read little-endian. */
  magic: 0x56454352,
  protocolVersion: 1,
  frameHeaderSize: 16,
  maxFrameSize: 65536,
  maxStackFrames: 32,
  stackScanWords: 16,
  dnsMaxPayload: 4096,
  commLen: 16,
});

export const RecordType = Object.freeze({
  hello: 1,
  connect: 2,
  dns: 3,
  loss: 4,
  exit: 5,
  exec: 6,
});

export const ConnectKindCode = Object.freeze({
  tcpConnect: 1,
  udpConnect: 2,
  udpSend: 3,
});

export const HelloFlag = Object.freeze({
  tcp4: 1 << 0,
  tcp6: 1 << 1,
  udp4: 1 << 2,
  udp6: 1 << 3,
  dns: 1 << 4,
  dnsTcp: 1 << 5,
  exit: 1 << 6,
  stackScan: 1 << 7,
  exec: 1 << 8,
  findVma: 1 << 9,
  imageFds: 1 << 10,
  execFiles: 1 << 11,
});

export const ConnectFlag = Object.freeze({
  kernelThread: 1 << 0,
  exeMemfd: 1 << 1,
  exeDeleted: 1 << 2,
  judged: 1 << 3,
  tracerOddExe: 1 << 4,
});

/** rc_connect.verdict */
export const VerdictCode = Object.freeze({ none: 0, clean: 1, frame: 2, return: 3, undecided: 4 });

/** rc_connect.frame_kind[] / scan_kind[] */
export const VmaKindCode = Object.freeze({
  unchecked: 0,
  none: 1,
  noexec: 2,
  file: 3,
  libc: 4,
  anon: 5,
  memfd: 6,
  deleted: 7,
  special: 8,
});

export const ExecFlag = Object.freeze({
  memfd: 1 << 0,
  deleted: 1 << 1,
  seeded: 1 << 2,
  pathTruncated: 1 << 3,
  argsTruncated: 1 << 4,
});
export const DnsFlag = Object.freeze({ truncated: 1 << 0 });

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Sizes and field offsets of the wire structs (bodies follow the 16-byte frame header). */
export const LAYOUT = Object.freeze({
  frameHeader: { size: 16, offsets: { magic: 0, version: 4, type: 6, length: 8, seq: 12 } },
  hello: {
    size: 128,
    offsets: {
      protocolVersion: 0,
      helperPid: 4,
      bootToRealtimeNs: 8,
      stackFrames: 16,
      stackScanWords: 20,
      udpDedupMs: 24,
      flags: 28,
      maxStackFrames: 32,
      dnsMaxPayload: 36,
      kernelRelease: 40,
      helperVersion: 104,
    },
  },
  connect: {
    size: 664,
    offsets: {
      bootNs: 0,
      realtimeNs: 8,
      procStartBootNs: 16,
      pid: 24,
      tid: 28,
      ppid: 32,
      uid: 36,
      gid: 40,
      exeDev: 44,
      exeIno: 48,
      comm: 56,
      family: 72,
      protocol: 74,
      kind: 75,
      localPort: 76,
      remotePort: 78,
      localAddr: 80,
      remoteAddr: 96,
      netnsIno: 112,
      stackErr: 116,
      stackCount: 120,
      scanCount: 122,
      flags: 124,
      userSp: 128,
      cgroupId: 136,
      scan: 144,
      stack: 272,
      verdict: 528,
      offendingKind: 529,
      offendingIndex: 530,
      tracerPid: 532,
      offendingAddr: 536,
      frameKind: 544,
      scanKind: 576,
      offendingName: 592,
      tracerExe: 624,
      reserved: 656,
    },
  },
  dns: {
    size: 64,
    offsets: {
      realtimeNs: 0,
      bootNs: 8,
      family: 16,
      transport: 18,
      flags: 19,
      clientPort: 20,
      serverPort: 22,
      clientAddr: 24,
      serverAddr: 40,
      ifindex: 56,
      payloadLen: 60,
      origLen: 62,
    },
  },
  loss: {
    size: 96,
    offsets: {
      realtimeNs: 0,
      kernelEvents: 8,
      ringbufDrops: 16,
      udpDeduped: 24,
      stackErrors: 32,
      dnsPackets: 40,
      dnsSocketDrops: 48,
      dnsTruncated: 56,
      dnsBadPackets: 64,
      dnsTcpSkipped: 72,
      framesWritten: 80,
      bytesWritten: 88,
    },
  },
  exit: {
    size: 48,
    offsets: { bootNs: 0, realtimeNs: 8, procStartBootNs: 16, pid: 24, exitCode: 28, comm: 32 },
  },
  exec: {
    size: 104,
    offsets: {
      bootNs: 0,
      realtimeNs: 8,
      procStartBootNs: 16,
      pid: 24,
      oldTid: 28,
      ppid: 32,
      uid: 36,
      gid: 40,
      exeDev: 44,
      exeIno: 48,
      ctimeNs: 56,
      nlink: 64,
      flags: 68,
      imageFd: 72,
      imageErrno: 76,
      pathLen: 80,
      argsLen: 82,
      comm: 84,
      reserved: 100,
    },
  },
});

/** Body size of a CONNECT of revision 1.0 (before the kernel verdict was appended): still accepted. */
export const CONNECT_V1_SIZE = 528;

// ---- records ----------------------------------------------------------------

export interface Endpoint {
  ip: string;
  port: number;
}

export interface HelperCapabilities {
  tcp4: boolean;
  tcp6: boolean;
  udp4: boolean;
  udp6: boolean;
  dns: boolean;
  dnsTcp: boolean;
  exit: boolean;
  stackScan: boolean;
  /** EXEC records (and running processes seeded at start). */
  exec: boolean;
  /** Stack frames judged in the kernel (bpf_find_vma, 5.17+). */
  findVma: boolean;
  /** The helper holds an fd of each exec'd image. */
  imageFds: boolean;
  /** It takes that fd as the exec opens the file (fanotify), so a process gone at once still has its image. */
  execFiles: boolean;
}

/** First frame of every stream: what this helper run captures. */
export interface RawHello {
  type: 'hello';
  seq: number;
  protocolVersion: number;
  helperPid: number;
  /** CLOCK_REALTIME - CLOCK_BOOTTIME when the stream started. */
  bootToRealtimeNs: bigint;
  stackFrames: number;
  stackScanWords: number;
  udpDedupMs: number;
  flags: number;
  capabilities: HelperCapabilities;
  maxStackFrames: number;
  dnsMaxPayload: number;
  kernelRelease: string;
  helperVersion: string;
}

export type ConnectKind = 'tcp-connect' | 'udp-connect' | 'udp-send';

export type VmaKind = 'unchecked' | 'none' | 'noexec' | 'file' | 'libc' | 'anon' | 'memfd' | 'deleted' | 'special';

const VMA_KINDS: readonly VmaKind[] = ['unchecked', 'none', 'noexec', 'file', 'libc', 'anon', 'memfd', 'deleted', 'special'];

/** What the kernel concluded at the connect (absent without bpf_find_vma). */
export interface KernelVerdict {
  verdict: 'clean' | 'frame' | 'return' | 'undecided';
  /** The offending address, its mapping's kind and file name, and where it was (stack[i] or scan[i]). */
  offending: { addr: bigint; kind: VmaKind; name: string; index: number } | null;
  frameKinds: VmaKind[];
  scanKinds: VmaKind[];
}

/** One outbound attempt, captured in the connecting thread. */
export interface RawConnect {
  type: 'connect';
  seq: number;
  /** Epoch milliseconds (from realtimeNs). */
  timeMs: number;
  realtimeNs: bigint;
  bootNs: bigint;
  /** Thread group leader start, CLOCK_BOOTTIME ns: with pid, identifies the process across pid reuse. */
  processStartBootNs: bigint;
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  gid: number;
  /** The executable's inode as stat(2) of /proc/<pid>/exe reports it; null when unknown. */
  exe: { dev: number; ino: bigint } | null;
  comm: string;
  family: 4 | 6;
  protocol: 'tcp' | 'udp';
  kind: ConnectKind;
  /** Port 0 for TCP (chosen after the capture point) and for UDP sockets not bound yet. */
  local: Endpoint;
  remote: Endpoint;
  netnsInode: number;
  cgroupId: bigint;
  /** An in-kernel socket user: no user stack. */
  kernelThread: boolean;
  /** User stack, innermost first (frame-pointer unwinding). */
  stack: bigint[];
  /** 0, or the negative errno of bpf_get_stack. */
  stackError: number;
  userSp: bigint;
  /** Raw words from the user stack pointer upwards (may hold return addresses the unwinder missed). */
  stackScan: bigint[];
  /** The executable at the connect: a memfd, or unlinked. */
  exeMemfd: boolean;
  exeDeleted: boolean;
  /** Kernel stack verdict; null when not judged (old kernel, old helper, kernel thread). */
  kernel: KernelVerdict | null;
  /**
   * The tracer of the connecting thread (else its group leader) from the task,
   * null when not traced; undefined when the helper did not say (a 528-byte record).
   */
  tracer?: { pid: number; exeName: string; oddExe: boolean } | null;
}

/** A process image loaded (exec), or a process running when the helper started (seeded). */
export interface RawExec {
  type: 'exec';
  seq: number;
  timeMs: number;
  realtimeNs: bigint;
  bootNs: bigint;
  processStartBootNs: bigint;
  pid: number;
  oldTid: number;
  ppid: number;
  uid: number;
  gid: number;
  /** st_dev / st_ino of the image (as fs.stat reports them). */
  dev: number;
  ino: bigint;
  ctimeNs: bigint;
  nlink: number;
  memfd: boolean;
  /** No name on disk at exec (nlink 0, not a memfd). */
  deleted: boolean;
  seeded: boolean;
  /** The path the kernel resolved ("/memfd:<name>" for a memfd). */
  path: string;
  pathTruncated: boolean;
  /** Arguments (argv), possibly cut. */
  args: string[];
  /** fd number in the helper holding the image, or null; imageErrno says why not. */
  imageFd: number | null;
  imageErrno: number;
  comm: string;
}

/** One DNS message received from port 53, undecoded. */
export interface RawDns {
  type: 'dns';
  seq: number;
  timeMs: number;
  realtimeNs: bigint;
  bootNs: bigint;
  family: 4 | 6;
  transport: 'udp' | 'tcp';
  /** Payload cut short (over the size bound, an IP fragment, or a short capture). */
  truncated: boolean;
  /** The asking side (this host). */
  client: Endpoint;
  /** The DNS server that answered. */
  server: Endpoint;
  ifindex: number;
  payload: Uint8Array;
  originalLength: number;
}

/** Cumulative counters of the helper since it started. */
export interface RawLoss {
  type: 'loss';
  seq: number;
  timeMs: number;
  kernelEvents: number;
  ringbufDrops: number;
  udpDeduped: number;
  stackErrors: number;
  dnsPackets: number;
  dnsSocketDrops: number;
  dnsTruncated: number;
  dnsBadPackets: number;
  dnsTcpSkipped: number;
  framesWritten: number;
  bytesWritten: number;
}

/** A process that had a CONNECT reported has exited. */
export interface RawExit {
  type: 'exit';
  seq: number;
  timeMs: number;
  realtimeNs: bigint;
  bootNs: bigint;
  processStartBootNs: bigint;
  pid: number;
  exitCode: number;
  comm: string;
}

export type RawRecord = RawHello | RawConnect | RawDns | RawLoss | RawExit | RawExec;

// ---- helpers ------------------------------------------------------------------

/** Text form of a 4- or 16-byte network-order address (RFC 5952 for IPv6). */
export function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
  // ::ffff:a.b.c.d
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes[12] ?? 0}.${bytes[13] ?? 0}.${bytes[14] ?? 0}.${bytes[15] ?? 0}`;
  }
  return formatIpv6(bytes);
}

/**
 * The kernel's dev_t encoding (major << 20 | minor) of rc_connect.exe_dev as
 * user space's st_dev (what fs.stat() reports as `dev`).
 */
export function kernelDevToStatDev(kdev: number): number {
  const major = kdev >>> 20;
  const minor = kdev & 0xfffff;
  return (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + Math.floor(major / 0x1000) * 2 ** 32;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.subarray(0, end < 0 ? bytes.length : end)).toString('utf8');
}

function timeMsOf(realtimeNs: bigint): number {
  return Number(realtimeNs / 1_000_000n);
}

function familyOf(code: number): 4 | 6 | null {
  if (code === AF_INET) return 4;
  if (code === AF_INET6) return 6;
  return null;
}

function capabilitiesOf(flags: number): HelperCapabilities {
  return {
    tcp4: (flags & HelloFlag.tcp4) !== 0,
    tcp6: (flags & HelloFlag.tcp6) !== 0,
    udp4: (flags & HelloFlag.udp4) !== 0,
    udp6: (flags & HelloFlag.udp6) !== 0,
    dns: (flags & HelloFlag.dns) !== 0,
    dnsTcp: (flags & HelloFlag.dnsTcp) !== 0,
    exit: (flags & HelloFlag.exit) !== 0,
    stackScan: (flags & HelloFlag.stackScan) !== 0,
    exec: (flags & HelloFlag.exec) !== 0,
    findVma: (flags & HelloFlag.findVma) !== 0,
    imageFds: (flags & HelloFlag.imageFds) !== 0,
    execFiles: (flags & HelloFlag.execFiles) !== 0,
  };
}

const KIND_NAMES: Record<number, ConnectKind> = {
  [ConnectKindCode.tcpConnect]: 'tcp-connect',
  [ConnectKindCode.udpConnect]: 'udp-connect',
  [ConnectKindCode.udpSend]: 'udp-send',
};

// ---- body decoders -------------------------------------------------------------

/** Why a frame's body was rejected. */
export type BodyError = { problem: 'short-record' | 'bad-value'; message: string };

type BodyResult<T> = T | BodyError;

function isBodyError<T>(r: BodyResult<T>): r is BodyError {
  return typeof r === 'object' && r !== null && 'problem' in r;
}

function short(name: string, have: number, want: number): BodyError {
  return { problem: 'short-record', message: `${name} body of ${have} bytes, at least ${want} expected` };
}

export function decodeHello(b: Buffer, seq: number): BodyResult<RawHello> {
  const L = LAYOUT.hello;
  if (b.length < L.size) return short('HELLO', b.length, L.size);
  const o = L.offsets;
  const flags = b.readUInt32LE(o.flags);
  return {
    type: 'hello',
    seq,
    protocolVersion: b.readUInt32LE(o.protocolVersion),
    helperPid: b.readUInt32LE(o.helperPid),
    bootToRealtimeNs: b.readBigInt64LE(o.bootToRealtimeNs),
    stackFrames: b.readUInt32LE(o.stackFrames),
    stackScanWords: b.readUInt32LE(o.stackScanWords),
    udpDedupMs: b.readUInt32LE(o.udpDedupMs),
    flags,
    capabilities: capabilitiesOf(flags),
    maxStackFrames: b.readUInt32LE(o.maxStackFrames),
    dnsMaxPayload: b.readUInt32LE(o.dnsMaxPayload),
    kernelRelease: cString(b.subarray(o.kernelRelease, o.kernelRelease + 64)),
    helperVersion: cString(b.subarray(o.helperVersion, o.helperVersion + 24)),
  };
}

export function decodeConnect(b: Buffer, seq: number): BodyResult<RawConnect> {
  const L = LAYOUT.connect;
  if (b.length < CONNECT_V1_SIZE) return short('CONNECT', b.length, CONNECT_V1_SIZE);
  const o = L.offsets;
  const family = familyOf(b.readUInt16LE(o.family));
  if (family === null) return { problem: 'bad-value', message: `CONNECT family ${b.readUInt16LE(o.family)}` };
  const protoCode = b.readUInt8(o.protocol);
  if (protoCode !== IPPROTO_TCP && protoCode !== IPPROTO_UDP) {
    return { problem: 'bad-value', message: `CONNECT protocol ${protoCode}` };
  }
  const kind = KIND_NAMES[b.readUInt8(o.kind)];
  if (kind === undefined) return { problem: 'bad-value', message: `CONNECT kind ${b.readUInt8(o.kind)}` };
  const addrLen = family === 4 ? 4 : 16;
  const stackCount = Math.min(b.readUInt16LE(o.stackCount), WIRE.maxStackFrames);
  const scanCount = Math.min(b.readUInt16LE(o.scanCount), WIRE.stackScanWords);
  const stack: bigint[] = [];
  for (let i = 0; i < stackCount; i++) stack.push(b.readBigUInt64LE(o.stack + 8 * i));
  const stackScan: bigint[] = [];
  for (let i = 0; i < scanCount; i++) stackScan.push(b.readBigUInt64LE(o.scan + 8 * i));
  const exeIno = b.readBigUInt64LE(o.exeIno);
  const realtimeNs = b.readBigUInt64LE(o.realtimeNs);
  const flags = b.readUInt32LE(o.flags);
  const extended = b.length >= L.size;
  let kernel: KernelVerdict | null = null;
  if (extended && (flags & ConnectFlag.judged) !== 0) {
    const v = b.readUInt8(o.verdict);
    const verdict =
      v === VerdictCode.frame ? 'frame' : v === VerdictCode.return ? 'return' : v === VerdictCode.undecided ? 'undecided' : 'clean';
    const kinds = (at: number, n: number): VmaKind[] => {
      const out: VmaKind[] = [];
      for (let i = 0; i < n; i++) out.push(VMA_KINDS[b.readUInt8(at + i)] ?? 'unchecked');
      return out;
    };
    kernel = {
      verdict,
      offending:
        verdict === 'frame' || verdict === 'return'
          ? {
              addr: b.readBigUInt64LE(o.offendingAddr),
              kind: VMA_KINDS[b.readUInt8(o.offendingKind)] ?? 'unchecked',
              name: cString(b.subarray(o.offendingName, o.offendingName + 32)),
              index: b.readUInt16LE(o.offendingIndex),
            }
          : null,
      frameKinds: kinds(o.frameKind, stackCount),
      scanKinds: kinds(o.scanKind, scanCount),
    };
  }
  const tracerPid = extended ? b.readUInt32LE(o.tracerPid) : 0;
  return {
    type: 'connect',
    seq,
    timeMs: timeMsOf(realtimeNs),
    realtimeNs,
    bootNs: b.readBigUInt64LE(o.bootNs),
    processStartBootNs: b.readBigUInt64LE(o.procStartBootNs),
    pid: b.readUInt32LE(o.pid),
    tid: b.readUInt32LE(o.tid),
    ppid: b.readUInt32LE(o.ppid),
    uid: b.readUInt32LE(o.uid),
    gid: b.readUInt32LE(o.gid),
    exe: exeIno === 0n ? null : { dev: kernelDevToStatDev(b.readUInt32LE(o.exeDev)), ino: exeIno },
    comm: cString(b.subarray(o.comm, o.comm + WIRE.commLen)),
    family,
    protocol: protoCode === IPPROTO_TCP ? 'tcp' : 'udp',
    kind,
    local: { ip: formatAddress(family, b.subarray(o.localAddr, o.localAddr + addrLen)), port: b.readUInt16LE(o.localPort) },
    remote: {
      ip: formatAddress(family, b.subarray(o.remoteAddr, o.remoteAddr + addrLen)),
      port: b.readUInt16LE(o.remotePort),
    },
    netnsInode: b.readUInt32LE(o.netnsIno),
    cgroupId: b.readBigUInt64LE(o.cgroupId),
    kernelThread: (flags & ConnectFlag.kernelThread) !== 0,
    stack,
    stackError: b.readInt32LE(o.stackErr),
    userSp: b.readBigUInt64LE(o.userSp),
    stackScan,
    exeMemfd: (flags & ConnectFlag.exeMemfd) !== 0,
    exeDeleted: (flags & ConnectFlag.exeDeleted) !== 0,
    kernel,
    ...(extended
      ? {
          tracer:
            tracerPid === 0
              ? null
              : {
                  pid: tracerPid,
                  exeName: cString(b.subarray(o.tracerExe, o.tracerExe + 32)),
                  oddExe: (flags & ConnectFlag.tracerOddExe) !== 0,
                },
        }
      : {}),
  };
}

export function decodeExec(b: Buffer, seq: number): BodyResult<RawExec> {
  const L = LAYOUT.exec;
  if (b.length < L.size) return short('EXEC', b.length, L.size);
  const o = L.offsets;
  const pathLen = b.readUInt16LE(o.pathLen);
  const argsLen = b.readUInt16LE(o.argsLen);
  if (L.size + pathLen + argsLen > b.length) return short('EXEC', b.length, L.size + pathLen + argsLen);
  const flags = b.readUInt32LE(o.flags);
  const fd = b.readInt32LE(o.imageFd);
  const realtimeNs = b.readBigUInt64LE(o.realtimeNs);
  const argsText = b.subarray(L.size + pathLen, L.size + pathLen + argsLen).toString('utf8');
  const args = argsText.split('\0');
  if (args.length > 0 && args[args.length - 1] === '') args.pop();
  return {
    type: 'exec',
    seq,
    timeMs: timeMsOf(realtimeNs),
    realtimeNs,
    bootNs: b.readBigUInt64LE(o.bootNs),
    processStartBootNs: b.readBigUInt64LE(o.procStartBootNs),
    pid: b.readUInt32LE(o.pid),
    oldTid: b.readUInt32LE(o.oldTid),
    ppid: b.readUInt32LE(o.ppid),
    uid: b.readUInt32LE(o.uid),
    gid: b.readUInt32LE(o.gid),
    dev: kernelDevToStatDev(b.readUInt32LE(o.exeDev)),
    ino: b.readBigUInt64LE(o.exeIno),
    ctimeNs: b.readBigInt64LE(o.ctimeNs),
    nlink: b.readUInt32LE(o.nlink),
    memfd: (flags & ExecFlag.memfd) !== 0,
    deleted: (flags & ExecFlag.deleted) !== 0,
    seeded: (flags & ExecFlag.seeded) !== 0,
    path: b.subarray(L.size, L.size + pathLen).toString('utf8'),
    pathTruncated: (flags & ExecFlag.pathTruncated) !== 0,
    args,
    imageFd: fd >= 0 ? fd : null,
    imageErrno: b.readInt32LE(o.imageErrno),
    comm: cString(b.subarray(o.comm, o.comm + WIRE.commLen)),
  };
}

export function decodeDns(b: Buffer, seq: number): BodyResult<RawDns> {
  const L = LAYOUT.dns;
  if (b.length < L.size) return short('DNS', b.length, L.size);
  const o = L.offsets;
  const family = familyOf(b.readUInt16LE(o.family));
  if (family === null) return { problem: 'bad-value', message: `DNS family ${b.readUInt16LE(o.family)}` };
  const transport = b.readUInt8(o.transport);
  if (transport !== IPPROTO_UDP && transport !== IPPROTO_TCP) {
    return { problem: 'bad-value', message: `DNS transport ${transport}` };
  }
  const payloadLen = b.readUInt16LE(o.payloadLen);
  if (L.size + payloadLen > b.length) return short('DNS', b.length, L.size + payloadLen);
  const addrLen = family === 4 ? 4 : 16;
  const realtimeNs = b.readBigUInt64LE(o.realtimeNs);
  return {
    type: 'dns',
    seq,
    timeMs: timeMsOf(realtimeNs),
    realtimeNs,
    bootNs: b.readBigUInt64LE(o.bootNs),
    family,
    transport: transport === IPPROTO_UDP ? 'udp' : 'tcp',
    truncated: (b.readUInt8(o.flags) & DnsFlag.truncated) !== 0,
    client: { ip: formatAddress(family, b.subarray(o.clientAddr, o.clientAddr + addrLen)), port: b.readUInt16LE(o.clientPort) },
    server: { ip: formatAddress(family, b.subarray(o.serverAddr, o.serverAddr + addrLen)), port: b.readUInt16LE(o.serverPort) },
    ifindex: b.readUInt32LE(o.ifindex),
    // A copy: the decoder's buffer is reused.
    payload: Uint8Array.prototype.slice.call(b, L.size, L.size + payloadLen),
    originalLength: b.readUInt16LE(o.origLen),
  };
}

export function decodeLoss(b: Buffer, seq: number): BodyResult<RawLoss> {
  const L = LAYOUT.loss;
  if (b.length < L.size) return short('LOSS', b.length, L.size);
  const o = L.offsets;
  const n = (off: number): number => Number(b.readBigUInt64LE(off));
  return {
    type: 'loss',
    seq,
    timeMs: timeMsOf(b.readBigUInt64LE(o.realtimeNs)),
    kernelEvents: n(o.kernelEvents),
    ringbufDrops: n(o.ringbufDrops),
    udpDeduped: n(o.udpDeduped),
    stackErrors: n(o.stackErrors),
    dnsPackets: n(o.dnsPackets),
    dnsSocketDrops: n(o.dnsSocketDrops),
    dnsTruncated: n(o.dnsTruncated),
    dnsBadPackets: n(o.dnsBadPackets),
    dnsTcpSkipped: n(o.dnsTcpSkipped),
    framesWritten: n(o.framesWritten),
    bytesWritten: n(o.bytesWritten),
  };
}

export function decodeExit(b: Buffer, seq: number): BodyResult<RawExit> {
  const L = LAYOUT.exit;
  if (b.length < L.size) return short('EXIT', b.length, L.size);
  const o = L.offsets;
  const realtimeNs = b.readBigUInt64LE(o.realtimeNs);
  return {
    type: 'exit',
    seq,
    timeMs: timeMsOf(realtimeNs),
    realtimeNs,
    bootNs: b.readBigUInt64LE(o.bootNs),
    processStartBootNs: b.readBigUInt64LE(o.procStartBootNs),
    pid: b.readUInt32LE(o.pid),
    exitCode: b.readInt32LE(o.exitCode),
    comm: cString(b.subarray(o.comm, o.comm + WIRE.commLen)),
  };
}

const BODY_DECODERS: Record<number, (b: Buffer, seq: number) => BodyResult<RawRecord>> = {
  [RecordType.hello]: decodeHello,
  [RecordType.connect]: decodeConnect,
  [RecordType.dns]: decodeDns,
  [RecordType.loss]: decodeLoss,
  [RecordType.exit]: decodeExit,
  [RecordType.exec]: decodeExec,
};

// ---- stream decoder ----------------------------------------------------------------

export type DecodeProblemCode = 'bad-magic' | 'bad-length' | 'unsupported-version' | 'short-record' | 'bad-value' | 'truncated-stream';

export interface DecodeProblem {
  code: DecodeProblemCode;
  message: string;
  /** Byte offset in the stream where the problem starts. */
  offset: number;
}

export interface DecoderStats {
  /** Well-framed frames seen (known or not). */
  framesTotal: number;
  recordsTotal: number;
  /** Frames of a record type this decoder does not know: skipped. */
  unknownTypesTotal: number;
  /** Garbage (bad magic or length), bad bodies, other protocol versions, a stream cut mid-frame. */
  decodeErrorsTotal: number;
  /** Bytes thrown away while looking for the next frame. */
  bytesSkippedTotal: number;
  /** Frames missing according to the sequence numbers. */
  seqGapsTotal: number;
}

const MAGIC_BYTES = Buffer.from([0x52, 0x43, 0x45, 0x56]);

/**
 * Turns a byte stream into records. Feed it chunks as they come; frames may be
 * split anywhere. A bad magic or impossible length counts one decode error
 * and the decoder resynchronises on the next magic; a frame whose body does
 * not decode counts one decode error and is skipped; an unknown record type
 * is counted and skipped.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  /** Stream offset of pending[0]. */
  private base = 0;
  private expectedSeq: number | null = null;
  /** Inside a run of garbage: count it once. */
  private resyncing = false;
  private readonly counters: DecoderStats = {
    framesTotal: 0,
    recordsTotal: 0,
    unknownTypesTotal: 0,
    decodeErrorsTotal: 0,
    bytesSkippedTotal: 0,
    seqGapsTotal: 0,
  };

  constructor(private readonly onProblem?: (p: DecodeProblem) => void) {}

  push(chunk: Uint8Array): RawRecord[] {
    const incoming = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const buf = this.pending.length === 0 ? incoming : Buffer.concat([this.pending, incoming]);
    const out: RawRecord[] = [];
    const H = WIRE.frameHeaderSize;
    let off = 0;

    while (buf.length - off >= H) {
      if (buf.readUInt32LE(off) !== WIRE.magic) {
        off = this.skipToMagic(buf, off, 'bad-magic', 'no frame magic');
        continue;
      }
      const length = buf.readUInt32LE(off + 8);
      if (length < H || length > WIRE.maxFrameSize) {
        off = this.skipToMagic(buf, off + 1, 'bad-length', `frame length ${length}`, off);
        continue;
      }
      if (buf.length - off < length) break; // wait for the rest of the frame
      this.resyncing = false;
      this.counters.framesTotal++;
      const version = buf.readUInt16LE(off + 4);
      const type = buf.readUInt16LE(off + 6);
      const seq = buf.readUInt32LE(off + 12);
      this.trackSeq(type, seq);
      const frameOffset = this.base + off;
      const body = buf.subarray(off + H, off + length);
      off += length;

      if (version !== WIRE.protocolVersion) {
        this.problem('unsupported-version', `frame of protocol version ${version}, ${WIRE.protocolVersion} expected`, frameOffset);
        continue;
      }
      const decode = BODY_DECODERS[type];
      if (decode === undefined) {
        this.counters.unknownTypesTotal++;
        continue;
      }
      const rec = decode(body, seq);
      if (isBodyError(rec)) {
        this.problem(rec.problem, rec.message, frameOffset);
        continue;
      }
      this.counters.recordsTotal++;
      out.push(rec);
    }

    // Keep the unread tail (a copy: the caller may reuse its chunk).
    this.base += off;
    this.pending = off === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(off));
    return out;
  }

  /** The stream ended: a partial frame left over is one decode error. Returns the bytes lost. */
  end(): number {
    const left = this.pending.length;
    if (left > 0) {
      this.problem('truncated-stream', `stream ended inside a frame (${left} bytes)`, this.base);
      this.counters.bytesSkippedTotal += left;
      this.base += left;
      this.pending = Buffer.alloc(0);
    }
    this.resyncing = false;
    this.expectedSeq = null;
    return left;
  }

  stats(): DecoderStats {
    return { ...this.counters };
  }

  private trackSeq(type: number, seq: number): void {
    // HELLO starts a new stream (a restarted helper) at 0.
    if (type === RecordType.hello || this.expectedSeq === null) {
      this.expectedSeq = (seq + 1) >>> 0;
      return;
    }
    if (seq !== this.expectedSeq) {
      const missing = (seq - this.expectedSeq) >>> 0;
      // A jump backwards is a new stream without HELLO seen: not a gap.
      if (missing < 0x80000000) this.counters.seqGapsTotal += missing;
    }
    this.expectedSeq = (seq + 1) >>> 0;
  }

  /** Skip to the next magic at or after `from`; keeps a possible partial magic at the end. */
  private skipToMagic(buf: Buffer, from: number, code: DecodeProblemCode, message: string, at = from): number {
    if (!this.resyncing) {
      this.resyncing = true;
      this.problem(code, message, this.base + at);
    }
    const next = buf.indexOf(MAGIC_BYTES, from);
    let to: number;
    if (next >= 0) {
      to = next;
    } else {
      // The last 3 bytes may be the start of a magic split across chunks.
      to = Math.max(from, buf.length - (MAGIC_BYTES.length - 1));
    }
    this.counters.bytesSkippedTotal += to - at;
    return to;
  }

  private problem(code: DecodeProblemCode, message: string, offset: number): void {
    this.counters.decodeErrorsTotal++;
    this.onProblem?.({ code, message, offset });
  }
}
