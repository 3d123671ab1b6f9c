// The bucket cache on its own: whole buckets, changes since a version, refusals, eviction, the held events bound.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { BucketCache } from '../../src/sync/bucket-cache.js';
import type { SignedHeader } from '../../src/baseline/signature.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import type { BaselineMeta } from '../../src/model/baseline.js';
import { sha, tempDir } from '../support/server.js';

function header(version: number, prefixes: string[], fromVersion: number | null, over: Partial<BaselineMeta> = {}): SignedHeader {
  const meta: BaselineMeta = {
    version,
    builtAtMs: version,
    windowStartMs: 0,
    windowEndMs: 1,
    observerUnit: 'org',
    populationSize: 20,
    policy: DEFAULT_POLICY,
    thresholds: DEFAULT_THRESHOLDS,
    omitsSingleObserverCombos: true,
    processCount: 1,
    comboCount: 1,
    ...over,
  };
  return {
    format: 'rarecon-baseline/1',
    kind: 'buckets',
    meta,
    fromVersion,
    prefixes,
    bucketHexChars: 4,
    contentSha256: '0'.repeat(64),
    contentBytes: 0,
    keyId: 'k',
  };
}

describe('bucket cache', () => {
  const tmp = tempDir('bucket-cache');
  afterAll(() => tmp.cleanup());
  const a = sha('a');
  const pa = a.slice(0, 4);
  let clock = 1_000;

  it('applies whole buckets, then changes, and refuses what does not fit', () => {
    const c = new BucketCache(join(tmp.dir, 'c.db'), { pendingMaxEvents: 2, pendingTimeoutMs: 100, now: () => clock });
    expect(c.reader()).toBeNull();
    const r1 = c.apply(
      header(10, [pa], null),
      {
        processes: [[a, 15]],
        combos: [
          [a, 'example.com', 443, 15],
          [a, 'rare.net', 8443, 2],
        ],
      },
      'new-buckets',
    );
    expect(r1.ok).toBe(true);
    const reader = c.reader();
    expect(reader?.process(a)).toBe(15);
    expect(reader?.combo(a, 'rare.net', 8443)).toBe(2);
    // Changes since 10: one count up, one removal.
    const r2 = c.apply(
      header(11, [pa], 10),
      {
        processes: [],
        combos: [
          [a, 'example.com', 443, 16],
          [a, 'rare.net', 8443, 0],
        ],
      },
      'refresh',
    );
    expect(r2.ok).toBe(true);
    expect(reader?.combo(a, 'example.com', 443)).toBe(16);
    expect(reader?.combo(a, 'rare.net', 8443)).toBe(0);
    expect(c.version()).toBe(11);
    expect(c.apply(header(11, [pa], 10), { processes: [], combos: [] }, 'refresh')).toMatchObject({ ok: false, code: 'older' });
    expect(
      c.apply(
        header(12, [pa], 12, { policy: { allowPrivateDomains: true, pslVersion: 'other-list@1' } }),
        { processes: [], combos: [] },
        'refresh',
      ),
    ).toMatchObject({
      ok: false,
      code: 'policy',
    });
    // Changes since 12 miss what changed between 11 (held) and 12.
    expect(c.apply(header(13, [pa], 12), { processes: [], combos: [] }, 'refresh')).toMatchObject({ ok: false, code: 'not-applicable' });
    expect(c.apply(header(13, [pa], null), { processes: 'no' }, 'refresh')).toMatchObject({ ok: false, code: 'bad-content' });
    expect(reader?.combo(a, 'example.com', 443)).toBe(16);
    c.close();
  });

  it('keeps what it had across a reopen, bounds the held events, and evicts idle buckets', () => {
    const c = new BucketCache(join(tmp.dir, 'c.db'), { pendingMaxEvents: 2, pendingTimeoutMs: 100, now: () => clock });
    expect(c.reader()?.combo(a, 'example.com', 443)).toBe(16);
    expect(c.hold(sha('b'), null, 1)).toBe(true);
    expect(c.hold(sha('c'), null, 2)).toBe(true);
    expect(c.hold(sha('d'), null, 3)).toBe(false);
    expect(c.stats()).toMatchObject({ pending: 2, heldTotal: 2, droppedTotal: 1 });
    clock += 1_000;
    expect(c.takeHeld().expired).toHaveLength(2);
    clock += 1_000;
    expect(c.flushUsage(clock - 10).evicted).toBe(1);
    expect(c.cachedKeys()).toEqual([]);
    expect(c.reader()?.process(a)).toBeUndefined();
    expect(c.wantedKeys()).toContain(pa);
    c.close();
  });
});
