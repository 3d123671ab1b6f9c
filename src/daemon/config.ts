// The daemon's own settings (state folder, alert output, logs, status,
// metrics, watchdog): their shapes for the one config validator and the rules
// across sections that only the daemon has. Defaults: config/defaults.ts.
import { count, timerMs, windowMs, type Problem, type Spec } from '../config/spec.js';
import type { RareconConfig, ReportConfig } from '../config/defaults.js';

export const METRICS_SPEC: Spec = {
  kind: 'object',
  fields: { enabled: { kind: 'boolean' }, host: { kind: 'string' }, port: { kind: 'number', integer: true, min: 0, max: 65535 } },
};

export const WATCHDOG_SPEC: Spec = {
  kind: 'object',
  fields: {
    enabled: { kind: 'boolean' },
    intervalMs: timerMs(100),
    cpuPercent: { kind: 'number', min: 0.1, max: 1000 },
    memoryBytes: count(1024 * 1024, 2 ** 44),
    hardMemoryBytes: count(0, 2 ** 44),
    recoverSamples: count(1, 1_000_000),
    sampleOneIn: count(1, 1_000_000),
    startupGraceMs: windowMs(0, 1),
  },
};

/** The top-level settings of the daemon, beside the sections of the stages. */
export const DAEMON_FIELDS: Record<string, Spec> = {
  stateDir: { kind: 'string' },
  baselinePath: { kind: 'string', nullable: true },
  alertsPath: { kind: 'string', nullable: true },
  alertFormat: { kind: 'string', oneOf: ['ocsf', 'ecs'] },
  logLevel: { kind: 'string', oneOf: ['error', 'warn', 'info', 'debug'] },
  logFile: { kind: 'string', nullable: true },
  logStream: { kind: 'string', oneOf: ['stderr', 'stdout'] },
  logFileMaxBytes: count(4096, 2 ** 40),
  logFileMaxFiles: count(1, 1000),
  statusIntervalMs: timerMs(100),
  metrics: METRICS_SPEC,
  watchdog: WATCHDOG_SPEC,
};

/** Cross-field rules of the daemon's own settings. */
export function daemonConfigProblems(c: RareconConfig, report: ReportConfig | null): Problem[] {
  const out: Problem[] = [];
  if (c.logStream === 'stdout' && c.logFile === null && report !== null && report.sinks.some((s) => s.type === 'stdout')) {
    out.push({ path: 'logStream', message: 'stdout carries alerts (a stdout sink is configured): keep logs on stderr, or set logFile' });
  }
  if (c.sync.serverUrl === null && report !== null) {
    report.sinks.forEach((s, i) => {
      if (s.type === 'server')
        out.push({
          path: `report.sinks[${i}].type`,
          message: 'a server sink sends to the baseline server of sync.serverUrl, which is not set',
        });
    });
  }
  const w = c.watchdog;
  if (w.hardMemoryBytes !== 0 && w.hardMemoryBytes <= w.memoryBytes) {
    out.push({
      path: 'watchdog.hardMemoryBytes',
      message: `must be above watchdog.memoryBytes (${w.memoryBytes}), or 0 for no hard limit`,
    });
  }
  return out;
}

/** The config sections SIGHUP applies to a running daemon; every other one takes a restart. */
const APPLIED_ON_RELOAD: ReadonlySet<keyof RareconConfig> = new Set([
  'detect',
  'alertFormat',
  'statusIntervalMs',
  'report',
  'watchdog',
  'logLevel',
] as const);

/**
 * The running config with the sections SIGHUP applies taken from `next`, and
 * the other sections that changed, which keep their running values until a
 * restart (the `server` section is not the daemon's).
 */
export function reloadedConfig(
  running: RareconConfig,
  next: RareconConfig,
): { config: RareconConfig; needRestart: (keyof RareconConfig)[] } {
  const needRestart = (Object.keys(next) as (keyof RareconConfig)[]).filter(
    (k) => !APPLIED_ON_RELOAD.has(k) && k !== 'server' && JSON.stringify(next[k]) !== JSON.stringify(running[k]),
  );
  return {
    config: {
      ...running,
      detect: next.detect,
      alertFormat: next.alertFormat,
      statusIntervalMs: next.statusIntervalMs,
      report: next.report,
      watchdog: next.watchdog,
      logLevel: next.logLevel,
    },
    needRestart,
  };
}
