// The one interface of a live source (the eBPF helper, /proc polling): a
// stream of connections and DNS answers, a readiness promise, counters and a
// shutdown. File replay (replay/) is read another way on purpose: offline
// scoring pulls records in batches, which is what makes it fast.
import type { DnsAnswer, Protocol } from '../model/records.js';

/** One outbound connection as a source saw it, before enrichment. */
export interface LiveConnect {
  kind: 'connect';
  timeMs: number;
  pid: number;
  tid: number | null;
  uid: number | null;
  protocol: Protocol;
  localIp: string | null;
  localPort: number | null;
  remoteIp: string;
  remotePort: number;
  /** User stack of the connecting thread, innermost first (eBPF only). */
  stack: bigint[];
  stackScan: bigint[];
  /** CLOCK_BOOTTIME ns of the process start (eBPF only): guards against pid reuse. */
  processStartBootNs: bigint | null;
  /** The executable's (device, inode) (eBPF only): finds the image when the process is gone. */
  exe: { dev: number; ino: bigint } | null;
  /** The image as the helper's EXEC record saw it (eBPF only; absent or null when no EXEC was seen for the process). */
  image?: ExecImage | null;
  /** The kernel's verdict on the stack at the connect (eBPF with bpf_find_vma); null or absent: judge from /proc. */
  kernel?: KernelStackVerdict | null;
  /** The tracer of the connecting thread read from the task at the connect: null when not traced; absent when the source did not say. */
  tracer?: { pid: number; exeName: string; oddExe: boolean } | null;
  /** The executable at the connect is a memfd / has no name on disk (the kernel's view; eBPF only). */
  exeMemfd?: boolean;
  exeDeleted?: boolean;
}

/** A process image from its exec (or from /proc when the helper started): what stays known after the process is gone. */
export interface ExecImage {
  /** The path the kernel resolved at exec ("/memfd:<name>" for a memfd). */
  path: string;
  dev: number;
  ino: bigint;
  memfd: boolean;
  /** No name on disk at exec. */
  deleted: boolean;
  /** What opens the image the helper holds (its /proc/<helper>/fd/<n>); null when it holds none. */
  heldPath: string | null;
  args: string[];
  uid: number;
  ppid: number;
}

/** rc_connect's verdict: 'frame'/'return' name the offending address and its mapping. */
export interface KernelStackVerdict {
  verdict: 'clean' | 'frame' | 'return' | 'undecided';
  offending: { addr: bigint; kind: string; name: string } | null;
}

export type LiveRecord = LiveConnect | { kind: 'dns'; answer: DnsAnswer };

export interface LiveSourceStats {
  name: 'ebpf' | 'procfs_poll';
  reason: string;
  misses: string | null;
  receivedTotal: number;
  droppedTotal: number;
  decodeErrorsTotal: number;
  kernelDropsTotal: number;
  udpDedupedTotal: number;
  dnsPacketsTotal: number;
  dnsMalformedTotal: number;
  helperRestartsTotal: number;
}

/** A source's counters before it saw anything; a source fills in what it counts. */
export function zeroSourceStats(name: LiveSourceStats['name'], reason: string): LiveSourceStats {
  return {
    name,
    reason,
    misses: null,
    receivedTotal: 0,
    droppedTotal: 0,
    decodeErrorsTotal: 0,
    kernelDropsTotal: 0,
    udpDedupedTotal: 0,
    dnsPacketsTotal: 0,
    dnsMalformedTotal: 0,
    helperRestartsTotal: 0,
  };
}

export interface LiveSource {
  readonly name: 'ebpf' | 'procfs_poll';
  readonly reason: string;
  run(signal: AbortSignal): AsyncIterable<LiveRecord>;
  /**
   * Settles once run() is capturing: the helper's HELLO (sent after its
   * programs are attached), or the first /proc poll (the snapshot later polls
   * are compared with). Rejects when the source ends before that.
   */
  readonly ready: Promise<void>;
  stats(): LiveSourceStats;
  shutdown(): Promise<void>;
}

/** A promise settled from outside, for LiveSource.ready. */
export function readiness(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // also observed by whoever awaits it
  return { promise, resolve, reject };
}
