// A baseline file for the daemon tests, built with the product's own builder:
// observer unit host, 12 observers with sightings over 20 days (so the window
// covers more than the 14 days the detector needs).
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { DAY_MS } from '../../src/model/baseline.js';

export interface BaselineSpec {
  /** sha256s every observer ran: globally common processes. */
  commonSha256: string[];
  /** Combos every observer saw: common, no alert. */
  commonCombos?: Array<{ sha256: string; rootDomain: string; port: number }>;
  /** Combos seen by `observers` hosts (for rare / uncommon tiers). */
  combos?: Array<{ sha256: string; rootDomain: string; port: number; observers: number }>;
  /** sha256s seen by fewer hosts than the common threshold. */
  uncommonSha256?: Array<{ sha256: string; observers: number }>;
}

export const BASELINE_OBSERVERS = 12;

export function writeBaseline(path: string, spec: BaselineSpec, nowMs = Date.now()): void {
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
  const days = [today - 20 * DAY_MS, today - 10 * DAY_MS, today - DAY_MS];
  const add = (observer: string, sha256: string, rootDomain: string | null, port: number | null): void => {
    for (const dayMs of days)
      if (!b.add({ observer, dayMs, sha256, rootDomain, port })) throw new Error(`baseline builder refused a sighting of ${sha256}`);
  };
  for (let o = 0; o < BASELINE_OBSERVERS; o++) {
    const observer = `e2e-host-${o}`;
    for (const sha of spec.commonSha256) add(observer, sha, null, null);
    for (const c of spec.commonCombos ?? []) add(observer, c.sha256, c.rootDomain, c.port);
    for (const c of spec.combos ?? []) if (o < c.observers) add(observer, c.sha256, c.rootDomain, c.port);
    for (const u of spec.uncommonSha256 ?? []) if (o < u.observers) add(observer, u.sha256, null, null);
  }
  const w = b.write(path, { version: 1, builtAtMs: nowMs });
  if (!w.ok) throw new Error(`baseline not written: ${w.error}`);
}
