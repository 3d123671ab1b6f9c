// The rarecon baseline file, format 1. One SQLite file, written once by
// BaselineBuilder (builder.ts) and from then on only read (store.ts).
//
//   PRAGMA user_version = 1, and meta.formatVersion = 1. A reader opens only the
//   format it knows: the file is read-only on the endpoint, so it cannot migrate
//   it; an older or newer file is refused with a clear error and rebuilt/resynced.
//
//   meta        (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID
//               value is JSON. Keys: formatVersion, every BaselineMeta field
//               (version, builtAtMs, windowStartMs, windowEndMs, observerUnit,
//               populationSize, policy {allowPrivateDomains, pslVersion},
//               thresholds {uncommonBelowObservers, rareMaxObservers,
//               veryRareMaxObservers, commonProcessMinObservers},
//               omitsSingleObserverCombos, processCount, comboCount), and
//               comboKeyHash ("cyrb53"), comboKeyBits (53; smaller only in tests).
//   process     (sha BLOB PRIMARY KEY, observers INTEGER NOT NULL) WITHOUT ROWID
//               sha = the 32 raw bytes of the sha256.
//   combo       (key INTEGER PRIMARY KEY, observers INTEGER NOT NULL, chk INTEGER NOT NULL)
//               key = comboKey() of (sha256, root domain, port), see combo-key.ts;
//               chk = 11 further bits of the same hash. A lookup matches a row only
//               when chk matches too, so a combo that is absent from the file but
//               shares a key with a stored one reads as 0 except with odds 2^-11 on
//               top of the key's own (about 1e-9 per lookup at 10M rows).
//               observers = -1 (COMBO_SEE_EXACT): two or more stored combos share
//               this key; their counts are in combo_exact.
//   combo_exact (sha BLOB, root TEXT, port INTEGER, observers INTEGER NOT NULL,
//               PRIMARY KEY (sha, root, port)) WITHOUT ROWID
//               the combos whose key collided, stored exactly.
//   host_history (host TEXT PRIMARY KEY, first_day_ms INTEGER NOT NULL) WITHOUT ROWID
//               only in a file built with unit `host` by `rarecon baseline build`
//               (meta.hostHistoryCount says how many rows): each host observer
//               (`org/id`) and the start of the first day it was seen, which
//               offline scoring takes as its enrolment. Readers of files without
//               it (a server's) see no history; older readers ignore it.
//
// Rows are inserted in key order so B-tree pages are packed full. The file is
// written without a journal into `<out>.<random>.tmp`, switched to journal_mode
// DELETE, fsynced and renamed over `<out>`: a reader sees the old file or the
// new one, never half of one. Rollback mode rather than WAL because the file is
// never written after the rename, is shipped (and signed) as a single file, and a
// read-only open of a WAL file needs a -shm beside it in a writable folder.

export const FORMAT_VERSION = 1;

/** Marks a combo row whose key is shared by several combos: see combo_exact. */
export const COMBO_SEE_EXACT = -1;

export const COMBO_KEY_HASH = 'cyrb53';
export const DEFAULT_COMBO_KEY_BITS = 53;

/** migrations[i] takes a file from user_version i to i + 1. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE process (sha BLOB PRIMARY KEY, observers INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE combo (key INTEGER PRIMARY KEY, observers INTEGER NOT NULL, chk INTEGER NOT NULL);
   CREATE TABLE combo_exact (sha BLOB, root TEXT, port INTEGER, observers INTEGER NOT NULL,
                             PRIMARY KEY (sha, root, port)) WITHOUT ROWID;`,
];

export const REQUIRED_TABLES: readonly string[] = ['meta', 'process', 'combo', 'combo_exact'];

/** The optional table of host first days (see above). */
export const HOST_HISTORY_TABLE = `CREATE TABLE host_history (host TEXT PRIMARY KEY, first_day_ms INTEGER NOT NULL) WITHOUT ROWID`;
