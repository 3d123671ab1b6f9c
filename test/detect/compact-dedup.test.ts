// Open alerts held compactly (offline runs without kept state) give the same
// alerts, in the same order, as alerts held whole; and what they hold in
// memory does not grow with the number of open alerts past its bound.
import { describe, expect, it } from 'vitest';
import { Scorer } from '../../src/detect/scorer.js';
import { StateStore } from '../../src/detect/state-store.js';
import { DEFAULT_DETECT, type DetectConfig } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import type { DetectionAlert } from '../../src/model/alert.js';
import type { SourceRecord } from '../../src/model/records.js';
import { memoryBaseline } from '../support/memory-baseline.js';
import { conn, proc, SHA_A, SHA_B } from '../support/records.js';

const T = Date.UTC(2026, 9, 1, 12);
const HOUR = 3_600_000;
const HOSTS = 7;
// SHA_A and SHA_B are common; rare.com:443 is rare for SHA_A (so it alerts as "rare", others as "very rare").
const baseline = memoryBaseline({ [SHA_A]: 50, [SHA_B]: 40 }, [[SHA_A, 'rare.com', 443, 2]]);

/** A deterministic mix: hosts, repeats, other variations, out-of-order times, windows closing mid-run. */
function records(n: number): SourceRecord[] {
  const out: SourceRecord[] = [];
  let x = 12345;
  const rnd = (m: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % m;
  };
  for (let i = 0; i < n; i++) {
    const host = `h${rnd(HOSTS)}`;
    // Mostly forward, sometimes up to 2 h back; three days in all, so windows close while scoring.
    const timeMs = T + Math.floor((i / n) * 3 * DAY_MS) - (rnd(10) === 0 ? rnd(2 * HOUR) : 0);
    const domain = rnd(4) === 0 ? 'rare.com' : `d${rnd(300)}-x${rnd(3)}.net`;
    out.push(
      conn({
        timeMs,
        host: { id: host, org: 'o1', name: `${host}.corp` },
        hostname: `api.${domain}`,
        port: rnd(3) === 0 ? 8443 : 443,
        process: proc({
          sha256: rnd(2) === 0 ? SHA_A : SHA_B,
          pid: 1000 + rnd(50),
          injection: rnd(40) === 0 ? { injected: true, indicators: ['memfd-exe'] } : { injected: false, indicators: [] },
          signer:
            rnd(5) === 0
              ? { status: 'valid', subject: 'Mozilla Corporation', vendor: 'Mozilla' }
              : { status: 'unsigned', subject: null, vendor: null },
          cmdline: `app --n ${rnd(1000)} ünï`,
        }),
      }),
    );
  }
  return out;
}

interface Run {
  alerts: DetectionAlert[];
  outcomes: string[];
  scorer: Scorer;
}

/** As `rarecon score` runs: closed alerts taken every so often, then the rest at the end. */
function run(holding: 'objects' | 'compact', recs: readonly SourceRecord[], config: DetectConfig, maxHeldBodyBytes?: number): Run {
  const scorer = new Scorer({
    baseline,
    config,
    state: StateStore.open(null),
    nowMs: 0,
    alertWrites: 'never',
    holding,
    ...(maxHeldBodyBytes !== undefined ? { maxHeldBodyBytes } : {}),
  });
  for (let h = 0; h < HOSTS; h++) scorer.enrol(`o1/h${h}`, T - 20 * DAY_MS);
  const alerts: DetectionAlert[] = [];
  const outcomes: string[] = [];
  recs.forEach((r, i) => {
    const o = scorer.handle(r);
    outcomes.push(o.kind === 'repeat' || o.kind === 'new' ? `${o.kind} ${o.alert.uid} ${o.alert.count}` : o.kind);
    if (i % 97 === 0) alerts.push(...scorer.takeClosed());
  });
  for (const batch of scorer.finishInBatches(10)) alerts.push(...batch);
  return { alerts, outcomes, scorer };
}

describe('open alerts held compactly', () => {
  it('gives the same alerts, counts and order as whole alerts, also once their records spill to a file', () => {
    const recs = records(6000);
    const whole = run('objects', recs, DEFAULT_DETECT);
    const compact = run('compact', recs, DEFAULT_DETECT);
    // 64 KiB of records in memory at most: the rest go to the temporary file.
    const spilled = run('compact', recs, DEFAULT_DETECT, 64 * 1024);
    expect(whole.alerts.length).toBeGreaterThan(2000);
    expect(new Set(whole.alerts.map((a) => a.name)).size).toBeGreaterThanOrEqual(3);
    expect(whole.alerts.some((a) => a.count > 1)).toBe(true);
    expect(compact.alerts).toEqual(whole.alerts);
    expect(spilled.alerts).toEqual(whole.alerts);
    expect(JSON.stringify(spilled.alerts)).toBe(JSON.stringify(whole.alerts));
    expect(spilled.outcomes).toEqual(whole.outcomes);
    expect(spilled.scorer.counters).toEqual(whole.scorer.counters);
    spilled.scorer.close();
    compact.scorer.close();
  });

  it('pauses a host past its alert limit as whole alerts do (the health alert, then nothing)', () => {
    const recs = records(3000);
    const config = { ...DEFAULT_DETECT, maxAlertsPerHostPerDay: 40 };
    const whole = run('objects', recs, config);
    const compact = run('compact', recs, config, 16 * 1024);
    expect(whole.scorer.counters.healthAlertsTotal).toBeGreaterThan(0);
    expect(compact.alerts).toEqual(whole.alerts);
    expect(compact.outcomes).toEqual(whole.outcomes);
    expect(compact.scorer.counters).toEqual(whole.scorer.counters);
    compact.scorer.close();
  });

  it('holds a bounded amount of records and ~60 bytes an open alert, however many alerts are open', () => {
    const bound = 256 * 1024;
    const held = (n: number): { alerts: number; bytes: number } => {
      const scorer = new Scorer({
        baseline,
        config: { ...DEFAULT_DETECT, maxAlertsPerHostPerDay: 1_000_000 },
        state: StateStore.open(null),
        nowMs: 0,
        alertWrites: 'never',
        holding: 'compact',
        maxHeldBodyBytes: bound,
      });
      scorer.enrol('o1/h1', T - 20 * DAY_MS);
      // n distinct combos within one hour: every alert stays open.
      for (let i = 0; i < n; i++)
        scorer.handle(conn({ timeMs: T + i, hostname: `api.c${i}.net`, process: proc({ cmdline: 'x'.repeat(500) }) }));
      const h = scorer.heldAlerts()!;
      scorer.close();
      return h;
    };
    const few = held(2_000);
    const many = held(32_000);
    expect(few.alerts).toBe(2_000);
    expect(many.alerts).toBe(32_000);
    // A whole alert of this kind takes ~2 KiB; 32,000 of them ~64 MiB. Held compactly: the bound, and ~60 bytes an alert.
    expect(many.bytes).toBeLessThan(bound + 1024 * 1024 + 32_000 * 64 * 2);
    expect(many.bytes - few.bytes).toBeLessThan((32_000 - 2_000) * 128);
  });
});
