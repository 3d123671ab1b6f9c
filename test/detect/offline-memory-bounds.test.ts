// Issue 17: what an offline run holds for distinct names and open alerts stays
// within its bound however many arrive, and every answer past the bound is
// still right (a dropped answer is asked again, a spilled record read back).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { CACHE_MISS, RecentAnswers } from '../../src/baseline/lookup-cache.js';
import { openBaseline } from '../../src/baseline/store.js';
import { DEFAULT_DETECT, DEFAULT_OFFLINE_MEMORY, DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { AlertBodies } from '../../src/detect/alert-bodies.js';
import { ConnectionNames } from '../../src/enrich/connection-names.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { isLineRegion, readLineBatches } from '../../src/sources/replay/read-lines.js';
import { conn } from '../support/records.js';

const sha = (i: number): string => createHash('sha256').update(`bin-${i}`).digest('hex');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-bounds-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the offline memory bounds', () => {
  it('are the defaults the offline commands use', () => {
    expect(DEFAULT_OFFLINE_MEMORY.recentAnswers).toBeGreaterThan(0);
    expect(DEFAULT_OFFLINE_MEMORY.heldAlertBytes).toBeGreaterThan(0);
    expect(DEFAULT_OFFLINE_MEMORY.scannerMaxIds).toBeGreaterThan(0);
  });

  it('recent answers: at most two generations, and what fell out is a miss, never a wrong answer', () => {
    const r = new RecentAnswers(100);
    for (let i = 0; i < 5_000; i++) {
      const a = r.of(sha(i));
      expect(r.process(a)).toBe(CACHE_MISS);
      r.storeProcess(a, i);
      r.storeCombo(a, `r${i}.com`, 443, i * 2);
      expect(r.held).toBeLessThanOrEqual(200);
    }
    let hits = 0;
    // Newest first: they are still held.
    for (let i = 4_999; i >= 0; i--) {
      const a = r.of(sha(i));
      const p = r.process(a);
      const c = r.combo(a, `r${i}.com`, 443);
      if (p !== CACHE_MISS) {
        hits++;
        expect(p).toBe(i);
        expect(c).toBe(i * 2);
      } else {
        expect(c).toBe(CACHE_MISS);
      }
      expect(r.held).toBeLessThanOrEqual(200);
    }
    expect(hits).toBeGreaterThanOrEqual(50);
  });

  it('the baseline store with few recent answers gives the same answers as with many', () => {
    const path = join(dir, 'b.db');
    const b = new BaselineBuilder({ unit: 'org', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    const day0 = Date.UTC(2026, 9, 1);
    for (let i = 0; i < 2_000; i++) {
      for (let o = 0; o <= i % 13; o++) {
        b.add({ observer: `org-${o}`, dayMs: day0 + (o % 30) * DAY_MS, sha256: sha(i % 300), rootDomain: `r${i}.com`, port: 443 });
      }
    }
    const built = b.write(path, { version: 1, builtAtMs: 0 });
    expect(built.ok).toBe(true);
    const few = openBaseline(path, { cacheSizeKiB: 256, lookupCacheEntries: 4_096, recentAnswers: 16 });
    const many = openBaseline(path, { cacheSizeKiB: 256, lookupCacheEntries: 200_000 });
    if (!few.ok || !many.ok) throw new Error('not opened');
    try {
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 2_000; i++) {
          expect(few.baseline.combo(sha(i % 300), `r${i}.com`, 443)).toBe(many.baseline.combo(sha(i % 300), `r${i}.com`, 443));
          expect(few.baseline.process(sha(i % 300))).toBe(many.baseline.process(sha(i % 300)));
        }
      }
      expect(few.baseline.combo(sha(1), 'r1.com', 443)).toBe(2);
    } finally {
      few.baseline.close();
      many.baseline.close();
    }
  });

  it('connection names: at most two generations, and a name asked again after it fell out is worked out the same', () => {
    const names = new ConnectionNames(DEFAULT_DETECT, DEFAULT_POLICY, 50);
    const first = new Map<string, unknown>();
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 1_000; i++) {
        const hostname = `api.n${i}.example.com`;
        const n = names.name(conn({ hostname }));
        expect(n.hostname).toBe(hostname);
        expect(n.root).toEqual({ ok: true, hostname, rootDomain: 'example.com' });
        if (round === 0) first.set(hostname, n.root);
        else expect(n.root).toEqual(first.get(hostname));
        expect(names.heldNames).toBeLessThanOrEqual(100);
      }
    }
  });

  it('held alert records: memory stays within the bound, the rest spills, and every record comes back as put', () => {
    // Records go in 1 MiB chunks: a bound of two.
    const bound = 2 * 1024 * 1024;
    const bodies = new AlertBodies(bound);
    // Every 1,000th record larger than a chunk (held alone, past the bound by itself at most).
    const big = 1_500_000;
    const body = (i: number): string =>
      JSON.stringify({ id: i, pad: 'x'.repeat(i % 1_000 === 999 ? big : 1_000 + (i % 2_000)), name: `ünïcode-${i}` });
    const perIdBytes = 13;
    for (let i = 0; i < 5_000; i++) {
      bodies.put(i, body(i));
      expect(bodies.heldBytes).toBeLessThanOrEqual(bound + 3 * big + perIdBytes * 8_192);
    }
    expect(bodies.spilledTotal).toBeGreaterThan(4_000);
    for (let i = 0; i < 5_000; i++) expect(bodies.take(i)).toBe(body(i));
    bodies.close();
  });

  it('the reader: lines across the reused chunk buffers come out whole and in order', async () => {
    // Lines of varied length over many 256 KiB chunks, so lines cross chunk ends and buffers are reused.
    const lines = Array.from({ length: 40_000 }, (_, i) => `{"n":${i},"pad":"${'y'.repeat(i % 97)}"}`);
    const path = join(dir, 'lines.jsonl');
    writeFileSync(path, lines.join('\n') + '\n');
    const got: string[] = [];
    for await (const batch of readLineBatches(path, { regions: true })) {
      for (const item of batch) {
        if (isLineRegion(item)) got.push(...item.bytes.toString('latin1', item.start, item.end - 1).split('\n'));
        else if ('text' in item) got.push(item.text);
      }
    }
    expect(got).toEqual(lines);
  });
});
