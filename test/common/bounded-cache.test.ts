import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../src/common/bounded-cache.js';

describe('BoundedCache', () => {
  it('evicts the least recently used entry and counts hits, misses and evictions', () => {
    const c = new BoundedCache<string, number>({ maxEntries: 2 });
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1); // a is now the youngest
    c.set('c', 3); // evicts b
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.stats()).toEqual({ entries: 2, maxEntries: 2, hitsTotal: 3, missesTotal: 1, evictionsTotal: 1 });
  });

  it('expires entries after ttlMs', () => {
    let now = 1_000;
    const c = new BoundedCache<string, string>({ maxEntries: 10, ttlMs: 100, now: () => now });
    c.set('k', 'v');
    now += 100;
    expect(c.get('k')).toBe('v');
    now += 1;
    expect(c.get('k')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('peek neither counts nor refreshes', () => {
    const c = new BoundedCache<number, number>({ maxEntries: 2 });
    c.set(1, 1);
    c.set(2, 2);
    expect(c.peek(1)).toBe(1);
    c.set(3, 3); // 1 is still the oldest
    expect(c.peek(1)).toBeUndefined();
    expect(c.stats().hitsTotal + c.stats().missesTotal).toBe(0);
  });

  it('rejects a size that is not a positive integer', () => {
    expect(() => new BoundedCache({ maxEntries: 0 })).toThrow(RangeError);
  });
});
