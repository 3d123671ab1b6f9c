// Every default of rarecon, in one place. The config file overrides these;
// `schema.ts` validates a file against the shape given here.
import type { TierThresholds } from '../model/baseline.js';

export const DEFAULT_THRESHOLDS: TierThresholds = Object.freeze({
  uncommonBelowObservers: 10,
  rareMaxObservers: 3,
  veryRareMaxObservers: 1,
  commonProcessMinObservers: 10,
});

/** Matched case-insensitively against the signer's vendor or subject (DETECTION.md section 5). */
export const DEFAULT_KNOWN_VENDORS: readonly string[] = [
  'Microsoft', 'Apple', 'Google', 'Mozilla', 'Adobe', 'Oracle', 'Intel', 'NVIDIA', 'Cisco', 'VMware',
  'Zoom', 'Slack', 'Dropbox', 'Amazon', 'IBM', 'Dell', 'HP', 'Lenovo', 'Citrix', 'Atlassian', 'JetBrains',
  'Docker', 'GitHub', 'Valve', 'Spotify', 'Logitech', 'AMD', 'Qualcomm', 'Broadcom', 'Canonical',
  // Linux distributions whose package signatures verify the file
  'Debian', 'Ubuntu', 'Red Hat', 'Fedora', 'SUSE', 'openSUSE', 'CentOS', 'Rocky Linux', 'AlmaLinux', 'Arch Linux', 'Alpine',
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
}

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
};

export interface BaselineStoreConfig {
  /** SQLite page cache per open baseline, KiB. Bounded so resident memory does not grow with the baseline. */
  cacheSizeKiB: number;
  /** Entries in the in-memory lookup caches in front of SQLite. */
  lookupCacheEntries: number;
}

export const DEFAULT_BASELINE_STORE: BaselineStoreConfig = {
  // Holds the interior pages of a 10M-combo baseline (lookups read one leaf page each); 8 MiB
  // was no faster and cost `rarecon score` 4-6 MiB of its 200 MB (measured).
  cacheSizeKiB: 4 * 1024,
  lookupCacheEntries: 200_000,
};

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
}

export const DEFAULT_WATCHDOG: WatchdogConfig = {
  enabled: true,
  intervalMs: 2_000,
  cpuPercent: 5,
  memoryBytes: 200 * 1024 * 1024,
  hardMemoryBytes: 280 * 1024 * 1024,
  recoverSamples: 3,
  sampleOneIn: 4,
};
