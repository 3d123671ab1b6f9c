// A server.db written before issue 15 (schema 1: alerts unique by uid, tokens
// without a cap, credentials without dates) opens, keeps its rows, and takes
// the new rules: its hosts still authenticate, its alerts are filed by host.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IntakeStore } from '../../src/server/intake-store.js';
import { secretHash } from '../../src/common/secrets.js';
import { tempDir } from '../support/server.js';

/** The first migration, as the code before issue 15 had it. */
const SCHEMA_ONE = `CREATE TABLE org (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL);
   CREATE TABLE enrol_token (hash BLOB PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id),
                             created_ms INTEGER NOT NULL, revoked_ms INTEGER) WITHOUT ROWID;
   CREATE TABLE host (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id), host_id TEXT NOT NULL,
                      name TEXT, cred_hash BLOB NOT NULL UNIQUE, enrolled_ms INTEGER NOT NULL,
                      revoked_ms INTEGER, last_seen_ms INTEGER, UNIQUE (org_id, host_id));
   CREATE TABLE sha (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE);
   CREATE TABLE root (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
   CREATE TABLE host_day (host INTEGER NOT NULL, day INTEGER NOT NULL, processes BLOB NOT NULL, combos BLOB NOT NULL,
                          process_count INTEGER NOT NULL, combo_count INTEGER NOT NULL, received_ms INTEGER NOT NULL,
                          PRIMARY KEY (host, day)) WITHOUT ROWID;
   CREATE INDEX host_day_by_day ON host_day (day);
   CREATE TABLE alert (seq INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE, host INTEGER NOT NULL,
                       org_id INTEGER NOT NULL, time_ms INTEGER, severity_id INTEGER, received_ms INTEGER NOT NULL,
                       body TEXT NOT NULL);
   CREATE INDEX alert_by_org ON alert (org_id, seq);`;

describe('server.db from before issue 15', () => {
  it('migrates: rows kept, hosts authenticate, alerts by host, upload days counted', () => {
    const tmp = tempDir('migrate');
    try {
      const path = join(tmp.dir, 'server.db');
      const db = new Database(path);
      db.exec(SCHEMA_ONE);
      const now = Date.now();
      db.prepare('INSERT INTO org (id, name, created_ms) VALUES (1, ?, ?)').run('acme', now);
      db.prepare('INSERT INTO enrol_token (hash, org_id, created_ms) VALUES (?, 1, ?)').run(secretHash('rce_old'), now);
      db.prepare('INSERT INTO host (id, org_id, host_id, cred_hash, enrolled_ms) VALUES (1, 1, ?, ?, ?)').run(
        'h1',
        secretHash('rch_old'),
        now,
      );
      for (const d of [1, 2, 3])
        db.prepare(
          'INSERT INTO host_day (host, day, processes, combos, process_count, combo_count, received_ms) VALUES (1, ?, ?, ?, 0, 0, ?)',
        ).run(20_000 + d, Buffer.alloc(0), Buffer.alloc(0), now - d * 86_400_000);
      db.prepare('INSERT INTO alert (uid, host, org_id, time_ms, severity_id, received_ms, body) VALUES (?, 1, 1, ?, 4, ?, ?)').run(
        'u-1',
        now,
        now,
        '{"x":1}',
      );
      db.pragma('user_version = 1');
      db.close();

      const store = new IntakeStore(path);
      const policy = { lifetimeMs: 30 * 86_400_000, graceMs: 3_600_000 };
      const a = store.authenticate('rch_old', policy, now);
      expect(a.ok).toBe(true);
      if (!a.ok) return;
      expect(a.host.uploadDays).toBe(3);
      expect(store.tokens(null)).toMatchObject([{ org: 'acme', maxHosts: 1000, hostsAdmitted: 0 }]);
      expect(store.queryAlerts({ org: 'acme', hostId: null, afterSeq: 0, sinceMs: null, limit: 10 })).toMatchObject([
        { uid: 'u-1', hostId: 'h1', severityId: 4 },
      ]);
      expect(store.storeAlerts(a.host, [{ uid: 'u-1', timeMs: now, severityId: 4, body: '{"x":1}' }], now)).toEqual({
        stored: 0,
        updated: 0,
        duplicates: 1,
      });
      store.close();
    } finally {
      tmp.cleanup();
    }
  });
});
