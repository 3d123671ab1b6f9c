// Every way a baseline file can be unusable is an error value naming the file.
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { openBaseline } from '../../src/baseline/store.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';

const DAY = Date.UTC(2026, 9, 1);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-open-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function goodFile(name: string, combos = 3000): string {
  const b = new BaselineBuilder({ unit: 'org', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (let i = 0; i < combos; i++) {
    const s = createHash('sha256')
      .update(`p${i % 50}`)
      .digest('hex');
    b.add({ observer: `o${i % 9}`, dayMs: DAY, sha256: s, rootDomain: `d${i}.example`, port: 443 });
  }
  const path = join(dir, name);
  const w = b.write(path, { version: 1, builtAtMs: 0 });
  if (!w.ok) throw new Error(w.error);
  return path;
}

function edit(path: string, sql: string, ...params: unknown[]): void {
  const db = new Database(path);
  db.prepare(sql).run(...params);
  db.close();
}

function expectError(path: string, code: string, words: RegExp): void {
  let r: ReturnType<typeof openBaseline> | undefined;
  expect(() => {
    r = openBaseline(path);
  }).not.toThrow();
  expect(r).toMatchObject({ ok: false, code });
  if (r !== undefined && !r.ok) {
    expect(r.error).toContain(path);
    expect(r.error).toMatch(words);
  }
}

describe('openBaseline errors', () => {
  it('a missing file', () => {
    expectError(join(dir, 'nope.db'), 'missing-file', /does not exist/);
  });

  it('a folder instead of a file', () => {
    expectError(dir, 'unreadable', /not a regular file/);
  });

  it('an empty file', () => {
    writeFileSync(join(dir, 'empty.db'), '');
    expectError(join(dir, 'empty.db'), 'not-sqlite', /empty/);
  });

  it('garbage bytes', () => {
    writeFileSync(join(dir, 'garbage.db'), randomFillSync(Buffer.alloc(64 * 1024)));
    expectError(join(dir, 'garbage.db'), 'not-sqlite', /not a SQLite file/);
    writeFileSync(join(dir, 'text.db'), 'hello, this is not a database\n');
    expectError(join(dir, 'text.db'), 'not-sqlite', /not a SQLite file/);
  });

  it('a SQLite header over garbage pages', () => {
    const path = goodFile('damaged.db');
    const bytes = readFileSync(path);
    randomFillSync(bytes, 100); // keep the 100-byte header, scramble the rest
    writeFileSync(path, bytes);
    expectError(path, 'corrupt', /cannot read|malformed|not a rarecon/);
  });

  it('a truncated file', () => {
    const path = goodFile('cut.db');
    const size = statSync(path).size;
    truncateSync(path, Math.floor(size / 2 / 4096) * 4096);
    expectError(path, 'truncated', /truncated/);
    truncateSync(path, 5000);
    expectError(path, 'truncated', /truncated/);
  });

  it('another format version', () => {
    const path = goodFile('v9.db', 10);
    edit(path, 'PRAGMA user_version = 9');
    expectError(path, 'wrong-format-version', /format version 9.*version 1/);
    const p2 = goodFile('meta-v2.db', 10);
    edit(p2, "UPDATE meta SET value = '2' WHERE key = 'formatVersion'");
    expectError(p2, 'wrong-format-version', /formatVersion is 2/);
  });

  it('a SQLite file that is not a baseline', () => {
    const path = join(dir, 'other.db');
    const db = new Database(path);
    db.exec('CREATE TABLE t (x)');
    db.close();
    expectError(path, 'wrong-format-version', /format version 0/);
    const p2 = join(dir, 'blank.db');
    new Database(p2).close();
    expectError(p2, 'not-sqlite', /empty/);
  });

  it('missing or malformed meta fields, all named at once', () => {
    const path = goodFile('meta.db', 10);
    edit(path, "DELETE FROM meta WHERE key IN ('populationSize', 'windowEndMs')");
    edit(path, "UPDATE meta SET value = '\"lots\"' WHERE key = 'version'");
    edit(path, `UPDATE meta SET value = '{"uncommonBelowObservers":10}' WHERE key = 'thresholds'`);
    expectError(path, 'bad-meta', /populationSize is missing.*/);
    const r = openBaseline(path);
    if (r.ok) throw new Error('opened');
    for (const w of ['populationSize is missing', 'windowEndMs is missing', 'version is not', 'thresholds.rareMaxObservers'])
      expect(r.error).toContain(w);
  });

  it('a root-domain policy this endpoint cannot apply', () => {
    const path = goodFile('policy.db', 10);
    edit(path, "UPDATE meta SET value = ? WHERE key = 'policy'", JSON.stringify({ allowPrivateDomains: true, pslVersion: 'tldts@1.0.0' }));
    expectError(path, 'policy', /tldts@1\.0\.0/);
    edit(
      path,
      "UPDATE meta SET value = ? WHERE key = 'policy'",
      JSON.stringify({ allowPrivateDomains: true, pslVersion: 'publicsuffix.org/2019-01-01' }),
    );
    expectError(path, 'policy', /unknown Public Suffix List/);
  });

  it('opens the untouched file (control)', () => {
    const r = openBaseline(goodFile('ok.db'));
    expect(r.ok).toBe(true);
    if (r.ok) r.baseline.close();
  });
});
