// The global prevalence baseline as the detector sees it (DETECTION.md sections 4 and 9).

export type ObserverUnit = 'org' | 'host' | 'day';

export interface RootDomainPolicy {
  /** Private PSL suffixes honoured: `evil.github.io` is its own root domain. */
  allowPrivateDomains: boolean;
  /** Identity of the Public Suffix List, e.g. `tldts@7.6.0`. */
  pslVersion: string;
}

export interface TierThresholds {
  /** combo observers >= this: common, no alert. */
  uncommonBelowObservers: number;
  /** combo observers <= this: rare. */
  rareMaxObservers: number;
  /** combo observers <= this: very rare (0 = never seen). */
  veryRareMaxObservers: number;
  /** sha256 observers >= this: globally common process. */
  commonProcessMinObservers: number;
}

export interface BaselineMeta {
  /** Monotonic; an endpoint refuses one older than or equal to what it holds. */
  version: number;
  builtAtMs: number;
  windowStartMs: number;
  windowEndMs: number;
  observerUnit: ObserverUnit;
  /** Distinct observers in the window. */
  populationSize: number;
  policy: RootDomainPolicy;
  thresholds: TierThresholds;
  /** Combos seen by one observer only were left out (allowed when veryRareMaxObservers >= 1). */
  omitsSingleObserverCombos: boolean;
  processCount: number;
  comboCount: number;
  /**
   * The observer rule of a server's `host` unit: a host is counted only from
   * its Nth distinct day of uploads (DETECTION.md section 9). Absent: every
   * observer in the window counted (org and day units, offline builds).
   */
  observerMinUploadDays?: number;
  /** The server's schedule promises a newer baseline by then; an endpoint that has none later says so. Absent: no promise. */
  nextBuildByMs?: number;
  /**
   * Hosts whose first day the file records (table host_history): a baseline
   * built locally with `--unit host` does, for offline enrolment
   * (DETECTION.md section 2.4); a server's carries no host identities (absent or 0).
   */
  hostHistoryCount?: number;
}

/** Read path. Synchronous: better-sqlite3 is synchronous. */
export interface BaselineReader {
  /** Observers of the sha256, undefined when the baseline has never seen it. */
  process(sha256: string): number | undefined;
  /** Observers of the combo; 0 = never seen (or left out as single-observer). */
  combo(sha256: string, rootDomain: string, port: number): number;
  meta(): BaselineMeta;
  /**
   * The first day (its start, epoch ms) the baseline's own history saw the
   * host `org/id`; undefined when it holds no host history or not this host.
   */
  hostFirstDayMs?(hostKey: string): number | undefined;
  /**
   * The same answers for a caller that keeps each one itself (the detector's
   * per-id caches): without the reader's cache of recent answers, which would
   * only hold a second copy. Optional: readers without it are asked as above.
   */
  readonly uncached?: Pick<BaselineReader, 'process' | 'combo'>;
}

/** One sighting fed to the baseline builder: what one observer saw on one day. */
export interface Sighting {
  observer: string;
  dayMs: number;
  sha256: string;
  /** null for a process run without a combo. */
  rootDomain: string | null;
  port: number | null;
}

export const DAY_MS = 86_400_000;

export function dayStart(timeMs: number): number {
  return Math.floor(timeMs / DAY_MS) * DAY_MS;
}
