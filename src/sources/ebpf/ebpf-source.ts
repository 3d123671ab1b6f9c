// The eBPF helper as a live source: its connect records, with the image each
// process exec'd and the kernel's stack verdict, and the DNS answers parsed
// from the packets it captured.
import { BoundedCache } from '../../common/bounded-cache.js';
import type { HostRef } from '../../model/records.js';
import { readiness, type ExecImage, type KernelStackVerdict, type LiveRecord, type LiveSource } from '../source.js';
import type { HelperProcess } from './helper-process.js';
import { DnsResponseParser } from './dns-packet.js';
import type { KernelVerdict, RawConnect, RawExec, RawLoss } from './wire.js';

/**
 * Processes whose exec'd image is remembered (the helper holds 4,096 images by default; a process still
 * running can be read from /proc anyway). The oldest exec is forgotten first.
 */
export const EXEC_TABLE_ENTRIES = 16_384;

/**
 * The image of each process instance (pid + start time) from its EXEC record, so a connection of a process
 * that is gone by the time it is enriched still has its path and a way to the bytes it ran.
 */
export class ExecTable {
  // Oldest exec evicted first; a lookup does not refresh it (peek), so the order stays the order of the execs.
  private readonly byProcess: BoundedCache<string, ExecImage>;
  private helperPid: number | null = null;

  constructor(maxEntries = EXEC_TABLE_ENTRIES) {
    this.byProcess = new BoundedCache({ maxEntries });
  }

  /** A new helper run: the fds of the last one are closed, and it seeds the running processes again. */
  hello(helperPid: number): void {
    this.helperPid = helperPid;
    this.byProcess.clear();
  }

  exec(r: RawExec): void {
    this.byProcess.set(`${r.pid}:${r.processStartBootNs}`, {
      path: r.path,
      dev: r.dev,
      ino: r.ino,
      memfd: r.memfd,
      deleted: r.deleted,
      heldPath: r.imageFd === null || this.helperPid === null ? null : `/proc/${this.helperPid}/fd/${r.imageFd}`,
      args: r.args,
      uid: r.uid,
      ppid: r.ppid,
    });
  }

  /** Its connections were already handed out with their image. */
  exit(pid: number, processStartBootNs: bigint): void {
    this.byProcess.delete(`${pid}:${processStartBootNs}`);
  }

  /** The image of the connecting process, when its EXEC was seen and names the same file the connect does. */
  imageOf(c: RawConnect): ExecImage | null {
    const img = this.byProcess.peek(`${c.pid}:${c.processStartBootNs}`);
    if (img === undefined) return null;
    if (c.exe !== null && (c.exe.dev !== img.dev || c.exe.ino !== img.ino)) return null;
    return img;
  }

  get size(): number {
    return this.byProcess.size;
  }
}

function stackVerdict(k: KernelVerdict | null): KernelStackVerdict | null {
  if (k === null) return null;
  return {
    verdict: k.verdict,
    offending: k.offending === null ? null : { addr: k.offending.addr, kind: k.offending.kind, name: k.offending.name },
  };
}

export function ebpfSource(helper: HelperProcess, host: HostRef, reason: string): LiveSource {
  const dns = new DnsResponseParser();
  let loss: RawLoss | null = null;
  const ready = readiness();
  const execs = new ExecTable();
  async function* records(signal: AbortSignal): AsyncGenerator<LiveRecord> {
    for await (const r of helper.records(signal)) {
      switch (r.type) {
        case 'hello':
          execs.hello(r.helperPid);
          ready.resolve();
          break;
        case 'exec':
          execs.exec(r);
          break;
        case 'exit':
          execs.exit(r.pid, r.processStartBootNs);
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
            image: execs.imageOf(r),
            kernel: stackVerdict(r.kernel),
            ...(r.tracer === undefined ? {} : { tracer: r.tracer }),
            exeMemfd: r.exeMemfd,
            exeDeleted: r.exeDeleted,
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
