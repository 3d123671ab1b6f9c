// Self-protection: the daemon samples its own CPU (and its helper's) and its
// resident memory; over budget it sheds the lowest-value work first rather
// than take the host's resources, counts every item it sheds by reason, and
// lifts the shedding once back under budget. At the hard memory limit it asks
// to exit so the service manager restarts it. Alerts already raised are never
// shed: they go to the outbox whatever the level.
import { readdirSync, readFileSync } from 'node:fs';
import type { WatchdogConfig } from '../config/defaults.js';
import type { Logger } from '../common/logger.js';

/**
 * Work the daemon may skip, in order of value (lowest first). Level 1 stops the
 * costly optional work; level 2 also samples connections before enrichment.
 */
export const SHED_LEVEL = {
  /** The stack-memory scan for injected code, for a process the baseline does not hold as common (it cannot alert). */
  injection_scan_ineligible: 1,
  /** UDP flow records of a process the baseline does not hold as common (a common one's may alert: kept). */
  udp_flow_not_common: 1,
  /** Sighting writes of a combo already written today. */
  sighting_repeat: 1,
  /** Connections of a process the baseline does not hold as common (they cannot alert; only their sightings are lost). */
  connection_not_common: 2,
  /**
   * Connections of a process not judged yet (neither it nor another process of the same image has been
   * enriched lately): one in `sampleOneIn` goes through. Connections of common processes are kept.
   */
  connection_sampled: 2,
} as const;
export type ShedReason = keyof typeof SHED_LEVEL;
export type ShedLevel = 0 | 1 | 2;

const LEVEL_TEXT: Record<ShedLevel, string> = {
  0: 'nothing shed',
  1: 'skips injection stack scans and UDP flow records of processes that are not common, and repeated sighting writes',
  2: 'skips injection stack scans of processes that are not common and repeated sighting writes, drops connections of processes that are not common and scores a sample of those not judged yet',
};

/** Recover only with headroom, so the level does not flap around the budget. */
const CPU_HEADROOM = 0.8;
const MEMORY_HEADROOM = 0.9;

export interface ResourceSample {
  atMs: number;
  /** CPU time used so far by the daemon and its children, microseconds (may drop when a child is replaced). */
  cpuMicros: number;
  /** Resident memory of the daemon and its children: what the host pays, checked against the hard limit. */
  rssBytes: number;
  /**
   * Memory in use: V8 heap in use, external buffers and the children's RSS. Checked against the soft
   * budget because it falls when work is shed; RSS keeps the high-water mark of the heap long after.
   */
  liveBytes: number;
}

export interface WatchdogStats {
  enabled: boolean;
  /** In the start-up grace: CPU is shown, not held against the budget. */
  startingUp: boolean;
  level: ShedLevel;
  shedding: string;
  /** What put it over budget at the last change up: cpu, memory or both. */
  overBudget: string | null;
  sinceMs: number;
  cpuPercent: number;
  rssBytes: number;
  liveBytes: number;
  budget: { cpuPercent: number; memoryBytes: number; hardMemoryBytes: number };
  shedTotal: number;
  shedByReason: Record<ShedReason, number>;
  levelChangesTotal: number;
}

export interface WatchdogOptions {
  sample: () => ResourceSample;
  log: Logger;
  /** Called once when resident memory reaches the hard limit. */
  onHardLimit: (rssBytes: number) => void;
  now?: () => number;
}

export class Watchdog {
  private cfg: WatchdogConfig;
  private levelNow: ShedLevel = 0;
  private last: ResourceSample | null = null;
  private underStreak = 0;
  private sampled = 0;
  private hardFired = false;
  private timer: NodeJS.Timeout | null = null;
  /** When start() first ran: the start-up grace counts from there. */
  private startedAtMs: number | null = null;
  private readonly now: () => number;
  private readonly st: {
    cpuPercent: number;
    rssBytes: number;
    liveBytes: number;
    sinceMs: number;
    overBudget: string | null;
    changes: number;
  };
  private readonly shedByReason: Record<ShedReason, number> = {
    injection_scan_ineligible: 0,
    udp_flow_not_common: 0,
    sighting_repeat: 0,
    connection_not_common: 0,
    connection_sampled: 0,
  };

  constructor(
    cfg: WatchdogConfig,
    private readonly opts: WatchdogOptions,
  ) {
    this.cfg = cfg;
    this.now = opts.now ?? Date.now;
    this.st = { cpuPercent: 0, rssBytes: 0, liveBytes: 0, sinceMs: this.now(), overBudget: null, changes: 0 };
  }

  get level(): ShedLevel {
    return this.levelNow;
  }

  start(): void {
    this.startedAtMs ??= this.now();
    if (!this.cfg.enabled || this.timer !== null) return;
    this.last = this.opts.sample();
    this.timer = setInterval(() => this.check(), this.cfg.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** New budgets (SIGHUP). The level stays; the next samples move it. */
  setConfig(cfg: WatchdogConfig): void {
    const restart = this.timer !== null && (cfg.intervalMs !== this.cfg.intervalMs || !cfg.enabled);
    this.cfg = cfg;
    if (!cfg.enabled && this.levelNow !== 0) this.change(0, null);
    if (restart || (cfg.enabled && this.timer === null)) {
      this.stop();
      this.start();
    }
  }

  /** Takes one sample and moves the level: up one step per sample over budget, down one after `recoverSamples` with headroom. */
  check(): void {
    const s = this.opts.sample();
    const prev = this.last;
    this.last = s;
    const wallMs = prev === null ? 0 : s.atMs - prev.atMs;
    if (wallMs > 0 && prev !== null) this.st.cpuPercent = (Math.max(0, s.cpuMicros - prev.cpuMicros) / (wallMs * 1000)) * 100;
    this.st.rssBytes = s.rssBytes;
    this.st.liveBytes = s.liveBytes;
    const c = this.cfg;
    if (!c.enabled) return;
    if (c.hardMemoryBytes > 0 && s.rssBytes >= c.hardMemoryBytes && !this.hardFired) {
      this.hardFired = true;
      this.opts.log.error('The daemon reached its hard memory limit; it exits so the service manager restarts it.', {
        rssBytes: s.rssBytes,
        hardMemoryBytes: c.hardMemoryBytes,
      });
      this.opts.onHardLimit(s.rssBytes);
      return;
    }
    // Start-up work is not the steady state the budget is for: shown, not acted on (memory still is).
    const overCpu = this.st.cpuPercent > c.cpuPercent && !(prev !== null && this.inGrace(prev.atMs));
    const overMem = s.liveBytes > c.memoryBytes;
    if (overCpu || overMem) {
      this.underStreak = 0;
      if (this.levelNow < 2)
        this.change((this.levelNow + 1) as ShedLevel, overCpu && overMem ? 'cpu and memory' : overCpu ? 'cpu' : 'memory');
      return;
    }
    const roomy = this.st.cpuPercent <= c.cpuPercent * CPU_HEADROOM && s.liveBytes <= c.memoryBytes * MEMORY_HEADROOM;
    if (!roomy || this.levelNow === 0) {
      this.underStreak = 0;
      return;
    }
    if (++this.underStreak >= c.recoverSamples) {
      this.underStreak = 0;
      this.change((this.levelNow - 1) as ShedLevel, this.st.overBudget);
    }
  }

  private change(level: ShedLevel, why: string | null): void {
    const up = level > this.levelNow;
    this.levelNow = level;
    this.st.sinceMs = this.now();
    this.st.changes++;
    if (up) this.st.overBudget = why;
    const fields = {
      shedLevel: level,
      shedding: LEVEL_TEXT[level],
      cpuPercent: Math.round(this.st.cpuPercent * 10) / 10,
      rssBytes: this.st.rssBytes,
      liveBytes: this.st.liveBytes,
      cpuBudgetPercent: this.cfg.cpuPercent,
      memoryBudgetBytes: this.cfg.memoryBytes,
      shedTotal: this.shedTotal(),
    };
    if (up) this.opts.log.warn(`The daemon is over its ${why ?? ''} budget; it sheds low-value work to spare the host.`, fields);
    else if (level > 0) this.opts.log.info('The daemon is closer to its budget; it sheds less.', fields);
    else this.opts.log.info('The daemon is back under its budget; nothing is shed any more.', fields);
  }

  private startingUp(): boolean {
    return this.inGrace(this.now());
  }

  /** Whether `atMs` falls in the start-up grace (a sample whose interval began there holds start-up work). */
  private inGrace(atMs: number): boolean {
    return this.startedAtMs !== null && atMs - this.startedAtMs < this.cfg.startupGraceMs;
  }

  /** True (and counted) when work of this kind is to be skipped now. */
  sheds(reason: ShedReason): boolean {
    if (this.levelNow < SHED_LEVEL[reason]) return false;
    this.shedByReason[reason]++;
    return true;
  }

  /** At level 2, true (and counted) for all but one connection in `sampleOneIn`. */
  samplesOut(): boolean {
    if (this.levelNow < SHED_LEVEL.connection_sampled) return false;
    if (this.sampled++ % this.cfg.sampleOneIn === 0) return false;
    this.shedByReason.connection_sampled++;
    return true;
  }

  private shedTotal(): number {
    return Object.values(this.shedByReason).reduce((a, b) => a + b, 0);
  }

  stats(): WatchdogStats {
    return {
      enabled: this.cfg.enabled,
      startingUp: this.startingUp(),
      level: this.levelNow,
      shedding: LEVEL_TEXT[this.levelNow],
      overBudget: this.levelNow === 0 ? null : this.st.overBudget,
      sinceMs: this.st.sinceMs,
      cpuPercent: this.st.cpuPercent,
      rssBytes: this.st.rssBytes,
      liveBytes: this.st.liveBytes,
      budget: { cpuPercent: this.cfg.cpuPercent, memoryBytes: this.cfg.memoryBytes, hardMemoryBytes: this.cfg.hardMemoryBytes },
      shedTotal: this.shedTotal(),
      shedByReason: { ...this.shedByReason },
      levelChangesTotal: this.st.changes,
    };
  }
}

const TICK_MICROS = 10_000; // USER_HZ is 100 on Linux: /proc reports CPU in 10 ms ticks.
const PAGE_BYTES = 4096;

function childPids(): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const text = readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      if (text !== '') for (const p of text.split(' ')) out.push(Number(p));
    }
  } catch {
    // Not Linux, or /proc/<pid>/task/*/children missing (CONFIG_PROC_CHILDREN): the daemon alone.
  }
  return out;
}

/** The daemon's CPU and RSS plus those of its live children (the eBPF helper). */
export function processSample(): ResourceSample {
  const cpu = process.cpuUsage();
  let cpuMicros = cpu.user + cpu.system;
  const mem = process.memoryUsage();
  let rssBytes = mem.rss;
  let liveBytes = mem.heapUsed + mem.external;
  for (const pid of childPids()) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 (utime, stime) and 24 (rss pages); f[0] is field 3.
      cpuMicros += (Number(f[11]) + Number(f[12])) * TICK_MICROS;
      const childRss = Number(f[21]) * PAGE_BYTES;
      rssBytes += childRss;
      liveBytes += childRss;
    } catch {
      // exited between the listing and the read
    }
  }
  return { atMs: Date.now(), cpuMicros, rssBytes, liveBytes };
}
