// The file rules of common/private-files.ts on real files: folders 0700 (an
// open one of ours tightened, another user's refused), output files opened
// without following links and only when ours, files replaced through an
// exclusive temp file, SQLite stores 0600. "Another user" is uid 65534
// (nobody), which needs root to make.
import {
  chmodSync,
  chownSync,
  closeSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkOutputPath, openOutputFile, preparePrivateFile, preparePrivateFolder, replaceFile } from '../../src/common/private-files.js';
import { openSqlite } from '../../src/common/sqlite.js';

const root = process.getuid?.() === 0;
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-private-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(tmp, `case-${++n}`);
  mkdirSync(d);
  return d;
};
const mode = (p: string): number => statSync(p).mode & 0o777;

/** A file another process must not touch, and a way to tell it was not. */
function victim(dir: string): { path: string; untouched: () => void } {
  const path = join(dir, 'victim');
  writeFileSync(path, 'root-only content\n', { mode: 0o600 });
  const before = statSync(path);
  return {
    path,
    untouched: () => {
      const now = statSync(path);
      expect(readFileSync(path, 'utf8')).toBe('root-only content\n');
      expect(now.mtimeMs).toBe(before.mtimeMs);
      expect(now.mode & 0o777).toBe(0o600);
    },
  };
}

describe('state folders', () => {
  it('creates a missing folder 0700', () => {
    const d = join(fresh(), 'a', 'state');
    expect(preparePrivateFolder(d, 'the state folder')).toEqual({ ok: true, created: true, tightened: null });
    expect(mode(d)).toBe(0o700);
  });

  it('tightens an open folder of its own to 0700 and says from what', () => {
    const d = join(fresh(), 'state');
    mkdirSync(d);
    chmodSync(d, 0o777);
    expect(preparePrivateFolder(d, 'the state folder')).toEqual({ ok: true, created: false, tightened: { from: '0777', to: '0700' } });
    expect(mode(d)).toBe(0o700);
  });

  it('refuses a folder holding a planted symbolic link, naming it', () => {
    const base = fresh();
    const d = join(base, 'state');
    mkdirSync(d);
    chmodSync(d, 0o777);
    symlinkSync(join(base, 'elsewhere'), join(d, 'status.json.tmp'));
    const r = preparePrivateFolder(d, 'the state folder');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('holds a symbolic link, status.json.tmp');
  });

  it.runIf(root)("refuses another user's folder, and a folder holding another user's file", () => {
    const d = join(fresh(), 'state');
    mkdirSync(d);
    chmodSync(d, 0o777);
    chownSync(d, 65534, 65534);
    const r = preparePrivateFolder(d, 'the state folder');
    expect(r).toEqual({
      ok: false,
      error: `the state folder ${d} belongs to uid 65534, not to the user rarecon runs as (uid 0) or root: that user could plant files and links in it; chown 0 ${d}, or choose another folder`,
    });
    expect(mode(d)).toBe(0o777);

    const e = join(fresh(), 'state');
    mkdirSync(e);
    writeFileSync(join(e, 'state.db'), '');
    chownSync(join(e, 'state.db'), 65534, 65534);
    const r2 = preparePrivateFolder(e, 'the state folder');
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.error).toContain('holds state.db, which belongs to uid 65534');
  });

  it('refuses a path that is a file', () => {
    const f = join(fresh(), 'file');
    writeFileSync(f, '');
    expect(preparePrivateFolder(f, 'the state folder')).toEqual({ ok: false, error: `the state folder ${f} is not a folder` });
  });
});

describe('output files', () => {
  it('creates a new file 0600 (its folder 0700) and appends to it', () => {
    const p = join(fresh(), 'out', 'alerts.jsonl');
    const o = openOutputFile(p, 'the alerts file');
    expect(o.ok).toBe(true);
    if (o.ok) closeSync(o.fd);
    expect(mode(p)).toBe(0o600);
    expect(mode(join(p, '..'))).toBe(0o700);
  });

  it('refuses a symbolic link, leaving the file it points at untouched', () => {
    const d = fresh();
    const v = victim(d);
    const p = join(d, 'alerts.jsonl');
    symlinkSync(v.path, p);
    const o = openOutputFile(p, 'the alerts file (--alerts)');
    expect(o).toEqual({
      ok: false,
      error: `the alerts file (--alerts) ${p} is a symbolic link: rarecon does not write through links (another user may have planted it); remove it, or give the path of the real file`,
    });
    expect(checkOutputPath(p, 'the log file').ok).toBe(false);
    v.untouched();
  });

  it('refuses a hard link to another file', () => {
    const d = fresh();
    const v = victim(d);
    const p = join(d, 'record.jsonl');
    linkSync(v.path, p);
    const o = openOutputFile(p, 'the record file (--record)');
    expect(o.ok).toBe(false);
    if (!o.ok)
      expect(o.error).toBe(
        `the record file (--record) ${p} has 2 hard links: one may point at a file rarecon must not write to; give it a file of its own`,
      );
    v.untouched();
  });

  it.runIf(root)("refuses another user's file (made to read what rarecon writes)", () => {
    const p = join(fresh(), 'alerts.jsonl');
    writeFileSync(p, '');
    chownSync(p, 65534, 65534);
    const o = openOutputFile(p, 'the alerts file (--alerts)');
    expect(o.ok).toBe(false);
    if (!o.ok) expect(o.error).toContain('belongs to uid 65534: rarecon appends only to its own files');
    expect(statSync(p).size).toBe(0);
  });

  it.runIf(root)('refuses a log file in a folder other users can write to', () => {
    const d = fresh();
    chmodSync(d, 0o1777);
    chownSync(d, 65534, 65534);
    const r = checkOutputPath(join(d, 'rarecon.log'), 'the log file (logFile)', { privateFolder: true });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('which other users can write to');
  });
});

describe('files replaced whole', () => {
  it('writes 0600 through a temp file of a random name, never a planted one', () => {
    const d = fresh();
    const v = victim(d);
    const p = join(d, 'status.json');
    // The name the old writer used, and the link an attacker would plant there.
    symlinkSync(v.path, `${p}.tmp`);
    replaceFile(p, '{"ok":true}');
    expect(readFileSync(p, 'utf8')).toBe('{"ok":true}');
    expect(mode(p)).toBe(0o600);
    v.untouched();
    // Nothing left but the file, the planted link and the victim.
    expect(readdirSync(d).sort()).toEqual(['status.json', 'status.json.tmp', 'victim']);
  });

  it('replaces a link at the path itself instead of writing through it', () => {
    const d = fresh();
    const v = victim(d);
    const p = join(d, 'status.json');
    symlinkSync(v.path, p);
    replaceFile(p, 'new');
    expect(readFileSync(p, 'utf8')).toBe('new');
    v.untouched();
  });

  it('keeps an explicit mode the umask would take (a public key is 0644)', () => {
    const p = join(fresh(), 'key.pub');
    const was = process.umask(0o077);
    try {
      replaceFile(p, 'key', { mode: 0o644 });
    } finally {
      process.umask(was);
    }
    expect(mode(p)).toBe(0o644);
  });
});

describe('SQLite stores', () => {
  it('creates a store 0600 (and its -wal and -shm) under any umask', () => {
    const p = join(fresh(), 'state.db');
    const was = process.umask(0o022);
    try {
      const db = openSqlite(p, { what: 'the state database', migrations: ['CREATE TABLE t (x)'] });
      db.exec('INSERT INTO t VALUES (1)');
      expect([mode(p), mode(`${p}-wal`), mode(`${p}-shm`)]).toEqual([0o600, 0o600, 0o600]);
      db.close();
    } finally {
      process.umask(was);
    }
  });

  it('tightens a store an older rarecon left 0644', () => {
    const p = join(fresh(), 'outbox.db');
    writeFileSync(p, '');
    chmodSync(p, 0o644);
    preparePrivateFile(p, 'the outbox database');
    expect(mode(p)).toBe(0o600);
  });

  it('refuses a store that is a symbolic link', () => {
    const d = fresh();
    const v = victim(d);
    const p = join(d, 'server.db');
    symlinkSync(v.path, p);
    expect(() => openSqlite(p, { what: 'server.db', migrations: [] })).toThrow(
      `server.db (${p}) is a symbolic link: rarecon opens its stores only as files of their own; remove the link`,
    );
    v.untouched();
  });
});
