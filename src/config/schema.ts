// The one config schema: the shape of the file, checked against the defaults
// in `defaults.ts`. A spec says what a value must be; `validate` reports every
// problem at once with its dotted path.
import { DEFAULT_BASELINE_STORE, DEFAULT_DETECT, DEFAULT_STATE_DIR, DEFAULT_WATCHDOG, type BaselineStoreConfig, type DetectConfig, type WatchdogConfig } from './defaults.js';
import { parseCidr } from '../detect/address.js';
import { DEFAULT_REPORT, REPORT_SPEC, type ReportConfig } from '../report/config.js';
import { DEFAULT_SYNC, SYNC_SPEC, type SyncConfig } from '../baseline/sync-config.js';
import { DEFAULT_SERVER, SERVER_SPEC, type ServerConfig } from '../server/config.js';

export type Spec =
  | { kind: 'number'; min?: number; max?: number; integer?: boolean }
  | { kind: 'string'; oneOf?: readonly string[]; pattern?: RegExp; patternText?: string; nullable?: boolean }
  | { kind: 'boolean' }
  | { kind: 'array'; of: Spec }
  | { kind: 'object'; fields: Record<string, Spec>; partial?: boolean }
  | { kind: 'cidr' };

const count = (min = 0): Spec => ({ kind: 'number', integer: true, min });
const strings: Spec = { kind: 'array', of: { kind: 'string' } };
const port: Spec = { kind: 'number', integer: true, min: 0, max: 65535 };

export interface RareconConfig {
  detect: DetectConfig;
  baselineStore: BaselineStoreConfig;
  /** Folder of the daemon's SQLite state. */
  stateDir: string;
  /** A baseline file to score against, when no server is configured. */
  baselinePath: string | null;
  /** Where the daemon appends alerts (one a line); null = stdout. */
  alertsPath: string | null;
  alertFormat: 'ocsf' | 'ecs';
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** null: JSON lines on `logStream` (journald reads both); else a rotated file. */
  logFile: string | null;
  /** stderr by default: stdout carries alerts when a stdout sink is configured (the default sink). */
  logStream: 'stderr' | 'stdout';
  logFileMaxBytes: number;
  logFileMaxFiles: number;
  host: HostConfig;
  source: SourceConfig;
  enrich: EnrichConfig;
  /** How often the daemon writes status.json for `rarecon status`. */
  statusIntervalMs: number;
  /** Prometheus text at /metrics and a health check at /healthz; keep it on loopback. */
  metrics: { enabled: boolean; host: string; port: number };
  /** CPU and memory budgets of the daemon and the load it sheds over them. */
  watchdog: WatchdogConfig;
  report: ReportConfig;
  sync: SyncConfig;
  /** Read by `rarecon server` only; one file can configure both sides. */
  server: ServerConfig;
}

export interface HostConfig {
  /** The org id from enrolment; `default` for a standalone host. */
  org: string;
  /** Pseudonymous host id; null = derived from /etc/machine-id. */
  id: string | null;
}

export interface SourceConfig {
  /** auto: the eBPF helper where it can run, else /proc polling (and the reason is logged and in status). */
  kind: 'auto' | 'ebpf' | 'procfs';
  helperPath: string | null;
  pollIntervalMs: number;
  udpDedupMs: number;
  stackFrames: number;
  /** Connections waiting for enrichment; beyond this the newest are dropped and counted. */
  queueMaxEvents: number;
}

export interface EnrichConfig {
  /** Connections enriched at once. */
  concurrency: number;
  timeoutMs: number;
  cacheEntries: number;
}

export const DEFAULT_CONFIG: RareconConfig = {
  detect: DEFAULT_DETECT,
  baselineStore: DEFAULT_BASELINE_STORE,
  stateDir: DEFAULT_STATE_DIR,
  baselinePath: null,
  alertsPath: null,
  alertFormat: 'ocsf',
  logLevel: 'info',
  logFile: null,
  logStream: 'stderr',
  logFileMaxBytes: 10 * 1024 * 1024,
  logFileMaxFiles: 5,
  host: { org: 'default', id: null },
  source: { kind: 'auto', helperPath: null, pollIntervalMs: 1000, udpDedupMs: 60_000, stackFrames: 32, queueMaxEvents: 10_000 },
  enrich: { concurrency: 16, timeoutMs: 2000, cacheEntries: 4096 },
  statusIntervalMs: 5000,
  metrics: { enabled: true, host: '127.0.0.1', port: 9464 },
  watchdog: DEFAULT_WATCHDOG,
  report: DEFAULT_REPORT,
  sync: DEFAULT_SYNC,
  server: DEFAULT_SERVER,
};

const thresholdsSpec: Spec = {
  kind: 'object',
  partial: true,
  fields: {
    uncommonBelowObservers: count(1),
    rareMaxObservers: count(0),
    veryRareMaxObservers: count(0),
    commonProcessMinObservers: count(1),
  },
};

export const CONFIG_SPEC: Spec = {
  kind: 'object',
  fields: {
    detect: {
      kind: 'object',
      fields: {
        activationDays: { kind: 'number', min: 0, max: 365 },
        trainingDays: { kind: 'number', min: 1, max: 365 },
        minBaselineDays: { kind: 'number', min: 0, max: 365 },
        dedupWindowMs: count(1),
        maxAlertsPerHostPerDay: count(1),
        thresholds: thresholdsSpec,
        knownVendors: strings,
        internalNetworks: { kind: 'array', of: { kind: 'cidr' } },
        internalDomains: strings,
        exclusions: {
          kind: 'object',
          fields: {
            domainSuffixes: strings,
            sha256: { kind: 'array', of: { kind: 'string', pattern: /^[0-9a-fA-F]{64}$/, patternText: '64 hex digits' } },
            signers: strings,
            ports: { kind: 'array', of: port },
            processPaths: strings,
          },
        },
        dnsGraceMs: count(0),
        dnsCacheMaxEntries: count(1),
      },
    },
    baselineStore: { kind: 'object', fields: { cacheSizeKiB: count(256), lookupCacheEntries: count(1) } },
    stateDir: { kind: 'string' },
    baselinePath: { kind: 'string', nullable: true },
    alertsPath: { kind: 'string', nullable: true },
    alertFormat: { kind: 'string', oneOf: ['ocsf', 'ecs'] },
    logLevel: { kind: 'string', oneOf: ['error', 'warn', 'info', 'debug'] },
    logFile: { kind: 'string', nullable: true },
    logStream: { kind: 'string', oneOf: ['stderr', 'stdout'] },
    logFileMaxBytes: count(4096),
    logFileMaxFiles: count(1),
    host: { kind: 'object', fields: { org: { kind: 'string', pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: 'letters, digits, . _ - (1 to 64)' }, id: { kind: 'string', nullable: true } } },
    source: {
      kind: 'object',
      fields: {
        kind: { kind: 'string', oneOf: ['auto', 'ebpf', 'procfs'] },
        helperPath: { kind: 'string', nullable: true },
        pollIntervalMs: count(50),
        udpDedupMs: count(0),
        stackFrames: { kind: 'number', integer: true, min: 0, max: 32 },
        queueMaxEvents: count(1),
      },
    },
    enrich: { kind: 'object', fields: { concurrency: count(1), timeoutMs: count(10), cacheEntries: count(16) } },
    statusIntervalMs: count(100),
    metrics: { kind: 'object', fields: { enabled: { kind: 'boolean' }, host: { kind: 'string' }, port: { kind: 'number', integer: true, min: 0, max: 65535 } } },
    watchdog: {
      kind: 'object',
      fields: {
        enabled: { kind: 'boolean' },
        intervalMs: count(100),
        cpuPercent: { kind: 'number', min: 0.1, max: 1000 },
        memoryBytes: count(1024 * 1024),
        hardMemoryBytes: count(0),
        recoverSamples: count(1),
        sampleOneIn: count(1),
      },
    },
    report: REPORT_SPEC,
    sync: SYNC_SPEC,
    server: SERVER_SPEC,
  },
};

export interface Problem {
  path: string;
  message: string;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Every problem of `value` against `spec`, with dotted paths. */
export function validate(value: unknown, spec: Spec, path: string, problems: Problem[]): void {
  const at = path === '' ? '(top level)' : path;
  switch (spec.kind) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        problems.push({ path: at, message: `expected a number, got ${typeName(value)}` });
      } else if (spec.integer === true && !Number.isInteger(value)) {
        problems.push({ path: at, message: `expected a whole number, got ${value}` });
      } else if (spec.min !== undefined && value < spec.min) {
        problems.push({ path: at, message: `must be at least ${spec.min}, got ${value}` });
      } else if (spec.max !== undefined && value > spec.max) {
        problems.push({ path: at, message: `must be at most ${spec.max}, got ${value}` });
      }
      return;
    case 'string':
      if (value === null && spec.nullable === true) return;
      if (typeof value !== 'string') {
        problems.push({ path: at, message: `expected a string, got ${typeName(value)}` });
      } else if (spec.oneOf !== undefined && !spec.oneOf.includes(value)) {
        problems.push({ path: at, message: `expected one of ${spec.oneOf.join(', ')}, got "${value}"` });
      } else if (spec.pattern !== undefined && !spec.pattern.test(value)) {
        problems.push({ path: at, message: `expected ${spec.patternText ?? spec.pattern.source}, got "${value}"` });
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push({ path: at, message: `expected true or false, got ${typeName(value)}` });
      return;
    case 'cidr': {
      if (typeof value !== 'string') {
        problems.push({ path: at, message: `expected a network like 10.20.0.0/16, got ${typeName(value)}` });
        return;
      }
      const c = parseCidr(value);
      if (!c.ok) problems.push({ path: at, message: c.error });
      return;
    }
    case 'array':
      if (!Array.isArray(value)) {
        problems.push({ path: at, message: `expected a list, got ${typeName(value)}` });
        return;
      }
      value.forEach((item, i) => validate(item, spec.of, `${path}[${i}]`, problems));
      return;
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        problems.push({ path: at, message: `expected a mapping, got ${typeName(value)}` });
        return;
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const child = spec.fields[k];
        const childPath = path === '' ? k : `${path}.${k}`;
        if (child === undefined) {
          problems.push({ path: childPath, message: `unknown setting (known here: ${Object.keys(spec.fields).join(', ')})` });
        } else {
          validate(v, child, childPath, problems);
        }
      }
      return;
    }
  }
}

/** Objects merge key by key; lists and scalars from the file replace the default. */
export function mergeDefaults<T>(defaults: T, override: unknown): T {
  if (override === undefined) return structuredClone(defaults);
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults) || override === null || typeof override !== 'object') {
    return override as T;
  }
  const out: Record<string, unknown> = { ...(structuredClone(defaults) as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) {
    out[k] = mergeDefaults((defaults as Record<string, unknown>)[k], v);
  }
  return out as T;
}
