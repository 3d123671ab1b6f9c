// The eBPF helper as a live source: its connect records, and the DNS answers
// parsed from the packets it captured.
import type { HostRef } from '../../model/records.js';
import { readiness, type LiveRecord, type LiveSource } from '../source.js';
import type { HelperProcess } from './helper-process.js';
import { DnsResponseParser } from './dns-packet.js';
import type { RawLoss } from './wire.js';

export function ebpfSource(helper: HelperProcess, host: HostRef, reason: string): LiveSource {
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
