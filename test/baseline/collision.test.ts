// The combo key is a 53-bit hash: colliding combos must still read exactly.
// Files built with fewer key bits (a format field, for tests) make collisions
// common enough to exercise every path.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { comboHash, comboKeyOf, hashCombo, hashComboBytes } from '../../src/baseline/combo-key.js';
import { COMBO_SEE_EXACT } from '../../src/baseline/format.js';
import { openBaseline } from '../../src/baseline/store.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';

const DAY = Date.UTC(2026, 9, 1);
const sha = (name: string): string => createHash('sha256').update(name).digest('hex');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-collide-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('combo key', () => {
  it('hashes hex and raw bytes alike, folds upper-case hex, and separates the fields', () => {
    const s = sha('x');
    hashCombo(s, 'example.com', 443);
    const fromHex = Array.from(comboHash);
    hashComboBytes(Buffer.from(s, 'hex'), 0, 'example.com', 443);
    expect(Array.from(comboHash)).toEqual(fromHex);
    hashCombo(s.toUpperCase(), 'example.com', 443);
    expect(Array.from(comboHash)).toEqual(fromHex);
    expect(comboKeyOf(s, 'example.com', 443)).not.toEqual(comboKeyOf(s, 'example.com', 444));
    expect(comboKeyOf(s, 'a.example.com', 443)).not.toEqual(comboKeyOf(s, 'aexample.com', 443));
    const { key } = comboKeyOf(s, 'example.com', 443);
    expect(Number.isSafeInteger(key) && key >= 0 && key < 2 ** 53).toBe(true);
  });
});

describe('colliding combo keys', () => {
  it('stores colliding combos exactly and reads every one of them right', () => {
    const b = new BaselineBuilder({ unit: 'org', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY, comboKeyBits: 8 });
    const expected = new Map<string, number>();
    for (let i = 0; i < 1500; i++) {
      const s = sha(`p${i % 37}`);
      const root = `d${i}.example`;
      const port = 1000 + (i % 5);
      const observers = 1 + (i % 4);
      for (let o = 0; o < observers; o++) b.add({ observer: `org${o}`, dayMs: DAY, sha256: s, rootDomain: root, port });
      expected.set(`${s} ${root} ${port}`, observers);
    }
    const w = b.write(join(dir, 'c.db'), { version: 1, builtAtMs: 0 });
    if (!w.ok) throw new Error(w.error);
    // 1500 combos in 256 keys: nearly every key is shared by several
    expect(w.collidingComboKeys).toBeGreaterThan(240);
    expect(w.exactCombos).toBeGreaterThan(1480);

    const db = new Database(join(dir, 'c.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM combo WHERE observers = ?').pluck().get(COMBO_SEE_EXACT)).toBe(w.collidingComboKeys);
    expect(db.prepare('SELECT count(*) FROM combo_exact').pluck().get()).toBe(w.exactCombos);
    expect(db.prepare('SELECT count(*) FROM combo').pluck().get()).toBe(w.collidingComboKeys + 1500 - w.exactCombos);
    db.close();

    const r = openBaseline(join(dir, 'c.db'));
    if (!r.ok) throw new Error(r.error);
    for (let pass = 0; pass < 2; pass++) {
      for (const [k, n] of expected) {
        const [s, root, port] = k.split(' ') as [string, string, string];
        expect(r.baseline.combo(s, root, Number(port))).toBe(n);
      }
    }
    expect(r.baseline.combo(sha('p1'), 'absent.example', 1001)).toBe(0);
    expect(r.baseline.combo(sha('absent'), 'd1.example', 1001)).toBe(0);
    r.baseline.close();
  });

  it('mixes collided and unique keys, and an absent combo sharing a key reads 0', () => {
    const bits = 12;
    const s = sha('curl');
    const b = new BaselineBuilder({
      unit: 'org',
      windowDays: 30,
      thresholds: DEFAULT_THRESHOLDS,
      policy: DEFAULT_POLICY,
      comboKeyBits: bits,
    });
    for (let i = 0; i < 300; i++) {
      for (let o = 0; o <= i % 3; o++) b.add({ observer: `o${o}`, dayMs: DAY, sha256: s, rootDomain: `s${i}.example`, port: 443 });
    }
    const w = b.write(join(dir, 'm.db'), { version: 1, builtAtMs: 0 });
    if (!w.ok) throw new Error(w.error);
    expect(w.collidingComboKeys).toBeGreaterThan(0);
    expect(w.exactCombos).toBeLessThan(300);

    // Brute-force absent combos whose truncated key equals a stored, uncollided one.
    const stored = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const k = comboKeyOf(s, `s${i}.example`, 443, bits).key;
      stored.set(k, (stored.get(k) ?? 0) + 1);
    }
    const r = openBaseline(join(dir, 'm.db'));
    if (!r.ok) throw new Error(r.error);
    let probed = 0;
    for (let i = 0; probed < 20 && i < 200_000; i++) {
      const root = `absent${i}.example`;
      const { key } = comboKeyOf(s, root, 443, bits);
      if (stored.get(key) !== 1) continue;
      probed++;
      expect(r.baseline.combo(s, root, 443)).toBe(0); // the check bits tell it apart
    }
    expect(probed).toBe(20);
    for (let i = 0; i < 300; i++) expect(r.baseline.combo(s, `s${i}.example`, 443)).toBe(1 + (i % 3));
    r.baseline.close();
  });
});
