// The `server:` section: every default of the baseline server in one place, and
// its shape as a Spec (src/config/schema.ts) for the one config validator.
// Only a type from the schema: the schema imports the defaults below, so a value import would be a cycle.
import type { Spec } from '../config/schema.js';
import { DEFAULT_THRESHOLDS } from '../config/defaults.js';
import type { TierThresholds } from '../model/baseline.js';

export interface ServerLimits {
  /** A request body larger than this is refused with 413 (after gunzip, when gzipped). */
  maxBodyBytes: number;
  /** Host-days in one sightings upload. */
  maxDaysPerBatch: number;
  maxCombosPerDay: number;
  maxProcessesPerDay: number;
  maxAlertsPerBatch: number;
  /** Prefixes in one POST /v1/baseline/buckets. */
  maxPrefixesPerRequest: number;
}

export interface ServerConfig {
  /** SQLite databases, the signing key, published baseline files. */
  stateDir: string;
  listenHost: string;
  port: number;
  /** PEM files; both set = HTTPS. */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** `org` for a multi-tenant server, `host` for one organisation's fleet. */
  observerUnit: 'org' | 'host';
  /** The training period: days of sightings a baseline covers. */
  windowDays: number;
  thresholds: TierThresholds;
  /** Leave out combos seen by one observer (only when veryRareMaxObservers >= 1). */
  omitSingleObserverCombos: boolean;
  allowPrivateDomains: boolean;
  /** node-cron expression (UTC) of the aggregation. A first build also runs at start when none is published. */
  buildCron: string;
  /** Hex digits of a sha256 prefix that names a bucket (16^n buckets). */
  bucketHexChars: number;
  /** A process with more combos than this is heavy: its combos ship in cells by root domain, fetched as the endpoint meets them. */
  heavyProcessCombos: number;
  /** Combos per cell of a heavy process, roughly. */
  combosPerCell: number;
  /** Deltas can start from any of the last N published versions; older holders fetch buckets or the snapshot again. */
  deltaHistoryVersions: number;
  /** Published snapshot files kept on disk. */
  keepSnapshots: number;
  /** Sightings older than the window plus this many days are deleted at each build. */
  retainExtraDays: number;
  /** Idle keep-alive sockets and slow requests are cut after this. */
  requestTimeoutMs: number;
  /** Run the aggregation in a worker thread, so the HTTP loop stays responsive. */
  buildInWorker: boolean;
  limits: ServerLimits;
}

export const DEFAULT_SERVER_STATE_DIR = '/var/lib/rarecon-server';

export const DEFAULT_SERVER: ServerConfig = {
  stateDir: DEFAULT_SERVER_STATE_DIR,
  listenHost: '0.0.0.0',
  port: 8787,
  tlsCertFile: null,
  tlsKeyFile: null,
  observerUnit: 'org',
  windowDays: 30,
  thresholds: { ...DEFAULT_THRESHOLDS },
  omitSingleObserverCombos: true,
  allowPrivateDomains: true,
  buildCron: '20 0 * * *',
  bucketHexChars: 4,
  heavyProcessCombos: 1_000,
  combosPerCell: 16,
  deltaHistoryVersions: 30,
  keepSnapshots: 3,
  retainExtraDays: 2,
  requestTimeoutMs: 60_000,
  buildInWorker: true,
  limits: {
    maxBodyBytes: 32 * 1024 * 1024,
    maxDaysPerBatch: 31,
    maxCombosPerDay: 200_000,
    maxProcessesPerDay: 100_000,
    maxAlertsPerBatch: 5_000,
    maxPrefixesPerRequest: 20_000,
  },
};

const count = (min = 0, max?: number): Spec =>
  max === undefined ? { kind: 'number', integer: true, min } : { kind: 'number', integer: true, min, max };
const nullablePath: Spec = { kind: 'string', nullable: true };

export const SERVER_SPEC: Spec = {
  kind: 'object',
  fields: {
    stateDir: { kind: 'string' },
    listenHost: { kind: 'string' },
    port: count(0, 65_535),
    tlsCertFile: nullablePath,
    tlsKeyFile: nullablePath,
    observerUnit: { kind: 'string', oneOf: ['org', 'host'] },
    windowDays: count(1, 365),
    thresholds: {
      kind: 'object',
      fields: {
        uncommonBelowObservers: count(1),
        rareMaxObservers: count(0),
        veryRareMaxObservers: count(0),
        commonProcessMinObservers: count(1),
      },
    },
    omitSingleObserverCombos: { kind: 'boolean' },
    allowPrivateDomains: { kind: 'boolean' },
    buildCron: { kind: 'string' },
    bucketHexChars: count(1, 8),
    heavyProcessCombos: count(1),
    combosPerCell: count(1),
    deltaHistoryVersions: count(1),
    keepSnapshots: count(1),
    retainExtraDays: count(0),
    requestTimeoutMs: count(1000),
    buildInWorker: { kind: 'boolean' },
    limits: {
      kind: 'object',
      fields: {
        maxBodyBytes: count(1024),
        maxDaysPerBatch: count(1),
        maxCombosPerDay: count(1),
        maxProcessesPerDay: count(1),
        maxAlertsPerBatch: count(1),
        maxPrefixesPerRequest: count(1),
      },
    },
  },
};

/** What a shape check cannot see; empty when the config is usable. */
export function serverConfigProblems(c: ServerConfig): string[] {
  const out: string[] = [];
  if ((c.tlsCertFile === null) !== (c.tlsKeyFile === null))
    out.push('server.tlsCertFile and server.tlsKeyFile go together: set both for HTTPS, or neither');
  if (c.omitSingleObserverCombos && c.thresholds.veryRareMaxObservers < 1) {
    out.push(
      'server.omitSingleObserverCombos needs thresholds.veryRareMaxObservers >= 1 (otherwise 0 and 1 observers are different tiers)',
    );
  }
  return out;
}
