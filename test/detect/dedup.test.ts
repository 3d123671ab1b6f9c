import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Scorer } from '../../src/detect/scorer.js';
import { StateStore } from '../../src/detect/state-store.js';
import { DEFAULT_DETECT, type DetectConfig } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import type { SourceRecord } from '../../src/model/records.js';
import { memoryBaseline } from '../support/memory-baseline.js';
import { conn, proc, SHA_A } from '../support/records.js';

const T = Date.UTC(2026, 9, 1, 12);
const HOUR = 3_600_000;
const baseline = memoryBaseline({ [SHA_A]: 50 }, [[SHA_A, 'rare.com', 443, 2]]);
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function scorer(state = StateStore.open(null), config: DetectConfig = DEFAULT_DETECT) {
  const s = new Scorer({ baseline, config, state, nowMs: 0 });
  s.enrol('o1/h1', T - 20 * DAY_MS);
  return s;
}
const at = (ms: number, over: Parameters<typeof conn>[0] = {}): SourceRecord => conn({ timeMs: ms, hostname: 'c2.example.com', ...over });

describe('dedup (DETECTION.md section 6)', () => {
  it('folds repeats inside 24 h into one alert with count and last seen', () => {
    const s = scorer();
    expect(s.handle(at(T)).kind).toBe('new');
    expect(s.handle(at(T + HOUR)).kind).toBe('repeat');
    expect(s.handle(at(T + 23 * HOUR)).kind).toBe('repeat');
    const [a, ...rest] = s.finish();
    expect(rest).toEqual([]);
    expect(a).toMatchObject({ count: 3, firstSeenMs: T, lastSeenMs: T + 23 * HOUR });
  });

  it('raises again after 24 h, and closes the first alert with its final count', () => {
    const s = scorer();
    const first = s.handle(at(T));
    s.handle(at(T + 2 * HOUR));
    const second = s.handle(at(T + 24 * HOUR));
    expect(second.kind).toBe('new');
    const closed = s.takeClosed();
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ count: 2, uid: first.kind === 'new' ? first.alert.uid : '' });
    expect(second.kind === 'new' && second.alert.uid).not.toBe(closed[0]!.uid);
  });

  it('raises a higher variation for the same combo; a plain event again repeats the lower alert', () => {
    const s = scorer();
    expect(s.handle(at(T, { hostname: 'rare.com' }))).toMatchObject({ kind: 'new', alert: { severity: 'Low' } });
    const injected = proc({ injection: { injected: true, indicators: ['memfd-exe'] } });
    expect(s.handle(at(T + 1000, { hostname: 'rare.com', process: injected }))).toMatchObject({ kind: 'new', alert: { severity: 'High' } });
    // a plain event again is the Low alert's repeat, not a third alert
    expect(s.handle(at(T + 2000, { hostname: 'rare.com' }))).toMatchObject({ kind: 'repeat', alert: { severity: 'Low', count: 2 } });
  });

  it('a lower-severity event raises its own alert beside an open higher one (the key holds the alert name)', () => {
    const s = scorer();
    const injected = proc({ injection: { injected: true, indicators: ['memfd-exe'] } });
    expect(s.handle(at(T, { hostname: 'rare.com', process: injected }))).toMatchObject({ kind: 'new', alert: { severity: 'High' } });
    expect(s.handle(at(T + 1000, { hostname: 'rare.com' }))).toMatchObject({ kind: 'new', alert: { severity: 'Low', count: 1 } });
    expect(s.handle(at(T + 2000, { hostname: 'rare.com' }))).toMatchObject({ kind: 'repeat', alert: { severity: 'Low', count: 2 } });
    expect(s.handle(at(T + 3000, { hostname: 'rare.com', process: injected }))).toMatchObject({ kind: 'repeat', alert: { severity: 'High', count: 2 } });
    // another port is another combo: its own alert
    expect(s.handle(at(T + 4000, { hostname: 'rare.com', port: 8443 }))).toMatchObject({ kind: 'new', alert: { severity: 'Medium' } });
    expect(s.finish().map((a) => [a.severity, a.count])).toEqual([
      ['High', 2],
      ['Low', 2],
      ['Medium', 1],
    ]);
  });

  it("a future-dated record of one host changes no other host's alerts (windows in each host's own event time)", () => {
    const run = (future: boolean) => {
      const s = scorer();
      s.enrol('o1/h2', T - 20 * DAY_MS);
      const h2 = { id: 'h2', org: 'o1' };
      const outcomes = [s.handle(at(T)).kind, s.handle(at(T, { host: h2 })).kind];
      // h2's clock is wrong: one record stamped two days ahead.
      if (future) outcomes.push(s.handle(at(T + 2 * DAY_MS, { host: h2, hostname: 'x.other.org' })).kind);
      outcomes.push(s.handle(at(T + 5 * HOUR)).kind, s.handle(at(T + 6 * HOUR, { host: h2 })).kind);
      return { outcomes, closed: s.takeClosed(), all: s.finish() };
    };
    const plain = run(false);
    const skewed = run(true);
    expect(plain.outcomes).toEqual(['new', 'new', 'repeat', 'repeat']);
    // h1's alert stays open and takes its repeat; h2's own window closes by its own (future) clock.
    expect(skewed.outcomes).toEqual(['new', 'new', 'new', 'repeat', 'new']);
    expect(skewed.closed.map((a) => [a.host.id, a.count])).toEqual([['h2', 1]]);
    const h1 = (r: typeof plain) => r.all.filter((a) => a.host.id === 'h1').map((a) => [a.firstSeenMs, a.count, a.uid]);
    expect(h1(skewed)).toEqual(h1(plain));
    expect(h1(plain)).toEqual([[T, 2, expect.any(String)]]);
  });

  it('lists alerts first seen at the same time in the order they were raised', () => {
    const s = scorer();
    const names = ['c.three.com', 'c.one.com', 'c.two.com'];
    for (const hostname of names) expect(s.handle(at(T, { hostname })).kind).toBe('new');
    expect(s.handle(at(T + HOUR, { hostname: 'c.one.com' })).kind).toBe('repeat');
    expect(s.finish().map((a) => [a.connection.hostname, a.count])).toEqual([
      ['c.three.com', 1],
      ['c.one.com', 2],
      ['c.two.com', 1],
    ]);
  });

  it('keys on host, sha256, root domain and port', () => {
    const s = scorer();
    s.enrol('o1/h2', T - 20 * DAY_MS);
    expect(s.handle(at(T)).kind).toBe('new');
    expect(s.handle(at(T, { hostname: 'other.c2.example.com' })).kind).toBe('repeat');
    expect(s.handle(at(T, { port: 8443 })).kind).toBe('new');
    expect(s.handle(at(T, { host: { id: 'h2', org: 'o1' } })).kind).toBe('new');
    expect(s.handle(at(T, { hostname: 'c2.example.net' })).kind).toBe('new');
  });

  it('keeps dedup and enrolment across a restart (state in SQLite)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rarecon-state-'));
    dirs.push(dir);
    const s1 = scorer(StateStore.open(dir));
    expect(s1.handle(at(T)).kind).toBe('new');
    s1.handle(at(T + HOUR));
    s1.flush();
    const st2 = StateStore.open(dir);
    const s2 = new Scorer({ baseline, config: DEFAULT_DETECT, state: st2, nowMs: T + 2 * HOUR });
    const again = s2.handle(at(T + 2 * HOUR));
    expect(again).toMatchObject({ kind: 'repeat', alert: { count: 3 } });
    expect(st2.enrolledAt('o1/h1')).toBe(T - 20 * DAY_MS);
    // The repeat is written over the same row (same dedup key), not beside it.
    s2.flush();
    st2.close();
    const st3 = StateStore.open(dir);
    const rows = st3.openAlerts(0);
    expect(rows.map((r) => [r.dedupKey, r.alert.count])).toEqual([[`o1/h1|${SHA_A}|example.com|443|${rows[0]!.alert.name}`, 3]]);
    st3.close();
  });

  it('pauses a host after too many alerts in 24 h and raises one health alert', () => {
    const s = scorer(StateStore.open(null), { ...DEFAULT_DETECT, maxAlertsPerHostPerDay: 3 });
    const kinds = [1, 2, 3, 4, 5, 6].map((i) => s.handle(at(T + i, { port: 1000 + i })).kind);
    expect(kinds).toEqual(['new', 'new', 'new', 'health', 'none', 'none']);
    expect(s.counters.pausedTotal).toBe(2);
    expect(s.counters.healthAlertsTotal).toBe(1);
    // after the 24 h window the host is scored again
    expect(s.handle(at(T + DAY_MS + 10, { port: 2000 })).kind).toBe('new');
  });
});
