// The detector's per-id caches give the baseline's answers, ask it once per
// combo while the table has room, and start again (still right) when full.
import { describe, expect, it } from 'vitest';
import { IdCaches, NO_ROOT_REASONS } from '../../src/detect/id-caches.js';
import { DEFAULT_POLICY, makeRootDomainResolver } from '../../src/model/root-domain.js';
import type { BaselineMeta, BaselineReader } from '../../src/model/baseline.js';
import type { ScannedTable } from '../../src/model/scanned.js';

const meta = { policy: DEFAULT_POLICY } as BaselineMeta;
const table: ScannedTable = {
  text: (id) => `s${id}`,
  ip: () => null,
  hostname: (id) => `www.n${id}.com`,
  org: () => 'default',
};

function counting(): BaselineReader & { asked: number } {
  const b = {
    asked: 0,
    process: (sha: string) => (sha === 's0' ? undefined : sha.length),
    combo(sha: string, root: string, port: number) {
      b.asked++;
      // A different answer per combo, so a mixed-up slot shows.
      return (Number(sha.slice(1)) * 31 + root.length * 7 + port) % 100_000;
    },
    meta: () => meta,
  };
  return b;
}

describe('IdCaches', () => {
  const rootOf = makeRootDomainResolver([]);

  it('answers combos as the baseline does, asking once per combo', () => {
    const b = counting();
    const c = new IdCaches(table, b, meta);
    for (let round = 0; round < 2; round++) {
      for (let sha = 0; sha < 50; sha++) {
        for (let name = 0; name < 40; name++) {
          const root = c.rootDomain(name, table.hostname(name)!, rootOf);
          expect(root).toBeGreaterThanOrEqual(0);
          const rootDomain = c.rootName(root);
          expect(rootDomain).toBe(`n${name}.com`);
          for (const port of [443, 8443])
            expect(c.comboObservers(sha, root, port)).toBe((sha * 31 + rootDomain.length * 7 + port) % 100_000);
        }
      }
    }
    // 4,000 combos, asked once each over the two rounds.
    expect(b.asked).toBe(4_000);
    expect(c.processObservers(0)).toBe(0);
    expect(c.processObservers(7)).toBe(2);
  });

  it('stays right past its capacity (262,144 slots, restarted at three quarters)', () => {
    const b = counting();
    const c = new IdCaches(table, b, meta);
    const root = c.rootDomain(1, table.hostname(1)!, rootOf);
    const rd = { rootDomain: c.rootName(root) };
    let wrong = 0;
    for (let round = 0; round < 2; round++) {
      for (let sha = 0; sha < 300_000; sha++) {
        const want = (sha * 31 + rd.rootDomain.length * 7 + 443) % 100_000;
        if (c.comboObservers(sha, root, 443) !== want) wrong++;
      }
    }
    expect(wrong).toBe(0);
    // Under capacity, a second round is answered from the table.
    const b2 = counting();
    const c2 = new IdCaches(table, b2, meta);
    const root2 = c2.rootDomain(1, table.hostname(1)!, rootOf);
    for (let round = 0; round < 2; round++) for (let sha = 0; sha < 150_000; sha++) c2.comboObservers(sha, root2, 443);
    expect(b2.asked).toBe(150_000);
  });

  it('gives the reason of a name without a root domain, and numbers a root domain once for all its names', () => {
    const names = ['www.n1.com', 'api.n1.com', 'localhost', '203.0.113.9', 'git.corp.lan'];
    const t: ScannedTable = { ...table, hostname: (id) => names[id] ?? null };
    const c = new IdCaches(t, counting(), meta);
    const codes = names.map((n, id) => c.rootDomain(id, n, rootOf));
    expect(codes[0]).toBe(codes[1]);
    expect(c.rootName(codes[0]!)).toBe('n1.com');
    expect(codes.slice(2).map((k) => NO_ROOT_REASONS[-k - 1])).toEqual(['single-label', 'ip-literal', 'internal-name']);
    // Asked again, the same answers.
    expect(names.map((n, id) => c.rootDomain(id, n, rootOf))).toEqual(codes);
  });

  it("asks a reader's uncached lookups when it has them (it keeps every answer itself)", () => {
    const inner = counting();
    const reader: BaselineReader = {
      process: () => {
        throw new Error('asked the cached lookup');
      },
      combo: () => {
        throw new Error('asked the cached lookup');
      },
      meta: () => meta,
      uncached: inner,
    };
    const c = new IdCaches(table, reader, meta);
    const root = c.rootDomain(2, table.hostname(2)!, rootOf);
    expect(c.comboObservers(5, root, 443)).toBe((5 * 31 + c.rootName(root).length * 7 + 443) % 100_000);
    expect(c.processObservers(7)).toBe(2);
    expect(inner.asked).toBe(1);
  });
});
