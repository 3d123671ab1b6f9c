// A real endpoint sync client against a real server (in this process), through
// a misbehaving middle-man: sightings up, baseline down, lookups that use it,
// and every way a baseline can go wrong refused or retried, the old one kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SYNC, type SyncConfig } from '../../src/config/defaults.js';
import { SyncClient } from '../../src/sync/sync-client.js';
import { SightingsStore } from '../../src/sync/sightings-store.js';
import { generateSigningKey } from '../../src/baseline/signature.js';
import { IntakeStore } from '../../src/server/intake-store.js';
import { serverPaths, type RunningServer } from '../../src/server/server.js';
import {
  DAY,
  OTHER,
  POPULAR,
  enrolHosts,
  http,
  memoryLog,
  sha,
  startProxy,
  startTestServer,
  tempDir,
  uploadFleetDay,
} from '../support/server.js';

describe('endpoint sync against the baseline server', () => {
  const tmp = tempDir('sync');
  let server: RunningServer;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let token: string;
  const today = Math.floor(Date.now() / DAY) * DAY;

  function client(
    name: string,
    over: Partial<SyncConfig> = {},
    sightings: SightingsStore | null = null,
  ): { c: SyncClient; lines: ReturnType<typeof memoryLog>['lines'] } {
    const dir = join(tmp.dir, name);
    mkdirSync(dir, { recursive: true });
    const { log, lines } = memoryLog();
    const cfg: SyncConfig = {
      ...DEFAULT_SYNC,
      serverUrl: proxy.url,
      serverPublicKey: server.publicKeyText,
      enrolTokenEnv: 'RARECON_TEST_TOKEN',
      requestTimeoutMs: 1_500,
      backoffInitialMs: 50,
      backoffMaxMs: 200,
      bucketFetchLingerMs: 10,
      ...over,
    };
    return {
      c: new SyncClient({ cfg, stateDir: dir, hostId: `endpoint-${name}`, log, sightings, env: { RARECON_TEST_TOKEN: token } }),
      lines,
    };
  }

  beforeAll(async () => {
    ({ server } = await startTestServer(join(tmp.dir, 'server')));
    proxy = await startProxy(server.url);
    const store = new IntakeStore(serverPaths(join(tmp.dir, 'server')).intake);
    token = store.createEnrolToken('fleet', 1_000, Date.now()).token;
    store.close();
    const creds = await enrolHosts(server.url, token, 12);
    for (let d = 1; d <= 3; d++) await uploadFleetDay(server.url, creds, today - d * DAY);
    const b = await server.buildNow();
    if (!b.ok) throw new Error(b.error);
    // Counted on the way and by the builder alike (single-observer combos left out here).
    expect(b.figures.countMismatches).toBe(0);
  });
  afterAll(async () => {
    await proxy.close();
    await server.close();
    tmp.cleanup();
  });

  it('uploads sightings, then fetches buckets on demand and scores with them', async () => {
    const sightings = new SightingsStore(join(tmp.dir, 'up-sightings.db'));
    sightings.add([{ observer: '', dayMs: today - DAY, sha256: sha('mine'), rootDomain: 'mine.org', port: 443 }]);
    const { c } = client('buckets', {}, sightings);
    const r = await c.syncNow();
    expect(r.ok).toBe(true);
    expect(c.status().uploadedDaysTotal).toBe(1);
    expect(sightings.daysToUpload()).toEqual([]);
    const reader = c.current();
    expect(reader).not.toBeNull();
    if (reader === null) return;
    // The bucket of POPULAR is not cached yet: unknown, and asked for.
    expect(reader.process(POPULAR)).toBeUndefined();
    expect(c.bucketCache()?.wantedKeys()).toEqual([POPULAR.slice(0, 4)]);
    const f = await c.fetchWantedNow();
    expect(f.ok).toBe(true);
    expect(reader.process(POPULAR)).toBe(12);
    expect(reader.combo(POPULAR, 'popular.com', 443)).toBe(12);
    expect(reader.combo(POPULAR, 'rare-c2.net', 8443)).toBe(2);
    expect(reader.combo(POPULAR, 'never-seen.org', 443)).toBe(0);
    expect(reader.meta().observerUnit).toBe('host');
    expect(reader.meta().populationSize).toBe(12);
    await c.stop();
    c.close();
    sightings.close();
  });

  it('holds an event until its bucket arrives, and expires one whose bucket never comes', async () => {
    const { c } = client('held', { pendingTimeoutMs: 0 });
    expect((await c.syncNow()).ok).toBe(true);
    const cache = c.bucketCache();
    if (cache === null) throw new Error('no cache');
    expect(cache.hold(OTHER, null, { event: 'connect-other' })).toBe(true);
    await c.fetchWantedNow();
    const taken = cache.takeHeld<{ event: string }>();
    expect(taken.ready.map((e) => e.payload.event)).toEqual(['connect-other']);
    proxy.mode = { kind: 'status', status: 500 };
    expect(cache.hold(sha('nobody'), null, { event: 'lonely' })).toBe(true);
    const failed = await c.fetchWantedNow();
    expect(failed.ok).toBe(false);
    const later = cache.takeHeld<{ event: string }>();
    expect(later.expired.map((e) => e.payload.event)).toEqual(['lonely']);
    expect(cache.stats()).toMatchObject({ heldTotal: 2, releasedTotal: 1, expiredTotal: 1 });
    proxy.mode = { kind: 'pass' };
    await c.stop();
    c.close();
  });

  it('keeps the snapshot in force through tampering, a wrong key, a replay, truncation, 500 and a hanging server', async () => {
    const { c } = client('snapshot', { mode: 'snapshot' });
    expect((await c.syncNow()).ok).toBe(true);
    const v1 = c.current()?.meta().version;
    expect(c.current()?.combo(POPULAR, 'rare-c2.net', 8443)).toBe(2);
    const v1Body = proxy.last;
    expect(v1Body).not.toBeNull();

    // A newer version to be offered, in many broken ways.
    const b = await server.buildNow();
    if (!b.ok) throw new Error(b.error);
    const cases: Array<[typeof proxy.mode, string]> = [
      [{ kind: 'tamper' }, 'digest-mismatch'],
      [{ kind: 'strip-signature' }, 'unsigned'],
      [{ kind: 'truncate' }, 'truncated'],
      [{ kind: 'status', status: 500 }, 'http-500'],
      [{ kind: 'hang' }, 'timeout'],
      [{ kind: 'replay', body: v1Body as Buffer }, 'older'],
    ];
    for (const [mode, code] of cases) {
      proxy.mode = mode;
      const r = await c.syncNow();
      expect(r.ok, `${mode.kind} must fail`).toBe(false);
      const st = c.status();
      expect(st.lastErrorCode, mode.kind).toBe(code);
      expect(st.version).toBe(v1);
      expect(c.current()?.combo(POPULAR, 'popular.com', 443)).toBe(12);
    }
    // The replay has to be of an equal version too: the first good sync, then v1 again.
    proxy.mode = { kind: 'pass' };
    const good = await c.syncNow();
    expect(good.ok).toBe(true);
    expect(c.status().version).toBe(b.ok ? b.version : -1);
    expect(c.status()).toMatchObject({ consecutiveFailures: 0, lastError: null });
    expect(c.status().refusedTotal).toBeGreaterThanOrEqual(4);
    await c.stop();
    c.close();

    const stranger = generateSigningKey();
    const { c: wrong } = client('wrong-key', { mode: 'snapshot', serverPublicKey: stranger.publicKeyText });
    const r = await wrong.syncNow();
    expect(r.ok).toBe(false);
    expect(wrong.status().lastErrorCode).toBe('wrong-key');
    expect(wrong.current()).toBeNull();
    await wrong.stop();
    wrong.close();
  });

  it('refuses a replayed older bucket refresh and keeps the cache', async () => {
    const { c } = client('bucket-replay');
    expect((await c.syncNow()).ok).toBe(true);
    c.current()?.process(POPULAR);
    expect((await c.fetchWantedNow()).ok).toBe(true);
    const old = proxy.last as Buffer;
    const b = await server.buildNow();
    if (!b.ok) throw new Error(b.error);
    expect((await c.syncNow()).ok).toBe(true);
    const v = c.status().version;
    proxy.mode = { kind: 'replay', body: old };
    await server.buildNow();
    const r = await c.syncNow();
    expect(r.ok).toBe(false);
    expect(c.status().version).toBe(v);
    expect(c.current()?.combo(POPULAR, 'popular.com', 443)).toBe(12);
    proxy.mode = { kind: 'pass' };
    await c.stop();
    c.close();
  });

  it('retries with backoff on its schedule until the server answers', async () => {
    proxy.mode = { kind: 'status', status: 503 };
    const { c } = client('backoff', { mode: 'snapshot', syncCron: '0 0 1 1 *' });
    c.start();
    const deadline = Date.now() + 10_000;
    while (c.status().consecutiveFailures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(c.status().consecutiveFailures).toBeGreaterThanOrEqual(2);
    expect(c.current()).toBeNull();
    proxy.mode = { kind: 'pass' };
    while (c.current() === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(c.current()?.process(POPULAR)).toBe(12);
    await c.stop();
    c.close();
  });

  it('answers 401 to an unenrolled host and 403 to a revoked one, visible in the sync status', async () => {
    const { c } = client('revoked', { mode: 'snapshot' });
    expect((await c.syncNow()).ok).toBe(true);
    const store = new IntakeStore(serverPaths(join(tmp.dir, 'server')).intake);
    store.revokeHost('endpoint-revoked', null, Date.now());
    store.close();
    await server.buildNow();
    const r = await c.syncNow();
    expect(r.ok).toBe(false);
    expect(c.status().lastErrorCode).toBe('revoked');
    expect(c.current()).not.toBeNull();
    await c.stop();
    c.close();
    const anon = await http(`${server.url}/v1/baseline/snapshot`, { token: 'rch_not-a-credential' });
    expect(anon.status).toBe(401);
  });
});
