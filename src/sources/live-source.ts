// The live source: the eBPF helper where it can run, else /proc polling. The
// choice and its reason are kept for the log and `rarecon status`.
import type { HostRef } from '../model/records.js';
import type { SourceConfig } from '../config/defaults.js';
import type { Logger } from '../common/logger.js';
import { readiness, type LiveSource } from './source.js';
import { HelperProcess, HelperUnavailableError, defaultHelperPath, type HelperLogEntry } from './ebpf/helper-process.js';
import { ebpfSource } from './ebpf/ebpf-source.js';
import { FALLBACK_MISSES } from './procfs/procfs-poll.js';
import { procfsSource } from './procfs/procfs-source.js';

/**
 * Picks the source per config; `auto` tries the helper first and says why it fell back. The helper is
 * started here, before the rest of the daemon opens: its programs load meanwhile (the longest part of
 * start-up) and what it captures waits in its queue until the pipeline reads it.
 */
export async function openLiveSource(cfg: SourceConfig, host: HostRef, log: Logger): Promise<LiveSource> {
  if (cfg.kind === 'procfs') return procfsSource(cfg, 'configured: source.kind is procfs');
  const helper = new HelperProcess({
    binaryPath: cfg.helperPath ?? defaultHelperPath(),
    udpDedupMs: cfg.udpDedupMs,
    stackFrames: cfg.stackFrames,
    maxQueuedRecords: cfg.queueMaxEvents,
    onLog: (e: HelperLogEntry) => log[e.level](`eBPF helper: ${e.message}`),
  });
  // The quick checks only (binary, privilege, BTF): the helper's own start is the deep check, so the
  // programs are loaded once, not once by `--check` and again for real.
  const probe = await helper.probe();
  if (!probe.ok) {
    const why = `the eBPF helper cannot run (${probe.code}: ${probe.reason})`;
    if (cfg.kind === 'ebpf') throw new Error(`${why}; source.kind is ebpf, so rarecon will not fall back to /proc polling`);
    log.warn(`Falling back to /proc polling because ${why}. It misses: ${FALLBACK_MISSES}`, { source: 'procfs_poll', probe: probe.code });
    return procfsSource(cfg, why);
  }
  helper.start();
  const ebpf = ebpfSource(helper, host, cfg.kind === 'ebpf' ? 'configured: source.kind is ebpf' : 'eBPF helper available');
  return untilCapturingOr(ebpf, cfg.kind === 'ebpf' ? null : (why) => procfsSource(cfg, why), log);
}

/**
 * The eBPF source, which falls back to /proc polling (`auto`) when the helper cannot run before it
 * captures (its programs do not load or attach), or with `ebpf` fails with the helper's reason.
 */
function untilCapturingOr(first: LiveSource, fallback: ((why: string) => LiveSource) | null, log: Logger): LiveSource {
  let current = first;
  let capturing = false;
  const ready = readiness();
  first.ready.then(
    () => {
      capturing = true;
      ready.resolve();
    },
    () => {},
  );
  return {
    get name() {
      return current.name;
    },
    get reason() {
      return current.reason;
    },
    ready: ready.promise,
    async *run(signal) {
      try {
        yield* first.run(signal);
      } catch (err) {
        if (signal.aborted || capturing || !(err instanceof HelperUnavailableError)) {
          ready.reject(err as Error);
          throw err;
        }
        const why = `the eBPF helper cannot run (${err.message})`;
        if (fallback === null) {
          const e = new Error(`${why}; source.kind is ebpf, so rarecon will not fall back to /proc polling`);
          ready.reject(e);
          throw e;
        }
        log.warn(`Falling back to /proc polling because ${why}. It misses: ${FALLBACK_MISSES}`, {
          source: 'procfs_poll',
          probe: 'helper-failed',
        });
        current = fallback(why);
        current.ready.then(ready.resolve, ready.reject);
        yield* current.run(signal);
      } finally {
        // A no-op once settled.
        ready.reject(new Error('the event source stopped before it was capturing'));
      }
    },
    stats: () => current.stats(),
    shutdown: () => current.shutdown(),
  };
}
