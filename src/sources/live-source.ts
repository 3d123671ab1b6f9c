// The live source: the eBPF helper where it can run, else /proc polling.
// Both are turned into one stream of LiveConnect and DnsAnswer; the choice and
// its reason are kept for the log and `rarecon status`.
import type { DnsAnswer, HostRef, Protocol } from '../model/records.js';
import type { SourceConfig } from '../config/defaults.js';
import { HelperProcess, defaultHelperPath, type HelperLogEntry } from './ebpf/helper-process.js';
import { DnsResponseParser } from './ebpf/dns-packet.js';
import type { RawLoss } from './ebpf/wire.js';
import { FALLBACK_MISSES, ProcfsPollSource } from './procfs/procfs-poll.js';
import type { Logger } from '../common/logger.js';

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
function readiness(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // also observed by whoever awaits it
  return { promise, resolve, reject };
}

function ebpfSource(helper: HelperProcess, host: HostRef, reason: string): LiveSource {
  const dns = new DnsResponseParser();
  let loss: RawLoss | null = null;
  const ready = readiness();
  async function* records(signal: AbortSignal): AsyncGenerator<LiveRecord> {
    for await (const r of helper.records(signal)) {
      switch (r.type) {
        case 'hello':
          ready.resolve();
          break;
        case 'connect':
          if (r.kernelThread) continue;
          yield {
            kind: 'connect',
            timeMs: r.timeMs,
            pid: r.pid,
            tid: r.tid,
            uid: r.uid,
            protocol: r.protocol,
            localIp: r.local.port === 0 ? null : r.local.ip,
            localPort: r.local.port === 0 ? null : r.local.port,
            remoteIp: r.remote.ip,
            remotePort: r.remote.port,
            stack: r.stack,
            stackScan: r.stackScan,
            processStartBootNs: r.processStartBootNs,
            exe: r.exe,
          };
          break;
        case 'dns': {
          const parsed = dns.parse(r.payload, { allowTruncated: r.truncated });
          if (parsed.ok && parsed.value.answers.length > 0) {
            yield {
              kind: 'dns',
              answer: { type: 'dns', timeMs: r.timeMs, host, query: parsed.value.query, answers: parsed.value.answers },
            };
          }
          break;
        }
        case 'loss':
          loss = r;
          break;
        default:
          break;
      }
    }
  }
  return {
    name: 'ebpf',
    reason,
    ready: ready.promise,
    async *run(signal) {
      try {
        yield* records(signal);
      } catch (err) {
        ready.reject(err as Error);
        throw err;
      } finally {
        // A no-op once resolved.
        ready.reject(new Error('the eBPF helper stopped before it was capturing'));
      }
    },
    stats() {
      const h = helper.stats();
      const d = dns.stats();
      return {
        name: 'ebpf',
        reason,
        misses: null,
        receivedTotal: h.receivedTotal,
        droppedTotal: h.droppedTotal,
        decodeErrorsTotal: h.decodeErrorsTotal,
        kernelDropsTotal: h.kernelDropsTotal,
        udpDedupedTotal: h.udpDedupedTotal,
        dnsPacketsTotal: loss?.dnsPackets ?? 0,
        dnsMalformedTotal: Object.values(d.errorsTotal).reduce((a: number, b) => a + (b ?? 0), 0),
        helperRestartsTotal: h.restartsTotal,
      };
    },
    shutdown: () => helper.shutdown(),
  };
}

function procfsSource(cfg: SourceConfig, reason: string): LiveSource {
  const poll = new ProcfsPollSource({ intervalMs: cfg.pollIntervalMs, queueMax: cfg.queueMaxEvents, includeExistingAtStart: false });
  const ready = readiness();
  return {
    name: 'procfs_poll',
    reason,
    ready: ready.promise,
    async *run(signal) {
      // Connections open at the first poll are the snapshot, not reported: capture starts after it.
      const firstPoll = setInterval(() => {
        const st = poll.stats();
        // lastPollMs is set when a poll ends (0 before; a poll under 1 ms shows as the second one starting).
        if (st.lastPollMs > 0 || st.pollsTotal >= 2) {
          clearInterval(firstPoll);
          ready.resolve();
        }
      }, 10);
      try {
        yield* connections(signal);
      } finally {
        clearInterval(firstPoll);
        ready.reject(new Error('/proc polling stopped before its first poll'));
      }
    },
    stats() {
      const s = poll.stats();
      return {
        name: 'procfs_poll',
        reason,
        misses: FALLBACK_MISSES,
        receivedTotal: s.receivedTotal,
        droppedTotal: s.droppedTotal,
        decodeErrorsTotal: s.decodeErrorsTotal,
        kernelDropsTotal: 0,
        udpDedupedTotal: 0,
        dnsPacketsTotal: 0,
        dnsMalformedTotal: 0,
        helperRestartsTotal: 0,
      };
    },
    shutdown: async () => {},
  };

  async function* connections(signal: AbortSignal): AsyncGenerator<LiveRecord> {
    for await (const c of poll.run(signal)) {
      if (c.pid === null) continue;
      yield {
        kind: 'connect',
        timeMs: c.timeMs,
        pid: c.pid,
        tid: null,
        uid: c.uid,
        protocol: c.protocol,
        localIp: c.localIp,
        localPort: c.localPort,
        remoteIp: c.remoteIp,
        remotePort: c.remotePort,
        stack: [],
        stackScan: [],
        processStartBootNs: null,
        exe: null,
      };
    }
  }
}

/** Picks the source per config; `auto` tries the helper first and says why it fell back. */
export async function openLiveSource(cfg: SourceConfig, host: HostRef, log: Logger): Promise<LiveSource> {
  if (cfg.kind === 'procfs') return procfsSource(cfg, 'configured: source.kind is procfs');
  const helper = new HelperProcess({
    binaryPath: cfg.helperPath ?? defaultHelperPath(),
    udpDedupMs: cfg.udpDedupMs,
    stackFrames: cfg.stackFrames,
    maxQueuedRecords: cfg.queueMaxEvents,
    onLog: (e: HelperLogEntry) => log[e.level](`eBPF helper: ${e.message}`),
  });
  const probe = await helper.probe({ deep: true });
  if (probe.ok) return ebpfSource(helper, host, cfg.kind === 'ebpf' ? 'configured: source.kind is ebpf' : 'eBPF helper available');
  const why = `the eBPF helper cannot run (${probe.code}: ${probe.reason})`;
  if (cfg.kind === 'ebpf') throw new Error(`${why}; source.kind is ebpf, so rarecon will not fall back to /proc polling`);
  log.warn(`Falling back to /proc polling because ${why}. It misses: ${FALLBACK_MISSES}`, { source: 'procfs_poll', probe: probe.code });
  return procfsSource(cfg, why);
}
