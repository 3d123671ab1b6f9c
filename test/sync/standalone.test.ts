// Without a server the endpoint learns its own baseline: each day it saw is one
// observer (unit `day`), built by the shared builder from its stored sightings.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { DEFAULT_SYNC } from '../../src/config/defaults.js';
import { SyncClient } from '../../src/sync/sync-client.js';
import { readSyncStatus } from '../../src/sync/status.js';
import { SightingsStore } from '../../src/sync/sightings-store.js';
import type { BaselineReader } from '../../src/model/baseline.js';
import { DAY, memoryLog, sha, tempDir } from '../support/server.js';

describe('standalone baseline', () => {
  const tmp = tempDir('standalone');
  afterAll(() => tmp.cleanup());

  it('is rebuilt from the host’s own days and replaces the previous one', async () => {
    const store = new SightingsStore(join(tmp.dir, 'sightings.db'));
    const today = Math.floor(Date.now() / DAY) * DAY;
    const curl = sha('curl');
    for (let d = 0; d < 20; d++) {
      store.add([
        { observer: '', dayMs: today - d * DAY, sha256: curl, rootDomain: 'debian.org', port: 443 },
        { observer: '', dayMs: today - d * DAY, sha256: curl, rootDomain: 'debian.org', port: 443 },
      ]);
    }
    store.add([{ observer: '', dayMs: today, sha256: curl, rootDomain: 'odd-once.net', port: 4444 }]);
    const seen: BaselineReader[] = [];
    const { log } = memoryLog();
    const c = new SyncClient({
      cfg: DEFAULT_SYNC,
      stateDir: tmp.dir,
      hostId: 'solo',
      log,
      sightings: store,
      onBaseline: (r) => seen.push(r),
    });
    expect(c.mode).toBe('standalone');
    const r = await c.syncNow();
    expect(r.ok).toBe(true);
    const b = c.current();
    expect(b?.meta().observerUnit).toBe('day');
    expect(b?.process(curl)).toBe(20);
    expect(b?.combo(curl, 'debian.org', 443)).toBe(20);
    expect(b?.combo(curl, 'odd-once.net', 4444)).toBe(1);
    const v1 = b?.meta().version ?? 0;
    store.add([{ observer: '', dayMs: today, sha256: sha('new'), rootDomain: 'x.org', port: 80 }]);
    expect((await c.syncNow()).ok).toBe(true);
    expect(c.current()?.meta().version).toBeGreaterThan(v1);
    expect(c.current()?.process(sha('new'))).toBe(1);
    expect(seen).toHaveLength(2);
    await c.stop();
    expect(readSyncStatus(tmp.dir)?.mode).toBe('standalone');
    c.close();
    store.close();
  });
  it('tells which sightings it holds already today without a database read', () => {
    const store = new SightingsStore(join(tmp.dir, 'has.db'));
    const today = Math.floor(Date.now() / DAY) * DAY;
    const s = { observer: '', dayMs: today, sha256: sha('wget'), rootDomain: 'gnu.org', port: 443 };
    expect(store.has(s)).toBe(false);
    expect(store.add([s])).toBe(1);
    expect(store.has(s)).toBe(true);
    expect(store.has({ ...s, sha256: s.sha256.toUpperCase() })).toBe(true);
    expect(store.has({ ...s, port: 80 })).toBe(false);
    expect(store.has({ ...s, rootDomain: null, port: null })).toBe(false);
    expect(store.has({ ...s, dayMs: today + DAY })).toBe(false);
    store.close();
  });
});
