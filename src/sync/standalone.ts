// Standalone mode (no server): the baseline is learnt from this host's own
// sightings, each day one observer (unit `day`), rebuilt on the schedule by
// the shared builder and renamed over baseline.db.
import { DAY_MS, type RootDomainPolicy, type TierThresholds } from '../model/baseline.js';
import { BaselineBuilder, type WriteResult } from '../baseline/builder.js';
import type { SyncConfig } from '../config/defaults.js';
import type { BaselineFile } from './baseline-file.js';
import type { SightingsStore } from './sightings-store.js';
import { fail, type Changed } from './step.js';

export interface StandaloneBuildOptions {
  outPath: string;
  windowDays: number;
  thresholds: TierThresholds;
  policy: RootDomainPolicy;
  nowMs: number;
  /** Must grow from build to build; default nowMs. */
  version?: number;
}

/**
 * The standalone baseline: this host's own days as observers, written
 * atomically by the shared builder over `outPath`. The window ends with today.
 */
export function buildStandaloneBaseline(store: SightingsStore, opts: StandaloneBuildOptions): WriteResult & { fed?: number } {
  const builder = new BaselineBuilder({
    unit: 'day',
    windowDays: opts.windowDays,
    thresholds: opts.thresholds,
    policy: opts.policy,
    omitSingleObserverCombos: false,
  });
  const endMs = (Math.floor(opts.nowMs / DAY_MS) + 1) * DAY_MS;
  const fed = store.feed(builder, endMs - opts.windowDays * DAY_MS, endMs);
  const r = builder.write(opts.outPath, { version: opts.version ?? opts.nowMs, builtAtMs: opts.nowMs, windowEndMs: endMs });
  return r.ok ? { ...r, fed } : r;
}

export interface StandaloneOptions {
  cfg: Pick<SyncConfig, 'standaloneWindowDays' | 'sightingsRetentionDays'>;
  store: SightingsStore | null | undefined;
  baseline: BaselineFile;
  thresholds: TierThresholds;
  policy: RootDomainPolicy;
  now: () => number;
}

/** Rebuilds the baseline from the sightings, puts it in force and prunes days past retention. */
export function rebuildStandalone(o: StandaloneOptions): Changed {
  const store = o.store;
  if (store === null || store === undefined) return fail('no-sightings', 'standalone mode needs the sightings store of this host');
  const nowMs = o.now();
  const prev = o.baseline.reader()?.meta().version ?? 0;
  const r = buildStandaloneBaseline(store, {
    outPath: o.baseline.path,
    windowDays: o.cfg.standaloneWindowDays,
    thresholds: o.thresholds,
    policy: o.policy,
    nowMs,
    // Newer than the one in force even when the clock went back.
    version: Math.max(prev + 1, nowMs),
  });
  if (!r.ok) return fail('build-failed', r.error);
  store.prune(nowMs - o.cfg.sightingsRetentionDays * 86_400_000);
  return o.baseline.reopen();
}
