// The server API as an endpoint and an operator use it: enrolment, sightings
// intake with its checks, aggregation, baseline fetch, alerts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePublicKey, verifySigned } from '../../src/baseline/signature.js';
import type { RunningServer } from '../../src/server/server.js';
import type { ServerConfig } from '../../src/config/defaults.js';
import { DAY, http, isoDay, sha, startTestServer, tempDir } from '../support/server.js';
import { STORES, storeUnderTest } from '../support/postgres-stores.js';

describe.each(STORES)('baseline server API (%s store)', (storeName) => {
  const st = storeUnderTest(storeName);
  const tmp = tempDir('api');
  let server: RunningServer;
  let cred: string;
  let token: string;
  let over: Partial<ServerConfig>;
  const today = Math.floor(Date.now() / DAY) * DAY;
  if (st.skip !== null) return void it.skip(st.skip, () => {});

  beforeAll(async () => {
    over = { ...(await st.config()), omitSingleObserverCombos: false };
    ({ server } = await startTestServer(tmp.dir, over));
  });
  afterAll(async () => {
    await server.close();
    tmp.cleanup();
  });

  it('answers health without credentials', async () => {
    const r = await http(`${server.url}/v1/health`);
    expect(r.status).toBe(200);
    expect(r.json.status).toBe('ok');
    expect(r.json.baselineVersion).toBeNull();
  });

  it('enrols a host with an org token and refuses unknown tokens', async () => {
    const store = await st.open(tmp.dir, over);
    token = (await store.createEnrolToken('acme', 1_000, Date.now())).token;
    await store.close();
    const bad = await http(`${server.url}/v1/enroll`, { body: { token: 'rce_nope', hostId: 'h1' } });
    expect(bad.status).toBe(401);
    const r = await http(`${server.url}/v1/enroll`, { body: { token, hostId: 'h1', hostName: 'web-1' } });
    expect(r.status).toBe(200);
    expect(r.json.org).toBe('acme');
    expect(r.json.publicKey).toBe(server.publicKeyText);
    cred = r.json.credential;
  });

  it('takes sightings, replaces a host-day on re-upload, and refuses a malformed batch whole', async () => {
    const day = isoDay(today - DAY);
    const ok = await http(`${server.url}/v1/sightings`, {
      token: cred,
      body: { days: [{ day, processes: [sha('a')], combos: [{ sha256: sha('a'), rootDomain: 'example.com', port: 443 }] }] },
    });
    expect(ok.status).toBe(200);
    expect(ok.json.stored).toEqual({ days: 1, processes: 1, combos: 1, replaced: 0 });
    const again = await http(`${server.url}/v1/sightings`, {
      token: cred,
      body: { days: [{ day, processes: [sha('a')], combos: [{ sha256: sha('a'), rootDomain: 'example.com', port: 443 }] }] },
    });
    expect(again.json.stored.replaced).toBe(1);
    const bad = await http(`${server.url}/v1/sightings`, {
      token: cred,
      body: {
        days: [
          {
            day,
            combos: [
              { sha256: sha('a'), rootDomain: 'example.com', port: 443 },
              { sha256: sha('b'), rootDomain: 'example.com', port: 'https' },
            ],
          },
        ],
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('days[0].combos[1].port');
    const notRoot = await http(`${server.url}/v1/sightings`, {
      token: cred,
      body: { days: [{ day, combos: [{ sha256: sha('a'), rootDomain: 'www.example.com', port: 443 }] }] },
    });
    expect(notRoot.status).toBe(400);
    expect(notRoot.json.error.message).toContain('days[0].combos[0].rootDomain');
  });

  it('refuses unknown credentials with 401', async () => {
    const r = await http(`${server.url}/v1/sightings`, { token: 'rch_unknown', body: { days: [] } });
    expect(r.status).toBe(401);
    const none = await http(`${server.url}/v1/baseline`);
    expect(none.status).toBe(401);
  });

  it('builds and serves a signed bucket, delta and snapshot', async () => {
    const b = await http(`${server.url}/v1/admin/build`, { method: 'POST', token: server.adminToken });
    expect(b.status).toBe(200);
    expect(b.json.figures.countMismatches).toBe(0);
    const version = b.json.version as number;
    const key = parsePublicKey(server.publicKeyText);
    if (!key.ok) throw new Error(key.error);
    const prefix = sha('a').slice(0, 4);
    const bucket = await http(`${server.url}/v1/baseline/buckets/${prefix}`, { token: cred });
    expect(bucket.status).toBe(200);
    const v = verifySigned(bucket.body, key.key);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.header.meta.version).toBe(version);
    const rows = JSON.parse(v.content.toString('utf8'));
    expect(rows.combos).toEqual([[sha('a'), 'example.com', 443, 1]]);
    const etag = bucket.headers.etag as string;
    const again = await http(`${server.url}/v1/baseline/buckets/${prefix}`, { token: cred, headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    const snap = await http(`${server.url}/v1/baseline/snapshot`, { token: cred });
    expect(snap.status).toBe(200);
    expect(verifySigned(snap.body, key.key).ok).toBe(true);
    const same = await http(`${server.url}/v1/baseline/delta?from=${version}`, { token: cred });
    expect(same.status).toBe(304);
    const tooOld = await http(`${server.url}/v1/baseline/delta?from=1`, { token: cred });
    expect(tooOld.status).toBe(410);
  });

  it('stores alerts idempotently by uid and lists them to the admin', async () => {
    const alert = { metadata: { uid: 'u-1' }, time: Date.now(), severity_id: 3, finding_info: { title: 'x' } };
    const r1 = await http(`${server.url}/v1/alerts`, { token: cred, body: [alert] });
    expect(r1.json).toEqual({ stored: 1, updated: 0, duplicates: 0 });
    const r2 = await http(`${server.url}/v1/alerts`, { token: cred, body: [alert] });
    expect(r2.json).toEqual({ stored: 0, updated: 0, duplicates: 1 });
    const r3 = await http(`${server.url}/v1/alerts`, { token: cred, body: [{ ...alert, count: 2 }] });
    expect(r3.json).toEqual({ stored: 0, updated: 1, duplicates: 0 });
    const q = await http(`${server.url}/v1/alerts?org=acme`, { token: server.adminToken });
    expect(q.status).toBe(200);
    expect(q.json.alerts).toHaveLength(1);
    expect(q.json.alerts[0].uid).toBe('u-1');
    const noAdmin = await http(`${server.url}/v1/alerts`, { token: cred });
    expect(noAdmin.status).toBe(401);
  });

  it('answers 403 to a revoked host', async () => {
    const store = await st.open(tmp.dir, over);
    expect(await store.revokeHost('h1', null, Date.now())).toHaveLength(1);
    await store.close();
    const r = await http(`${server.url}/v1/baseline`, { token: cred });
    expect(r.status).toBe(403);
    const again = await http(`${server.url}/v1/enroll`, { body: { token, hostId: 'h1' } });
    expect(again.status).toBe(403);
  });
});
