// The watchdog's policy with an injected clock and sampler: what it sheds at
// each level, how it climbs and recovers, what it logs (once per change) and
// the hard memory limit.
import { describe, expect, it } from 'vitest';
import { DEFAULT_WATCHDOG, type WatchdogConfig } from '../../src/config/defaults.js';
import { memoryLogger } from '../../src/common/logger.js';
import { Watchdog, processSample, type ResourceSample } from '../../src/daemon/watchdog.js';

const MiB = 1024 * 1024;

/** A daemon whose CPU use (percent of a core) and RSS the test sets before each check. */
function rig(over: Partial<WatchdogConfig> = {}) {
  let t = 1_000_000;
  let cpuMicros = 0;
  let cpuPercent = 1;
  let rssBytes = 50 * MiB;
  let liveBytes = 40 * MiB;
  const sample = (): ResourceSample => ({ atMs: t, cpuMicros, rssBytes, liveBytes });
  const log = memoryLogger();
  const hard: number[] = [];
  const cfg: WatchdogConfig = {
    ...DEFAULT_WATCHDOG,
    intervalMs: 1000,
    cpuPercent: 5,
    memoryBytes: 100 * MiB,
    hardMemoryBytes: 150 * MiB,
    recoverSamples: 3,
    sampleOneIn: 4,
    startupGraceMs: 0,
    ...over,
  };
  const wd = new Watchdog(cfg, { sample, log, onHardLimit: (r) => hard.push(r), now: () => t });
  wd.check(); // first sample: the baseline for CPU deltas
  /** `liveMiB`: memory in use (checked against the soft budget); `rssMiB`: resident (the hard limit). */
  const step = (cpu: number, liveMiB?: number, rssMiB?: number): void => {
    cpuPercent = cpu;
    if (liveMiB !== undefined) liveBytes = liveMiB * MiB;
    if (rssMiB !== undefined) rssBytes = rssMiB * MiB;
    t += 1000;
    cpuMicros += cpuPercent * 10_000; // cpu% of 1 s
    wd.check();
  };
  return { wd, step, log, hard, at: () => t };
}

describe('watchdog policy', () => {
  it('sheds nothing under budget', () => {
    const { wd, step, log } = rig();
    for (let i = 0; i < 5; i++) step(2);
    expect(wd.level).toBe(0);
    expect(wd.sheds('udp_flow_not_common')).toBe(false);
    expect(wd.sheds('injection_scan_ineligible')).toBe(false);
    expect(wd.samplesOut()).toBe(false);
    expect(wd.stats()).toMatchObject({ level: 0, shedTotal: 0, cpuPercent: 2 });
    expect(log.lines).toEqual([]);
  });

  it('climbs one level per sample over the CPU budget: optional work first, then sampling connections', () => {
    const { wd, step, log } = rig();
    step(12);
    expect(wd.level).toBe(1);
    expect(wd.sheds('injection_scan_ineligible')).toBe(true);
    expect(wd.sheds('udp_flow_not_common')).toBe(true);
    expect(wd.sheds('sighting_repeat')).toBe(true);
    expect(wd.sheds('connection_not_common')).toBe(false);
    // Connections are still all scored at level 1.
    expect([1, 2, 3, 4].map(() => wd.samplesOut())).toEqual([false, false, false, false]);
    step(12);
    expect(wd.level).toBe(2);
    // One connection in four goes through.
    const out = Array.from({ length: 8 }, () => wd.samplesOut());
    expect(out.filter((x) => !x)).toHaveLength(2);
    step(12);
    expect(wd.level).toBe(2);
    const st = wd.stats();
    expect(wd.sheds('connection_not_common')).toBe(true);
    expect(st.shedByReason).toEqual({
      injection_scan_ineligible: 1,
      udp_flow_not_common: 1,
      sighting_repeat: 1,
      connection_not_common: 0,
      connection_sampled: 6,
    });
    expect(wd.stats().shedTotal).toBe(10);
    expect(st.overBudget).toBe('cpu');
    // One line per change of level, not per sample.
    expect(log.lines.map((l) => [l.level, l.msg, l.fields['shedLevel']])).toEqual([
      ['warn', 'The daemon is over its cpu budget; it sheds low-value work to spare the host.', 1],
      ['warn', 'The daemon is over its cpu budget; it sheds low-value work to spare the host.', 2],
    ]);
    expect(log.lines[0]?.fields).toMatchObject({ cpuPercent: 12, cpuBudgetPercent: 5 });
  });

  it('recovers one level after recoverSamples with headroom, and not while near the budget', () => {
    const { wd, step, log } = rig();
    step(20);
    step(20);
    expect(wd.level).toBe(2);
    // Under budget but without 20 % headroom: stays.
    for (let i = 0; i < 5; i++) step(4.5);
    expect(wd.level).toBe(2);
    step(1);
    step(1);
    expect(wd.level).toBe(2);
    step(1);
    expect(wd.level).toBe(1);
    step(1);
    step(1);
    step(1);
    expect(wd.level).toBe(0);
    expect(wd.sheds('udp_flow_not_common')).toBe(false);
    expect(log.lines.slice(2).map((l) => l.msg)).toEqual([
      'The daemon is closer to its budget; it sheds less.',
      'The daemon is back under its budget; nothing is shed any more.',
    ]);
    expect(wd.stats()).toMatchObject({ level: 0, overBudget: null, levelChangesTotal: 4 });
  });

  it('counts memory in use over budget too (not the RSS high-water mark), and a spike in between resets the recovery', () => {
    const { wd, step, log } = rig();
    step(1, 90, 140); // RSS over the soft budget, memory in use not: nothing shed
    expect(wd.level).toBe(0);
    step(1, 120);
    expect(wd.level).toBe(1);
    expect(log.lines[0]?.msg).toBe('The daemon is over its memory budget; it sheds low-value work to spare the host.');
    step(1, 80);
    step(1, 80);
    step(9, 80); // a CPU spike
    expect(wd.level).toBe(2);
    step(1, 80);
    step(1, 80);
    expect(wd.level).toBe(2);
    step(1, 80);
    expect(wd.level).toBe(1);
  });

  it('asks to exit once at the hard memory limit', () => {
    const { wd, step, hard, log } = rig();
    step(1, 120, 160);
    step(1, 120, 170);
    expect(hard).toEqual([160 * MiB]);
    expect(log.lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      'The daemon reached its hard memory limit; it exits so the service manager restarts it.',
    ]);
    expect(wd.level).toBe(1);
  });

  it('does nothing when disabled, and lifts shedding when disabled by a reload', () => {
    const { wd, step } = rig({ enabled: false });
    step(50, 500);
    expect(wd.level).toBe(0);
    const r = rig();
    r.step(50);
    expect(r.wd.level).toBe(1);
    r.wd.setConfig({ ...DEFAULT_WATCHDOG, enabled: false });
    expect(r.wd.level).toBe(0);
    r.wd.stop();
  });
});

describe('watchdog at start-up', () => {
  it('does not hold start-up CPU against the budget, warns of none, and holds the budget once the grace is over', () => {
    const { wd, step, log } = rig({ startupGraceMs: 10_000, intervalMs: 3_600_000 });
    wd.start(); // the daemon is watching: the grace begins
    try {
      // Start-up: the buffered backlog, first hashes, the first sync, at 40 % of a core for 10 s.
      for (let i = 0; i < 10; i++) step(40);
      expect(wd.level).toBe(0);
      expect(wd.stats()).toMatchObject({ level: 0, shedTotal: 0, cpuPercent: 40 });
      expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
      // Steady state within budget: nothing shed, nothing said.
      for (let i = 0; i < 5; i++) step(3);
      expect(wd.stats()).toMatchObject({ level: 0, startingUp: false });
      expect(log.lines).toEqual([]);
      // Steady state over budget: shed, and said.
      step(12);
      expect(wd.level).toBe(1);
      expect(log.lines.map((l) => l.msg)).toEqual(['The daemon is over its cpu budget; it sheds low-value work to spare the host.']);
    } finally {
      wd.stop();
    }
  });

  it('still holds memory against its budget during the grace', () => {
    const { wd, step } = rig({ startupGraceMs: 60_000, intervalMs: 3_600_000 });
    wd.start();
    try {
      step(1, 120);
      expect(wd.level).toBe(1);
      expect(wd.stats().overBudget).toBe('memory');
    } finally {
      wd.stop();
    }
  });
});

describe('processSample', () => {
  it('reads this process: CPU grows with work, RSS is about what Node reports', () => {
    const a = processSample();
    const cpu0 = process.cpuUsage();
    // Work until this process has really been given 30 ms of CPU (a loaded machine gives it late, not never).
    let x = 0;
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + 1);
      const used = process.cpuUsage(cpu0);
      if (used.user + used.system >= 30_000) break;
    }
    const used = process.cpuUsage(cpu0);
    const b = processSample();
    expect(used.user + used.system).toBeGreaterThanOrEqual(30_000);
    // The sample sees at least that much more CPU (children add to it, never take away).
    expect(b.cpuMicros - a.cpuMicros).toBeGreaterThanOrEqual(used.user + used.system);
    expect(b.rssBytes).toBeGreaterThanOrEqual(process.memoryUsage.rss() * 0.5);
    expect(b.liveBytes).toBeGreaterThan(0);
    expect(b.liveBytes).toBeLessThan(b.rssBytes);
  });
});
