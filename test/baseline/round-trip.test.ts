import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaselineBuilder, type BaselineBuilderOptions } from '../../src/baseline/builder.js';
import { observerId } from '../../src/model/observer.js';
import { openBaseline, type SqliteBaseline } from '../../src/baseline/store.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { DAY_MS, type Sighting } from '../../src/model/baseline.js';

const DAY0 = Date.UTC(2026, 9, 1);

function day(n: number): number {
  return DAY0 + n * DAY_MS;
}

/** A deterministic sha256 hex for a name. */
function sha(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

function sighting(observer: string, dayN: number, sha256: string, rootDomain: string | null = null, port: number | null = null): Sighting {
  return { observer, dayMs: day(dayN), sha256, rootDomain, port };
}

function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-baseline-'));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const CURL = sha('curl');
const SSH = sha('ssh');
const NEVER = sha('never-seen');

function builder(over: Partial<BaselineBuilderOptions> = {}): BaselineBuilder {
  return new BaselineBuilder({ unit: 'org', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY, ...over });
}

let tmp: ReturnType<typeof tempDir>;
const opened: SqliteBaseline[] = [];
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => {
  for (const b of opened.splice(0)) b.close();
  tmp.cleanup();
});

function open(path: string): SqliteBaseline {
  const r = openBaseline(path);
  if (!r.ok) throw new Error(r.error);
  opened.push(r.baseline);
  return r.baseline;
}

describe('baseline build -> open -> lookups', () => {
  it('counts distinct observers per sha256 and per combo, org unit', () => {
    const b = builder();
    // org a sees curl -> example.com:443 from two hosts on two days: still one observer
    expect(b.add(sighting('a', 0, CURL, 'example.com', 443))).toBe(true);
    b.add(sighting('a', 0, CURL, 'example.com', 443));
    b.add(sighting('a', 3, CURL, 'example.com', 443));
    b.add(sighting('b', 1, CURL, 'example.com', 443));
    b.add(sighting('b', 1, CURL, 'example.com', 8443));
    // org c runs curl without any combo: counts for process prevalence only
    b.add(sighting('c', 2, CURL));
    b.add(sighting('c', 2, SSH, 'evil.github.io', 22));
    const out = tmp.path('b.db');
    const w = b.write(out, { version: 7, builtAtMs: day(5) });
    expect(w.ok).toBe(true);
    if (!w.ok) return;
    expect(readdirSync(tmp.dir)).toEqual(['b.db']); // no temp file left behind

    const r = open(out);
    expect(r.process(CURL)).toBe(3);
    expect(r.process(CURL.toUpperCase())).toBe(3);
    expect(r.process(SSH)).toBe(1);
    expect(r.process(NEVER)).toBeUndefined();
    expect(r.process('not-a-sha')).toBeUndefined();
    expect(r.process('z'.repeat(64))).toBeUndefined();
    expect(r.combo(CURL, 'example.com', 443)).toBe(2);
    expect(r.combo(CURL.toUpperCase(), 'example.com', 443)).toBe(2);
    expect(r.combo(CURL, 'example.com', 8443)).toBe(1);
    expect(r.combo(CURL, 'example.org', 443)).toBe(0);
    expect(r.combo(SSH, 'evil.github.io', 22)).toBe(1);
    expect(r.combo(NEVER, 'example.com', 443)).toBe(0);
    expect(r.combo(CURL, 'example.com', 70_000)).toBe(0);
    expect(r.combo('short', 'example.com', 443)).toBe(0);

    const m = r.meta();
    expect(m).toEqual({
      version: 7,
      builtAtMs: day(5),
      windowStartMs: day(0),
      windowEndMs: day(4),
      observerUnit: 'org',
      populationSize: 3,
      policy: DEFAULT_POLICY,
      thresholds: DEFAULT_THRESHOLDS,
      omitsSingleObserverCombos: false,
      processCount: 2,
      comboCount: 3,
    });
    expect(w.meta).toEqual(m);
    expect(w.sightingsInWindow).toBe(7);
    expect(w.droppedOutsideWindowTotal).toBe(0);
  });

  it('counts hosts for the host unit and days for the day unit', () => {
    const hostB = builder({ unit: 'host' });
    const dayB = builder({ unit: 'day' });
    const events = [
      { org: 'o1', host: 'h1', d: 0 },
      { org: 'o1', host: 'h1', d: 1 },
      { org: 'o1', host: 'h2', d: 1 },
      { org: 'o2', host: 'h1', d: 2 }, // same host id, other org: another host
    ];
    for (const e of events) {
      for (const [bb, unit] of [
        [hostB, 'host'],
        [dayB, 'day'],
      ] as const) {
        const obs = observerId(unit, e.org, e.host, day(e.d) + 3_600_000);
        bb.add({ observer: obs, dayMs: day(e.d), sha256: CURL, rootDomain: 'example.com', port: 443 });
      }
    }
    expect(observerId('org', 'o1', 'h1', 0)).toBe('o1');
    expect(observerId('host', 'o1', 'h1', 0)).toBe('o1/h1');
    expect(observerId('day', 'o1', 'h1', day(1) + 5)).toBe('2026-10-02');
    expect(observerId('day', 'o1', 'h1', Number.NaN)).toBe('');

    expect(hostB.write(tmp.path('host.db'), { version: 1, builtAtMs: 0 }).ok).toBe(true);
    expect(dayB.write(tmp.path('day.db'), { version: 1, builtAtMs: 0 }).ok).toBe(true);
    const host = open(tmp.path('host.db'));
    const days = open(tmp.path('day.db'));
    expect(host.combo(CURL, 'example.com', 443)).toBe(3);
    expect(host.meta().observerUnit).toBe('host');
    expect(host.meta().populationSize).toBe(3);
    expect(days.combo(CURL, 'example.com', 443)).toBe(3);
    expect(days.process(CURL)).toBe(3);
    expect(days.meta().observerUnit).toBe('day');
  });

  it('cuts the window to windowDays before its end and counts what it drops', () => {
    const b = builder({ windowDays: 30 });
    b.add(sighting('old', 0, CURL, 'example.com', 443)); // before the window
    b.add(sighting('a', 15, CURL, 'example.com', 443));
    b.add(sighting('b', 40, CURL, 'example.com', 443));
    b.add(sighting('old', 2, SSH, 'example.com', 22)); // SSH only seen before the window
    const w = b.write(tmp.path('w.db'), { version: 1, builtAtMs: day(41) });
    if (!w.ok) throw new Error(w.error);
    expect(w.droppedOutsideWindowTotal).toBe(2);
    expect(w.sightingsInWindow).toBe(2);
    const r = open(tmp.path('w.db'));
    expect(r.meta().windowEndMs).toBe(day(41));
    expect(r.meta().windowStartMs).toBe(day(11));
    expect(r.meta().populationSize).toBe(2);
    expect(r.combo(CURL, 'example.com', 443)).toBe(2);
    expect(r.process(CURL)).toBe(2);
    expect(r.process(SSH)).toBeUndefined();
    expect(r.combo(SSH, 'example.com', 22)).toBe(0);
  });

  it('starts the window at the earliest sighting when there is less data, and honours an explicit end', () => {
    const b = builder({ windowDays: 30 });
    b.add(sighting('a', 3, CURL, 'example.com', 443));
    b.add(sighting('b', 5, CURL, 'example.com', 443));
    b.add(sighting('c', 9, CURL, 'example.com', 443)); // after the explicit end
    const w = b.write(tmp.path('e.db'), { version: 1, builtAtMs: day(9), windowEndMs: day(5) + 3_600_000 });
    if (!w.ok) throw new Error(w.error);
    expect(w.meta.windowStartMs).toBe(day(3));
    expect(w.meta.windowEndMs).toBe(day(6)); // rounded up to the day boundary
    expect(w.droppedOutsideWindowTotal).toBe(1);
    expect(w.pairsSpanningWindow).toBe(0);
    expect(open(tmp.path('e.db')).combo(CURL, 'example.com', 443)).toBe(2);
  });

  it('leaves out single-observer combos only when asked and veryRareMaxObservers >= 1', () => {
    const feed = (bb: BaselineBuilder): void => {
      bb.add(sighting('a', 0, CURL, 'one.example', 443));
      bb.add(sighting('a', 1, CURL, 'two.example', 443));
      bb.add(sighting('b', 1, CURL, 'two.example', 443));
    };
    const omit = builder({ omitSingleObserverCombos: true });
    feed(omit);
    const w = omit.write(tmp.path('omit.db'), { version: 1, builtAtMs: 0 });
    if (!w.ok) throw new Error(w.error);
    expect(w.omittedSingleObserverCombos).toBe(1);
    const r = open(tmp.path('omit.db'));
    expect(r.meta().omitsSingleObserverCombos).toBe(true);
    expect(r.meta().comboCount).toBe(1);
    expect(r.combo(CURL, 'one.example', 443)).toBe(0);
    expect(r.combo(CURL, 'two.example', 443)).toBe(2);
    expect(r.process(CURL)).toBe(2);

    const strict = builder({ omitSingleObserverCombos: true, thresholds: { ...DEFAULT_THRESHOLDS, veryRareMaxObservers: 0 } });
    feed(strict);
    const w2 = strict.write(tmp.path('keep.db'), { version: 1, builtAtMs: 0 });
    if (!w2.ok) throw new Error(w2.error);
    expect(w2.omittedSingleObserverCombos).toBe(0);
    const r2 = open(tmp.path('keep.db'));
    expect(r2.meta().omitsSingleObserverCombos).toBe(false);
    expect(r2.meta().thresholds.veryRareMaxObservers).toBe(0);
    expect(r2.combo(CURL, 'one.example', 443)).toBe(1);
  });

  it('carries custom thresholds and policy in the meta', () => {
    const thresholds = { uncommonBelowObservers: 50, rareMaxObservers: 5, veryRareMaxObservers: 2, commonProcessMinObservers: 20 };
    const policy = { allowPrivateDomains: false, pslVersion: DEFAULT_POLICY.pslVersion };
    const b = builder({ thresholds, policy, unit: 'host' });
    b.add(sighting('o/h', 0, CURL, 'example.com', 443));
    expect(b.write(tmp.path('t.db'), { version: 3, builtAtMs: 1 }).ok).toBe(true);
    const m = open(tmp.path('t.db')).meta();
    expect(m.thresholds).toEqual(thresholds);
    expect(m.policy).toEqual(policy);
    expect(Object.isFrozen(m)).toBe(true);
  });

  it('rejects and counts malformed sightings', () => {
    const b = builder();
    expect(b.add(sighting('', 0, CURL))).toBe(false);
    expect(b.add({ observer: 'a', dayMs: Number.NaN, sha256: CURL, rootDomain: null, port: null })).toBe(false);
    expect(b.add(sighting('a', 0, 'abc'))).toBe(false);
    expect(b.add(sighting('a', 0, 'g'.repeat(64)))).toBe(false);
    expect(b.add(sighting('a', 0, CURL, 'example.com', null))).toBe(false);
    expect(b.add(sighting('a', 0, CURL, 'example.com', 65_536))).toBe(false);
    expect(b.add(sighting('a', 0, CURL, '', 443))).toBe(false);
    expect(b.add(sighting('a', 0, CURL, 'example.com', 443))).toBe(true);
    const s = b.stats();
    expect(s.acceptedTotal).toBe(1);
    expect(s.rejectedTotal).toBe(7);
    expect(s.rejected).toEqual({ observer: 1, day: 1, sha256: 2, combo: 3 });
    expect(s.observers).toBe(1);
    expect(s.combos).toBe(1);
    expect(s.firstDayMs).toBe(day(0));
  });

  it('refuses bad write options and an empty builder as values', () => {
    const b = builder();
    expect(b.write(tmp.path('x.db'), { version: 1, builtAtMs: 0 })).toMatchObject({
      ok: false,
      error: expect.stringContaining('no sightings'),
    });
    expect(b.write(tmp.path('x.db'), { version: 0, builtAtMs: 0 })).toMatchObject({ ok: false });
    const empty = b.write(tmp.path('empty.db'), { version: 1, builtAtMs: 0, windowEndMs: day(30) });
    expect(empty.ok).toBe(true);
    expect(open(tmp.path('empty.db')).meta()).toMatchObject({ populationSize: 0, comboCount: 0, windowStartMs: day(0) });
    b.add(sighting('a', 0, CURL));
    expect(b.write(tmp.path('no/such/dir/x.db'), { version: 1, builtAtMs: 0 })).toMatchObject({
      ok: false,
      error: expect.stringContaining('no/such/dir/x.db'),
    });
  });

  it('serves repeated lookups from its cache, in batches, and closes twice safely', () => {
    const b = builder();
    for (let i = 0; i < 100; i++) b.add(sighting(`o${i % 7}`, i % 20, sha(`p${i % 10}`), `d${i}.example`, 443));
    expect(b.write(tmp.path('c.db'), { version: 1, builtAtMs: 0 }).ok).toBe(true);
    const r = open(tmp.path('c.db'));
    r.beginBatch();
    r.beginBatch(); // nests
    for (let i = 0; i < 100; i++) expect(r.combo(sha(`p${i % 10}`), `d${i}.example`, 443)).toBe(1);
    r.endBatch();
    r.endBatch();
    r.endBatch(); // unbalanced end is harmless
    const before = r.cacheStats();
    for (let i = 0; i < 100; i++) r.combo(sha(`p${i % 10}`), `d${i}.example`, 443);
    for (let i = 0; i < 10; i++) r.process(sha(`p${i}`));
    for (let i = 0; i < 10; i++) expect(r.process(sha(`p${i}`))).toBe(7);
    const after = r.cacheStats();
    expect(after.comboHits - before.comboHits).toBe(100);
    expect(after.processHits).toBe(10);
    expect(r.integrityProblem()).toBeNull();
    r.close();
    r.close();
  });

  it('answers right when every lookup fights for one cache slot', () => {
    const b = builder();
    for (let i = 0; i < 50; i++) for (let o = 0; o <= i % 4; o++) b.add(sighting(`o${o}`, 0, sha(`p${i}`), 'example.com', 443));
    expect(b.write(tmp.path('slot.db'), { version: 1, builtAtMs: 0 }).ok).toBe(true);
    const r = openBaseline(tmp.path('slot.db'), { cacheSizeKiB: 64, lookupCacheEntries: 1 });
    if (!r.ok) throw new Error(r.error);
    opened.push(r.baseline);
    for (let pass = 0; pass < 3; pass++) {
      for (let i = 0; i < 50; i++) {
        expect(r.baseline.process(sha(`p${i}`))).toBe(1 + (i % 4));
        expect(r.baseline.combo(sha(`p${i}`), 'example.com', 443)).toBe(1 + (i % 4));
        expect(r.baseline.combo(sha(`p${i}`), 'example.com', 80)).toBe(0);
      }
    }
    expect(() => openBaseline(tmp.path('slot.db'), { cacheSizeKiB: 0, lookupCacheEntries: 1 })).toThrow(RangeError);
  });

  it('replaces a file atomically while a reader holds the old one', () => {
    const path = tmp.path('live.db');
    const b = builder();
    b.add(sighting('a', 0, CURL, 'example.com', 443));
    expect(b.write(path, { version: 1, builtAtMs: 0 }).ok).toBe(true);
    const old = open(path);
    b.add(sighting('b', 1, CURL, 'example.com', 443));
    expect(b.write(path, { version: 2, builtAtMs: DAY_MS }).ok).toBe(true);
    expect(old.meta().version).toBe(1);
    expect(old.combo(sha('curl'), 'example.org', 443)).toBe(0);
    expect(old.process(CURL)).toBe(1);
    const fresh = open(path);
    expect(fresh.meta().version).toBe(2);
    expect(fresh.combo(CURL, 'example.com', 443)).toBe(2);
    expect(readdirSync(tmp.dir)).toEqual(['live.db']);
  });

  it('throws only for an invalid builder configuration', () => {
    expect(() => builder({ windowDays: 0 })).toThrow(RangeError);
    expect(() => builder({ unit: 'planet' as 'org' })).toThrow(RangeError);
    expect(() => builder({ thresholds: { ...DEFAULT_THRESHOLDS, rareMaxObservers: -1 } })).toThrow(RangeError);
    expect(() => builder({ comboKeyBits: 60 })).toThrow(RangeError);
  });
});
