// Heavy processes (a browser talks to a great many domains fleet-wide): their
// combos come in cells by root domain, fetched as the endpoint meets them, so
// the endpoint's cache follows what the host does, not the fleet's fan-out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SYNC } from '../../src/config/defaults.js';
import { SyncClient } from '../../src/sync/sync-client.js';
import type { RunningServer } from '../../src/server/server.js';
import { DAY, enrolHosts, http, isoDay, memoryLog, sha, startTestServer, tempDir } from '../support/server.js';
import { STORES, storeUnderTest } from '../support/postgres-stores.js';

const BROWSER = sha('browser');
const UPDATER = sha('updater');

describe.each(STORES)('cells of heavy processes (%s store)', (storeName) => {
  const st = storeUnderTest(storeName);
  if (st.skip !== null) return void it.skip(st.skip, () => {});
  const tmp = tempDir('cells');
  let server: RunningServer;
  let creds: string[];
  let token: string;
  const day = Math.floor(Date.now() / DAY) * DAY - DAY;

  async function upload(domains: number, updaterDomains: number): Promise<void> {
    for (const cred of creds) {
      const combos = [
        ...Array.from({ length: domains }, (_, i) => ({ sha256: BROWSER, rootDomain: `site${i}.com`, port: 443 })),
        ...Array.from({ length: updaterDomains }, (_, i) => ({ sha256: UPDATER, rootDomain: `update${i}.org`, port: 443 })),
      ];
      const r = await http(`${server.url}/v1/sightings`, {
        token: cred,
        body: { days: [{ day: isoDay(day), processes: [BROWSER, UPDATER], combos }] },
      });
      expect(r.status).toBe(200);
    }
  }

  beforeAll(async () => {
    const over = { ...(await st.config()), heavyProcessCombos: 8, combosPerCell: 4 };
    ({ server } = await startTestServer(join(tmp.dir, 'server'), over));
    const store = await st.open(join(tmp.dir, 'server'), over);
    token = (await store.createEnrolToken('web', 1_000, Date.now())).token;
    await store.close();
    creds = await enrolHosts(server.url, token, 3);
    await upload(40, 2);
    const b = await server.buildNow();
    if (!b.ok) throw new Error(b.error);
  });
  afterAll(async () => {
    await server.close();
    tmp.cleanup();
  });

  function client(name: string): SyncClient {
    const dir = join(tmp.dir, name);
    mkdirSync(dir, { recursive: true });
    const cfg = {
      ...DEFAULT_SYNC,
      serverUrl: server.url,
      serverPublicKey: server.publicKeyText,
      enrolTokenEnv: 'T',
      bucketFetchLingerMs: 5,
    };
    return new SyncClient({ cfg, stateDir: dir, hostId: name, log: memoryLog().log, env: { T: token } });
  }

  it('fetches the bucket, then only the cells of the domains met', async () => {
    const c = client('ep1');
    expect((await c.syncNow()).ok).toBe(true);
    const cache = c.bucketCache();
    const reader = c.current();
    if (cache === null || reader === null) throw new Error('no cache');
    expect(reader.process(BROWSER)).toBeUndefined();
    await c.fetchWantedNow();
    expect(reader.process(BROWSER)).toBe(3);
    // The browser is heavy: a combo needs its cell first.
    expect(cache.readyFor(BROWSER, 'site7.com')).toBe(false);
    expect(reader.combo(BROWSER, 'site7.com', 443)).toBe(0);
    expect((await c.fetchWantedNow()).ok).toBe(true);
    expect(cache.readyFor(BROWSER, 'site7.com')).toBe(true);
    expect(reader.combo(BROWSER, 'site7.com', 443)).toBe(3);
    const s = cache.stats();
    expect(s.cells).toBe(1);
    expect(s.comboRows).toBeLessThan(40);
    // A light process's combos came with its bucket.
    reader.process(UPDATER);
    await c.fetchWantedNow();
    expect(cache.readyFor(UPDATER, 'update1.org')).toBe(true);
    expect(reader.combo(UPDATER, 'update1.org', 443)).toBe(3);
    await c.stop();
    c.close();
  });

  it('holds an event through both hops: the bucket, then the cell', async () => {
    const c = client('ep2');
    expect((await c.syncNow()).ok).toBe(true);
    const cache = c.bucketCache();
    if (cache === null) throw new Error('no cache');
    expect(cache.hold(BROWSER, 'site3.com', { n: 1 })).toBe(true);
    await c.fetchWantedNow();
    expect(cache.takeHeld().ready).toHaveLength(0);
    await c.fetchWantedNow();
    const { ready } = cache.takeHeld<{ n: number }>();
    expect(ready.map((e) => e.payload.n)).toEqual([1]);
    expect(c.current()?.combo(BROWSER, 'site3.com', 443)).toBe(3);
    await c.stop();
    c.close();
  });

  it('drops old cells when a process becomes heavy, and fetches its cells anew', async () => {
    const c = client('ep3');
    expect((await c.syncNow()).ok).toBe(true);
    const reader = c.current();
    const cache = c.bucketCache();
    if (reader === null || cache === null) throw new Error('no cache');
    reader.process(UPDATER);
    await c.fetchWantedNow();
    expect(reader.combo(UPDATER, 'update1.org', 443)).toBe(3);
    // The updater now talks to many domains: heavy in the next version.
    await upload(40, 30);
    const b = await server.buildNow();
    if (!b.ok) throw new Error(b.error);
    expect((await c.syncNow()).ok).toBe(true);
    expect(cache.readyFor(UPDATER, 'update1.org')).toBe(false);
    expect(reader.combo(UPDATER, 'update1.org', 443)).toBe(0);
    await c.fetchWantedNow();
    expect(reader.combo(UPDATER, 'update1.org', 443)).toBe(3);
    expect(reader.combo(UPDATER, 'update25.org', 443)).toBeGreaterThanOrEqual(0);
    await c.fetchWantedNow();
    expect(reader.combo(UPDATER, 'update25.org', 443)).toBe(3);
    await c.stop();
    c.close();
  });
});
