// /proc polling as a live source: the fallback where the eBPF helper cannot
// run (what it misses is FALLBACK_MISSES).
import type { SourceConfig } from '../../config/defaults.js';
import { readiness, zeroSourceStats, type LiveRecord, type LiveSource } from '../source.js';
import { FALLBACK_MISSES, ProcfsPollSource } from './procfs-poll.js';

export function procfsSource(cfg: SourceConfig, reason: string): LiveSource {
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
        ...zeroSourceStats('procfs_poll', reason),
        misses: FALLBACK_MISSES,
        receivedTotal: s.receivedTotal,
        droppedTotal: s.droppedTotal,
        decodeErrorsTotal: s.decodeErrorsTotal,
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
