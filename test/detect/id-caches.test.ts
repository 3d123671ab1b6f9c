// The detector's per-id caches give the baseline's answers, ask it once per
// combo while the table has room, and start again (still right) when full.
import { describe, expect, it } from 'vitest';
import { IdCaches } from '../../src/detect/id-caches.js';
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
          const rd = c.rootDomain(name, table.hostname(name)!, rootOf);
          expect(rd.ok).toBe(true);
          if (!rd.ok) continue;
          for (const port of [443, 8443])
            expect(c.comboObservers(sha, name, rd.rootDomain, port)).toBe((sha * 31 + rd.rootDomain.length * 7 + port) % 100_000);
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
    const rd = c.rootDomain(1, table.hostname(1)!, rootOf);
    if (!rd.ok) throw new Error('no root');
    let wrong = 0;
    for (let round = 0; round < 2; round++) {
      for (let sha = 0; sha < 300_000; sha++) {
        const want = (sha * 31 + rd.rootDomain.length * 7 + 443) % 100_000;
        if (c.comboObservers(sha, 1, rd.rootDomain, 443) !== want) wrong++;
      }
    }
    expect(wrong).toBe(0);
    // Under capacity, a second round is answered from the table.
    const b2 = counting();
    const c2 = new IdCaches(table, b2, meta);
    c2.rootDomain(1, table.hostname(1)!, rootOf);
    for (let round = 0; round < 2; round++) for (let sha = 0; sha < 150_000; sha++) c2.comboObservers(sha, 1, rd.rootDomain, 443);
    expect(b2.asked).toBe(150_000);
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
    const rd = c.rootDomain(2, table.hostname(2)!, rootOf);
    if (!rd.ok) throw new Error('no root');
    expect(c.comboObservers(5, 2, rd.rootDomain, 443)).toBe((5 * 31 + rd.rootDomain.length * 7 + 443) % 100_000);
    expect(c.processObservers(7)).toBe(2);
    expect(inner.asked).toBe(1);
  });
});
