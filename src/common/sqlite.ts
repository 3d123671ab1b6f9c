// One way to open a SQLite store: WAL, the pragmas it asks for, and schema
// migrations by `PRAGMA user_version`, each applied in its own transaction.
// Every store of rarecon (outbox, state, sightings, bucket cache, the server's
// intake and publication) opens through here.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { preparePrivateFile } from './private-files.js';

export type SqliteDatabase = Database.Database;

export interface OpenSqliteOptions {
  /** The store's name in errors ("the outbox database", "server.db"). */
  what: string;
  /** SQL of each schema version in order: migrations[0] takes version 0 to 1. */
  migrations: readonly string[];
  synchronous?: 'normal' | 'full';
  busyTimeoutMs?: number;
  /** Page cache in KiB (SQLite's negative cache_size). */
  cacheSizeKiB?: number;
  /** Further pragmas set after the standard ones, e.g. `foreign_keys = ON`. */
  pragmas?: readonly string[];
  /** Take the write lock at the start of each migration (several processes may open the file). */
  immediate?: boolean;
  /** Folder mode when the parent folder is created here. */
  dirMode?: number;
}

/**
 * Opens (creating) the database at `path` (':memory:' for none) and migrates
 * it. The file is 0600 and never a symbolic link (common/private-files.ts).
 * Throws, closing the handle, when the file is unusable or was written by a
 * newer rarecon: both are start-up failures the caller reports.
 */
export function openSqlite(path: string, opts: OpenSqliteOptions): SqliteDatabase {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: opts.dirMode ?? 0o700 });
    preparePrivateFile(path, opts.what);
  }
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    if (opts.cacheSizeKiB !== undefined) db.pragma(`cache_size = ${-opts.cacheSizeKiB}`);
    for (const p of opts.pragmas ?? []) db.pragma(p);
    migrate(db, path, opts);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Applies the migrations the database has not had yet. */
export function migrate(db: SqliteDatabase, path: string, opts: Pick<OpenSqliteOptions, 'what' | 'migrations' | 'immediate'>): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > opts.migrations.length) {
    throw new Error(
      `${opts.what} (${path}) was written by a newer rarecon (schema ${current}, this one knows ${opts.migrations.length}); upgrade rarecon or move the file aside`,
    );
  }
  for (let v = current; v < opts.migrations.length; v++) {
    const step = db.transaction(() => {
      db.exec(opts.migrations[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    });
    if (opts.immediate === true) step.immediate();
    else step();
  }
}
