// Writes a baseline file (format.ts) from the builder's sorted rows, atomically:
// `<out>.<random>.tmp`, created exclusively (a link planted at a guessable name
// would be written through), with no journal (a crash leaves only a temp file to discard),
// then journal_mode DELETE, fsync, rename over `<out>`, fsync of the folder.
import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { tempNameFor } from '../common/private-files.js';
import type { BaselineMeta } from '../model/baseline.js';
import { COMBO_SEE_EXACT, HOST_HISTORY_TABLE, MIGRATIONS } from './format.js';
import { encodeMeta } from './meta-codec.js';
import { SHA256_BYTES } from './hex.js';

export interface ProcessRows {
  /** Sha ids in insertion order (sorted by their bytes' prefix). */
  order: Uint32Array;
  /** sha id -> observers. */
  observers: Int32Array;
  /** sha id -> 32 bytes at id * 32. */
  shaBytes: Uint8Array;
}

export interface ComboRows {
  /** Sorted keys (hi 21 bits, lo 32 bits) and the combo id of each. */
  keyHi: Uint32Array;
  keyLo: Uint32Array;
  ids: Uint32Array;
  /** combo id -> check bits, observers, sha id, root id, port. */
  chk: Uint16Array;
  observers: Int32Array;
  shaId: Int32Array;
  rootId: Int32Array;
  port: Uint16Array;
  roots: readonly string[];
  shaBytes: Uint8Array;
}

export type WriteFileResult = { ok: true; sizeBytes: number; collidingKeys: number; exactCombos: number } | { ok: false; error: string };

const CHUNK_ROWS = 256;
const TWO_32 = 4_294_967_296;

function migrate(db: Database.Database): void {
  const from = db.pragma('user_version', { simple: true }) as number;
  for (let v = from; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] as string);
  db.pragma(`user_version = ${MIGRATIONS.length}`);
}

function multiRowInsert(db: Database.Database, head: string, columns: number, rows: number): Database.Statement {
  const one = `(${new Array<string>(columns).fill('?').join(',')})`;
  return db.prepare(`${head} VALUES ${new Array<string>(rows).fill(one).join(',')}`);
}

function writeProcesses(db: Database.Database, p: ProcessRows): void {
  const full = multiRowInsert(db, 'INSERT INTO process (sha, observers)', 2, CHUNK_ROWS);
  const params: unknown[] = [];
  const n = p.order.length;
  const bytes = p.shaBytes;
  for (let i = 0; i < n; i++) {
    const id = p.order[i] as number;
    params.push(Buffer.from(bytes.buffer, bytes.byteOffset + id * SHA256_BYTES, SHA256_BYTES), p.observers[id] as number);
    if (params.length === CHUNK_ROWS * 2) {
      full.run(params);
      params.length = 0;
    }
  }
  if (params.length > 0) multiRowInsert(db, 'INSERT INTO process (sha, observers)', 2, params.length / 2).run(params);
}

function writeCombos(db: Database.Database, c: ComboRows): { collidingKeys: number; exactCombos: number } {
  const full = multiRowInsert(db, 'INSERT INTO combo (key, observers, chk)', 3, CHUNK_ROWS);
  const exact = db.prepare('INSERT INTO combo_exact (sha, root, port, observers) VALUES (?, ?, ?, ?)');
  const params: number[] = [];
  const flush = (force: boolean): void => {
    if (params.length === CHUNK_ROWS * 3) {
      full.run(params);
      params.length = 0;
    } else if (force && params.length > 0) {
      multiRowInsert(db, 'INSERT INTO combo (key, observers, chk)', 3, params.length / 3).run(params);
      params.length = 0;
    }
  };
  let collidingKeys = 0;
  let exactCombos = 0;
  const n = c.ids.length;
  for (let i = 0; i < n;) {
    const hi = c.keyHi[i] as number;
    const lo = c.keyLo[i] as number;
    let j = i + 1;
    while (j < n && c.keyHi[j] === hi && c.keyLo[j] === lo) j++;
    const key = hi * TWO_32 + lo;
    if (j - i === 1) {
      const id = c.ids[i] as number;
      params.push(key, c.observers[id] as number, c.chk[id] as number);
    } else {
      // Several combos share this key: the row points to the exact table, which holds them all.
      collidingKeys++;
      params.push(key, COMBO_SEE_EXACT, 0);
      for (let k = i; k < j; k++) {
        const id = c.ids[k] as number;
        const sha = Buffer.from(c.shaBytes.buffer, c.shaBytes.byteOffset + (c.shaId[id] as number) * SHA256_BYTES, SHA256_BYTES);
        exact.run(sha, c.roots[c.rootId[id] as number] as string, c.port[id] as number, c.observers[id] as number);
        exactCombos++;
      }
    }
    flush(false);
    i = j;
  }
  flush(true);
  return { collidingKeys, exactCombos };
}

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Host observers and the start of the first day each was seen (host_history), sorted by host. */
export type HostHistoryRows = ReadonlyArray<readonly [host: string, firstDayMs: number]>;

export function writeBaselineFile(
  outPath: string,
  meta: BaselineMeta,
  comboKeyBits: number,
  processes: ProcessRows,
  combos: ComboRows,
  hostHistory: HostHistoryRows | null = null,
): WriteFileResult {
  const tmp = tempNameFor(outPath);
  let db: Database.Database | undefined;
  try {
    closeSync(openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644));
    db = new Database(tmp);
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('cache_size = -65536');
    let counts = { collidingKeys: 0, exactCombos: 0 };
    const conn = db;
    conn.transaction(() => {
      migrate(conn);
      const putMeta = conn.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      for (const [k, v] of encodeMeta(meta, comboKeyBits)) putMeta.run(k, v);
      writeProcesses(conn, processes);
      counts = writeCombos(conn, combos);
      if (hostHistory !== null && hostHistory.length > 0) {
        conn.exec(HOST_HISTORY_TABLE);
        const put = conn.prepare('INSERT INTO host_history (host, first_day_ms) VALUES (?, ?)');
        for (const [host, firstDayMs] of hostHistory) put.run(host, firstDayMs);
      }
    })();
    // A rollback-journal file needs no -wal/-shm beside it to be opened read-only.
    conn.pragma('journal_mode = DELETE');
    conn.close();
    db = undefined;
    fsyncPath(tmp, 'r');
    renameSync(tmp, outPath);
    try {
      fsyncPath(dirname(outPath), 'r');
    } catch {
      // Some filesystems refuse to fsync a folder; the rename itself has happened.
    }
    return { ok: true, sizeBytes: statSync(outPath).size, ...counts };
  } catch (e) {
    try {
      db?.close();
    } catch {
      // the write error below is the one worth reporting
    }
    try {
      rmSync(tmp, { force: true });
    } catch {
      // a leftover temp file is harmless: nothing reads it
    }
    const err = e as NodeJS.ErrnoException;
    return { ok: false, error: `cannot write baseline ${outPath}: ${err.code !== undefined ? `${err.code}: ` : ''}${err.message}` };
  }
}
