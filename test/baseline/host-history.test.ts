// The baseline's host history (format.ts host_history): a local build with unit
// host records each host's first day, which offline scoring takes as its
// enrolment (DETECTION.md section 2.4); a server's build carries none.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { openBaseline } from '../../src/baseline/store.js';
import { DEFAULT_DETECT, DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { Scorer } from '../../src/detect/scorer.js';
import { StateStore } from '../../src/detect/state-store.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { conn, SHA_A } from '../support/records.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-host-history-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const END = Date.UTC(2026, 9, 1);

function build(name: string, recordHostHistory: boolean): string {
  const b = new BaselineBuilder({
    unit: 'host',
    windowDays: 30,
    thresholds: DEFAULT_THRESHOLDS,
    policy: DEFAULT_POLICY,
    recordHostHistory,
  });
  for (let h = 0; h < 12; h++) b.add({ observer: `o1/h${h}`, dayMs: END - (20 + h) * DAY_MS, sha256: SHA_A, rootDomain: null, port: null });
  // A host whose logs held nothing hashed, seen 40 days before (before the window, still its first day).
  b.seeHost('o1/quiet', END - 40 * DAY_MS + 5_000);
  const path = join(tmp, name);
  const w = b.write(path, { version: 1, builtAtMs: END, windowEndMs: END });
  if (!w.ok) throw new Error(w.error);
  return path;
}

describe('host history', () => {
  it("records each host's first day, sightings or not, and reads it back", () => {
    const opened = openBaseline(build('history.db', true));
    if (!opened.ok) throw new Error(opened.error);
    const b = opened.baseline;
    expect(b.meta().hostHistoryCount).toBe(13);
    // h11 (31 days back) is outside the 30-day window for prevalence, still in the history.
    expect(b.meta().populationSize).toBe(11);
    expect(b.hostFirstDayMs('o1/h0')).toBe(END - 20 * DAY_MS);
    expect(b.hostFirstDayMs('o1/h11')).toBe(END - 31 * DAY_MS);
    expect(b.hostFirstDayMs('o1/quiet')).toBe(END - 40 * DAY_MS);
    expect(b.hostFirstDayMs('o1/unknown')).toBeUndefined();
    b.close();
  });

  it('a build without it (as the server makes) carries no host identities', () => {
    const opened = openBaseline(build('plain.db', false));
    if (!opened.ok) throw new Error(opened.error);
    expect(opened.baseline.meta().hostHistoryCount).toBeUndefined();
    expect(opened.baseline.hostFirstDayMs('o1/h0')).toBeUndefined();
    opened.baseline.close();
    expect(
      () =>
        new BaselineBuilder({
          unit: 'org',
          windowDays: 30,
          thresholds: DEFAULT_THRESHOLDS,
          policy: DEFAULT_POLICY,
          recordHostHistory: true,
        }),
    ).toThrow(/host history needs unit host/);
  });

  it("is the host's enrolment when scoring: the earliest of history, state and inputs", () => {
    const opened = openBaseline(build('history-2.db', true));
    if (!opened.ok) throw new Error(opened.error);
    const state = StateStore.open(null);
    const s = new Scorer({ baseline: opened.baseline, config: DEFAULT_DETECT, state, nowMs: 0, alertWrites: 'never' });
    // h0 first seen 20 days before END: active on its first record today; an unknown host learns.
    expect(s.handle(conn({ timeMs: END + 1000, host: { id: 'h0', org: 'o1' }, hostname: 'c2.example.com' })).kind).toBe('new');
    expect(s.handle(conn({ timeMs: END + 2000, host: { id: 'h-new', org: 'o1' }, hostname: 'c2.example.com' })).kind).toBe('none');
    expect(s.learningHosts().map((h) => [h.hostKey, h.daysLeft])).toEqual([['o1/h-new', 14]]);
    expect(state.enrolledAt('o1/h0')).toBe(END - 20 * DAY_MS);
    state.close();
    opened.baseline.close();
  });
});
