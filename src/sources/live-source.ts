// The live source: the eBPF helper where it can run, else /proc polling. The
// choice and its reason are kept for the log and `rarecon status`.
import type { HostRef } from '../model/records.js';
import type { SourceConfig } from '../config/defaults.js';
import type { Logger } from '../common/logger.js';
import type { LiveSource } from './source.js';
import { HelperProcess, defaultHelperPath, type HelperLogEntry } from './ebpf/helper-process.js';
import { ebpfSource } from './ebpf/ebpf-source.js';
import { FALLBACK_MISSES } from './procfs/procfs-poll.js';
import { procfsSource } from './procfs/procfs-source.js';

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
