// The interner behind the NDJSON fast path: equal bytes give the very same
// string while its slot holds it, other bytes never give a wrong one, and a
// table far smaller than the input stays correct (it only shares less).
import { describe, expect, it } from 'vitest';
import { ByteInterner, MAX_INTERNED_BYTES, type Latin1Buffer } from '../../../../src/sources/replay/fast/byte-interner.js';

const buf = (s: string): Latin1Buffer => Buffer.from(s, 'latin1') as Latin1Buffer;

describe('ByteInterner', () => {
  it('gives the same string object for the same bytes, wherever they sit', () => {
    const t = new ByteInterner(1024);
    const a = buf('xx"api.example.com"');
    const b = buf('"api.example.com",yy');
    const s1 = t.intern(a, 3, 18);
    const s2 = t.intern(b, 1, 16);
    expect(s1).toBe('api.example.com');
    expect(s2).toBe(s1);
    expect(t.hits).toBe(1);
  });

  it('returns the right value for every input even when a tiny table overwrites its slots', () => {
    const t = new ByteInterner(4);
    const values = Array.from({ length: 500 }, (_, i) => (i % 3 === 0 ? `${'ab'.repeat(32)}${i}` : `h${i}.example.org`));
    for (let round = 0; round < 3; round++) {
      for (const v of values) {
        const b = buf(`[${v}]`);
        expect(t.intern(b, 1, b.length - 1)).toBe(v);
      }
    }
    expect(t.misses).toBeGreaterThan(0);
  });

  it('tells apart values that differ only in the middle (bytes the hash skips)', () => {
    const t = new ByteInterner(1 << 10);
    const a = 'a'.repeat(30) + 'X' + 'b'.repeat(30);
    const b = 'a'.repeat(30) + 'Y' + 'b'.repeat(30);
    expect(t.intern(buf(a), 0, a.length)).toBe(a);
    expect(t.intern(buf(b), 0, b.length)).toBe(b);
    expect(t.intern(buf(a), 0, a.length)).toBe(a);
  });

  it('holds only what the caller adds after a miss (find, check, add)', () => {
    const t = new ByteInterner(64, 8, 0);
    const sha = 'ab'.repeat(32);
    const b = buf(`"${sha}"`);
    expect(t.find(b, 1, 65)).toBeNull();
    expect(t.find(b, 1, 65)).toBeNull();
    const added = t.add(b, 1, 65);
    expect(added).toBe(sha);
    expect(t.find(buf(sha), 0, 64)).toBe(added);
    // same first 8 bytes (all the hash reads), different value: not confused
    expect(t.find(buf('ab'.repeat(4) + 'cd'.repeat(28)), 0, 64)).toBeNull();
  });

  it('does not hold values longer than the limit', () => {
    const t = new ByteInterner(16);
    const long = 'c'.repeat(MAX_INTERNED_BYTES + 1);
    expect(t.intern(buf(long), 0, long.length)).toBe(long);
    expect(t.intern(buf(long), 0, long.length)).toBe(long);
    expect(t.hits).toBe(0);
    expect(t.misses).toBe(0);
  });
});
