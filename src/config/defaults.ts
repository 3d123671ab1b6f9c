// Every default of rarecon, in one place, with the type of each section. The
// config file overrides these; each section's shape (its Spec) sits beside the
// component it configures, and `cli/config-file.ts` puts the sections together.
import type { TierThresholds } from '../model/baseline.js';
import type { TlsFiles } from '../common/tls-files.js';

export const DEFAULT_THRESHOLDS: TierThresholds = Object.freeze({
  uncommonBelowObservers: 10,
  rareMaxObservers: 3,
  veryRareMaxObservers: 1,
  commonProcessMinObservers: 10,
});

/** Matched case-insensitively against the signer's vendor or subject (DETECTION.md section 5). */
export const DEFAULT_KNOWN_VENDORS: readonly string[] = [
  'Microsoft',
  'Apple',
  'Google',
  'Mozilla',
  'Adobe',
  'Oracle',
  'Intel',
  'NVIDIA',
  'Cisco',
  'VMware',
  'Zoom',
  'Slack',
  'Dropbox',
  'Amazon',
  'IBM',
  'Dell',
  'HP',
  'Lenovo',
  'Citrix',
  'Atlassian',
  'JetBrains',
  'Docker',
  'GitHub',
  'Valve',
  'Spotify',
  'Logitech',
  'AMD',
  'Qualcomm',
  'Broadcom',
  'Canonical',
  // Linux distributions whose package signatures verify the file
  'Debian',
  'Ubuntu',
  'Red Hat',
  'Fedora',
  'SUSE',
  'openSUSE',
  'CentOS',
  'Rocky Linux',
  'AlmaLinux',
  'Arch Linux',
  'Alpine',
];

export interface Exclusions {
  domainSuffixes: string[];
  sha256: string[];
  signers: string[];
  ports: number[];
  processPaths: string[];
}

export interface DetectConfig {
  activationDays: number;
  trainingDays: number;
  /** Minimum days of data the baseline must cover before the detector is active. */
  minBaselineDays: number;
  dedupWindowMs: number;
  /** Alerts a host may raise in 24 h before the detector pauses for it. */
  maxAlertsPerHostPerDay: number;
  /** Operator overrides of the baseline's thresholds (unset = the baseline's). */
  thresholds: Partial<TierThresholds>;
  knownVendors: string[];
  /** CIDRs treated as internal besides the built-in private ranges. */
  internalNetworks: string[];
  /** Domain suffixes treated as internal besides .local, .internal, .lan, .home.arpa, .corp. */
  internalDomains: string[];
  exclusions: Exclusions;
  /** Grace added to a DNS answer's TTL when mapping an ip back to its name. */
  dnsGraceMs: number;
  dnsCacheMaxEntries: number;
  /**
   * Score a connection whose only name is a reverse-DNS (PTR) name, such as
   * Sysmon Event 3 `DestinationHostname` (DETECTION.md section 2.2). Off: such
   * an event is not eligible (`reverse-dns-name`) and teaches the baseline nothing.
   */
  reverseDnsNames: boolean;
  /**
   * Sysmon Event 10 (ProcessAccess) sources whose access is routine, not
   * injection (DETECTION.md section 5): Windows paths, case-insensitive, with
   * `%SystemRoot%`, `%ProgramData%`, `%ProgramFiles%`, `%ProgramFiles(x86)%`
   * (any drive) and `*` (any run of characters within one folder name); a bare
   * file name matches that name in any folder.
   */
  processAccessIgnore: string[];
  /** Event 10 from the target's own parent this close to the target's creation is routine; 0 counts it. */
  processAccessParentMs: number;
}

/** The system brokers of DETECTION.md section 5, as found in System32 or SysWOW64. */
const SYSTEM_BROKERS = ['csrss.exe', 'lsass.exe', 'services.exe', 'wininit.exe', 'smss.exe', 'svchost.exe', 'wmiprvse.exe', 'conhost.exe'];

export const DEFAULT_PROCESS_ACCESS_IGNORE: readonly string[] = Object.freeze([
  ...SYSTEM_BROKERS.flatMap((b) => [`%SystemRoot%\\System32\\${b}`, `%SystemRoot%\\SysWOW64\\${b}`]),
  // Windows installs the WMI provider host in System32's wbem folder (there is no System32\WmiPrvSE.exe).
  '%SystemRoot%\\System32\\wbem\\wmiprvse.exe',
  '%SystemRoot%\\SysWOW64\\wbem\\wmiprvse.exe',
  // Defender's engine: its platform folder (updated engines), and where older Windows installs it.
  '%ProgramData%\\Microsoft\\Windows Defender\\Platform\\*\\MsMpEng.exe',
  '%ProgramFiles%\\Windows Defender\\MsMpEng.exe',
]);

export const DEFAULT_DETECT: DetectConfig = {
  activationDays: 14,
  trainingDays: 30,
  minBaselineDays: 14,
  dedupWindowMs: 86_400_000,
  maxAlertsPerHostPerDay: 5_000,
  thresholds: {},
  knownVendors: [...DEFAULT_KNOWN_VENDORS],
  internalNetworks: [],
  internalDomains: [],
  exclusions: { domainSuffixes: [], sha256: [], signers: [], ports: [], processPaths: [] },
  dnsGraceMs: 5 * 60_000,
  dnsCacheMaxEntries: 100_000,
  reverseDnsNames: false,
  processAccessIgnore: [...DEFAULT_PROCESS_ACCESS_IGNORE],
  processAccessParentMs: 5_000,
};

export interface BaselineStoreConfig {
  /** SQLite page cache per open baseline, KiB. Bounded so resident memory does not grow with the baseline. */
  cacheSizeKiB: number;
  /** Entries in the in-memory lookup caches in front of SQLite. */
  lookupCacheEntries: number;
  /** Answers a generation of the recent answers holds, when fewer than lookupCacheEntries (offline runs: OfflineMemoryLimits). */
  recentAnswers?: number;
}

export const DEFAULT_BASELINE_STORE: BaselineStoreConfig = {
  // Holds the interior pages of a 10M-combo baseline (lookups read one leaf page each); 8 MiB
  // was no faster and cost `rarecon score` 4-6 MiB of its 200 MB (measured).
  cacheSizeKiB: 4 * 1024,
  lookupCacheEntries: 200_000,
};

/**
 * What the offline commands (`rarecon score`, `rarecon baseline build`) hold in
 * memory, bounded so resident memory stays flat however long the input and
 * however many distinct names it brings (issue 17: 5M bench events, 150,108
 * alerts held, under 200 MB). Not part of the config file.
 */
export interface OfflineMemoryLimits {
  /** Bytes of open alerts' records held in memory; past that they wait in a temporary SQLite file. */
  heldAlertBytes: number;
  /** SQLite page cache of that temporary file, KiB. */
  heldAlertSpillCacheKiB: number;
  /**
   * Answers a generation of the baseline store's recent answers (in front of
   * baselineStore.lookupCacheEntries' typed caches) holds offline: there they
   * serve only the lines that alert, whose combos are new by nature, and the
   * per-id caches answer the rest.
   */
  recentAnswers: number;
  /** Ids the native line scanner hands out before it drops them all, and with them every cache keyed by them. */
  scannerMaxIds: number;
  /** Bytes of strings the native line scanner holds before it drops its ids. */
  scannerMaxHeldBytes: number;
}

export const DEFAULT_OFFLINE_MEMORY: OfflineMemoryLimits = {
  heldAlertBytes: 4 * 1024 * 1024,
  heldAlertSpillCacheKiB: 1024,
  recentAnswers: 16_384,
  // The bench inputs and a 2,000-host fleet hold ~110k-180k distinct values: they never reach these.
  scannerMaxIds: 262_144,
  scannerMaxHeldBytes: 16 * 1024 * 1024,
};

/** Names of connections a generation of the enrich stage's name cache holds (two generations). */
export const DEFAULT_NAMES_PER_GENERATION = 65_536;

/** The default state folder of the daemon. */
export const DEFAULT_STATE_DIR = '/var/lib/rarecon';
export const DEFAULT_CONFIG_PATH = '/etc/rarecon/config.yaml';

/**
 * The daemon's own budgets (osquery's watchdog allows 200 MB and 10 % CPU; we
 * aim lower). Over a soft budget it sheds the lowest-value work first; at the
 * hard memory limit it exits so the service manager restarts it (the systemd
 * unit's MemoryMax=300M sits above).
 */
export interface WatchdogConfig {
  enabled: boolean;
  /** How often the daemon samples its CPU and resident memory. */
  intervalMs: number;
  /** CPU of the daemon and its helper over one interval, percent of one core. */
  cpuPercent: number;
  /** Memory in use (V8 heap in use, external buffers, the helper's RSS) above which the daemon sheds load. */
  memoryBytes: number;
  /** Resident memory at which the daemon exits (status 70) to be restarted. 0 = never. */
  hardMemoryBytes: number;
  /** Samples under budget (with 20 % headroom) before one level of shedding is lifted. */
  recoverSamples: number;
  /** At the second level, one connection in this many is enriched and scored. */
  sampleOneIn: number;
  /**
   * After "watching", CPU is sampled but not held against the budget this long: start-up work (the
   * connections buffered meanwhile, first hashes of running programs, the first sync) is not steady state.
   */
  startupGraceMs: number;
}

export const DEFAULT_WATCHDOG: WatchdogConfig = {
  enabled: true,
  intervalMs: 2_000,
  cpuPercent: 5,
  memoryBytes: 200 * 1024 * 1024,
  hardMemoryBytes: 280 * 1024 * 1024,
  recoverSamples: 3,
  sampleOneIn: 4,
  startupGraceMs: 30_000,
};

// ---------------------------------------------------------------------------
// report: the outbox, the backoff and the sinks

/** The form an alert leaves the host in: OCSF (canonical) or ECS. */
export type AlertFormat = 'ocsf' | 'ecs';

export type SinkType = 'http' | 'syslog' | 'file' | 'stdout' | 'server';

// In code order: a facility's index is its number (RFC 5424 section 6.2.1).
export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;
export type SyslogFacility = (typeof SYSLOG_FACILITIES)[number];

interface SinkCommon {
  name: string;
  format: AlertFormat;
  batchMaxAlerts: number;
  /** Wait this long for a batch to fill once alerts are waiting. */
  lingerMs: number;
}

export interface HttpSinkConfig extends SinkCommon, TlsFiles {
  type: 'http';
  url: string;
  /** `json`: one JSON array a request; `ndjson`: one document a line. */
  body: 'json' | 'ndjson';
  /** Bearer token from this environment variable ... */
  tokenEnv: string | null;
  /** ... or from this file (read again when it changes). */
  tokenFile: string | null;
  timeoutMs: number;
  gzip: boolean;
}

export interface SyslogSinkConfig extends SinkCommon, TlsFiles {
  type: 'syslog';
  transport: 'udp' | 'tcp' | 'tls';
  host: string;
  port: number;
  facility: SyslogFacility;
  /** SD-ID for the alert's own fields, `name@<your organisation's Private Enterprise Number>`; null: only the registered `origin` element. */
  sdId: string | null;
  timeoutMs: number;
}

export interface FileSinkConfig extends SinkCommon {
  type: 'file';
  path: string;
  /** Rotate when the file would grow past this. */
  maxBytes: number;
  /** Rotated files kept beside the current one (path.1 ... path.N). */
  maxFiles: number;
  /** fsync after each batch, so an acknowledged alert survives a power loss. */
  fsync: boolean;
}

export interface StdoutSinkConfig extends SinkCommon {
  type: 'stdout';
}

/**
 * The baseline server's alert intake (`POST /v1/alerts`): the address, CA and
 * credential are the sync's (`sync.serverUrl`, `sync.caFile`, the host
 * credential the enrolment got), so nothing is configured twice.
 */
export interface ServerSinkConfig extends SinkCommon {
  type: 'server';
  timeoutMs: number;
  gzip: boolean;
}

export type SinkConfig = HttpSinkConfig | SyslogSinkConfig | FileSinkConfig | StdoutSinkConfig | ServerSinkConfig;

export interface OutboxConfig {
  /** null = `<stateDir>/outbox.db`. */
  path: string | null;
  maxRows: number;
  maxBytes: number;
  /** `normal`: survives a crash of rarecon; `full`: also a power loss, at some cost in enqueue speed. */
  synchronous: 'normal' | 'full';
  deadLetterMaxRows: number;
}

export interface ReportBackoffConfig {
  initialMs: number;
  maxMs: number;
  maxRetryAfterMs: number;
  /** Retryable failures before an alert is dead-lettered; 0 = retry for ever (the size bound still applies). */
  maxAttempts: number;
}

export interface ReportConfig {
  outbox: OutboxConfig;
  backoff: ReportBackoffConfig;
  /** Idle delivery loops look at the outbox this often even without a new alert. */
  pollMs: number;
  sinks: SinkConfig[];
}

const COMMON = { format: 'ocsf' as AlertFormat, batchMaxAlerts: 500, lingerMs: 200 };
const NO_TLS: TlsFiles = { caFile: null, certFile: null, keyFile: null, serverName: null };

/** Defaults of each sink type (all but `name`, which defaults to the type). */
export const SINK_DEFAULTS: { [T in SinkType]: Omit<Extract<SinkConfig, { type: T }>, 'name'> } = {
  http: { type: 'http', ...COMMON, ...NO_TLS, url: '', body: 'json', tokenEnv: null, tokenFile: null, timeoutMs: 10_000, gzip: false },
  syslog: {
    type: 'syslog',
    ...COMMON,
    ...NO_TLS,
    transport: 'tcp',
    host: '',
    port: 0,
    facility: 'local0',
    sdId: null,
    timeoutMs: 10_000,
    batchMaxAlerts: 100,
  },
  file: { type: 'file', ...COMMON, path: '', maxBytes: 50 * 1024 * 1024, maxFiles: 5, fsync: true },
  stdout: { type: 'stdout', ...COMMON, lingerMs: 0 },
  server: { type: 'server', ...COMMON, timeoutMs: 10_000, gzip: false },
};

export const DEFAULT_REPORT: ReportConfig = {
  outbox: { path: null, maxRows: 100_000, maxBytes: 256 * 1024 * 1024, synchronous: 'normal', deadLetterMaxRows: 10_000 },
  backoff: { initialMs: 1_000, maxMs: 5 * 60_000, maxRetryAfterMs: 60 * 60_000, maxAttempts: 0 },
  pollMs: 1_000,
  sinks: [{ ...SINK_DEFAULTS.stdout, name: 'stdout' }],
};

// ---------------------------------------------------------------------------
// sync: how an endpoint talks to the baseline server (no serverUrl = standalone)

export interface SyncConfig {
  /** Base URL of the baseline server, e.g. https://baseline.example.org:8787; null = standalone. */
  serverUrl: string | null;
  /** The org enrolment token (from `rarecon server enroll`), from this environment variable ... */
  enrolTokenEnv: string | null;
  /** ... or from this file. Used once: the per-host credential it buys is kept in the state folder. */
  enrolTokenFile: string | null;
  /** The server's public key as printed by `rarecon server` (`ed25519:...`) or a PEM; pinned. */
  serverPublicKey: string | null;
  serverPublicKeyFile: string | null;
  /** `buckets`: fetch only the sha256 prefixes this host has seen (large baselines); `snapshot`: the whole file. */
  mode: 'buckets' | 'snapshot';
  /** node-cron expression of the sync (baseline down, sightings up). */
  syncCron: string;
  /** Each scheduled sync waits a random 0..jitterMs first, so a fleet does not arrive at once. */
  jitterMs: number;
  /** After a failed sync: retry after a random wait up to initialMs * 2^(failures-1), capped at maxMs. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
  /** A download larger than this is cut and refused. */
  maxDownloadBytes: number;
  /** PEM CA bundle for an HTTPS server; null = the system's. */
  caFile: string | null;
  /**
   * The server certificate's sha256 as `rarecon server enroll` prints it
   * (`sha256:<hex>`): the endpoint talks only to the server holding that very
   * certificate (its own, self-made one needs no CA). null = check against a CA.
   */
  serverCertSha256: string | null;
  /** Allow a plain http:// serverUrl to another host than this one (a warning at every start); loopback needs no leave. */
  allowInsecureHttp: boolean;
  /** The baseline is stale (status, metrics, a warning) this long after the server's schedule promised a newer one. */
  staleGraceMs: number;
  /** Name to check the server certificate against, when not the URL's host. */
  serverName: string | null;
  /** Events held while their bucket is on its way. */
  pendingMaxEvents: number;
  /** A held event is scored as not common after this long without its bucket. */
  pendingTimeoutMs: number;
  /** Buckets not used for this long are dropped from the cache at a sync. */
  bucketIdleMs: number;
  /** Wait this long to gather missing buckets into one request. */
  bucketFetchLingerMs: number;
  /** Standalone: days of own sightings learnt from (the training period). */
  standaloneWindowDays: number;
  /** Days of own sightings kept on disk. */
  sightingsRetentionDays: number;
}

export const DEFAULT_SYNC: SyncConfig = {
  serverUrl: null,
  enrolTokenEnv: null,
  enrolTokenFile: null,
  serverPublicKey: null,
  serverPublicKeyFile: null,
  mode: 'buckets',
  syncCron: '7 */4 * * *',
  jitterMs: 30 * 60_000,
  backoffInitialMs: 30_000,
  backoffMaxMs: 60 * 60_000,
  requestTimeoutMs: 60_000,
  maxDownloadBytes: 2 * 1024 * 1024 * 1024,
  caFile: null,
  serverCertSha256: null,
  allowInsecureHttp: false,
  staleGraceMs: 6 * 60 * 60_000,
  serverName: null,
  pendingMaxEvents: 10_000,
  pendingTimeoutMs: 10 * 60_000,
  bucketIdleMs: 45 * 86_400_000,
  bucketFetchLingerMs: 200,
  standaloneWindowDays: 30,
  sightingsRetentionDays: 35,
};

// ---------------------------------------------------------------------------
// server: the baseline server (`rarecon server`)

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
  /**
   * Request bodies held in memory at once, all requests together, counting
   * 5 bytes per body byte (the bytes, their text, what JSON makes of them).
   * A request that would pass it is answered 503 with Retry-After.
   */
  memoryBudgetBytes: number;
}

/** A token bucket: `perMinute` on average, up to `burst` at once; perMinute 0 = no limit. */
export interface RateLimit {
  perMinute: number;
  burst: number;
}

/** Beyond these a request is answered 429 with Retry-After. Addresses are the TCP peer's. */
export interface ServerRateLimits {
  enrolPerAddress: RateLimit;
  /** Sightings, alerts and credential rotations. */
  uploadPerAddress: RateLimit;
  uploadPerCredential: RateLimit;
  /** Baseline metadata, snapshots, deltas and buckets. */
  downloadPerAddress: RateLimit;
  downloadPerCredential: RateLimit;
  adminPerAddress: RateLimit;
}

export interface ServerConfig {
  /** SQLite databases, the signing key, published baseline files. */
  stateDir: string;
  listenHost: string;
  port: number;
  /** PEM files of the server's certificate and key; both null = the server's own (made at first start in the state folder). */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** Listen in clear text (HTTP) instead of HTTPS: tokens, credentials, sightings and alerts then cross the network readable. Warned at every start. */
  plainHttp: boolean;
  /** `rarecon server enroll` without --max-hosts: the hosts one enrolment token admits. */
  enrolMaxHostsDefault: number;
  /** With observerUnit `host`, a host counts as an observer from its Nth distinct day of uploads (DETECTION.md section 9: 3). */
  hostMinUploadDays: number;
  /** A host credential expires this long after it was issued (0 = never); endpoints rotate theirs half-way. */
  credentialLifetimeMs: number;
  /** After a rotation the previous credential stays good this long (requests in flight). */
  credentialGraceMs: number;
  /** Each baseline promises a newer one by the next scheduled build plus this (endpoints warn after). */
  buildGraceMs: number;
  rateLimits: ServerRateLimits;
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
  /** Where orgs, hosts, sightings, alerts and the published baselines live: `sqlite` (files in stateDir, one node) or `postgresql` (shared by any number of nodes). */
  store: 'sqlite' | 'postgresql';
  postgres: ServerPostgresConfig;
}

/** server.postgres: read only with server.store postgresql (docs/deployment.md). */
export interface ServerPostgresConfig {
  /** libpq connection URL of the primary, e.g. postgresql://rarecon@db1/rarecon (a password is better in PGPASSWORD or ~/.pgpass). */
  url: string | null;
  /** A hot standby serving baseline downloads (version, buckets, deltas, snapshot); null = the primary serves them. */
  readUrl: string | null;
  /** Connections this node keeps to each of url and readUrl. */
  poolSize: number;
  /** A request's statement is cancelled after this (0 = no limit); the aggregation has its own, aggregateTimeoutMs. */
  statementTimeoutMs: number;
  aggregateTimeoutMs: number;
  /** work_mem and maintenance_work_mem of the build sessions, MiB (two sessions overlap: up to twice this): the distinct-observer hash tables stay in memory up to it. */
  aggregateWorkMemMiB: number;
}

export const DEFAULT_SERVER_STATE_DIR = '/var/lib/rarecon-server';

export const DEFAULT_SERVER: ServerConfig = {
  stateDir: DEFAULT_SERVER_STATE_DIR,
  listenHost: '0.0.0.0',
  port: 8787,
  tlsCertFile: null,
  tlsKeyFile: null,
  plainHttp: false,
  enrolMaxHostsDefault: 1_000,
  hostMinUploadDays: 3,
  credentialLifetimeMs: 30 * 86_400_000,
  credentialGraceMs: 60 * 60_000,
  buildGraceMs: 2 * 60 * 60_000,
  rateLimits: {
    enrolPerAddress: { perMinute: 60, burst: 30 },
    uploadPerAddress: { perMinute: 3_000, burst: 500 },
    uploadPerCredential: { perMinute: 120, burst: 60 },
    downloadPerAddress: { perMinute: 6_000, burst: 1_000 },
    downloadPerCredential: { perMinute: 240, burst: 120 },
    adminPerAddress: { perMinute: 120, burst: 60 },
  },
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
    memoryBudgetBytes: 256 * 1024 * 1024,
  },
  store: 'sqlite',
  postgres: {
    url: null,
    readUrl: null,
    poolSize: 10,
    statementTimeoutMs: 30_000,
    aggregateTimeoutMs: 30 * 60_000,
    aggregateWorkMemMiB: 512,
  },
};

// ---------------------------------------------------------------------------
// The daemon's own settings, and the whole file

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
