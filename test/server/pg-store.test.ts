// The PostgreSQL store against the SQLite one and against itself on two nodes:
//   - the same sightings give the same baseline (every count, the meta, every
//     bucket's rows), whichever store counted them;
//   - two nodes on one database serve byte-identical signed answers, share the
//     host cap of a token, and a scheduled run builds once, not twice;
//   - the window slides by dropping day partitions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { KeyObject } from 'node:crypto';
import { DEFAULT_SERVER, type ServerConfig } from '../../src/config/defaults.js';
import { parsePublicKey, verifySigned } from '../../src/baseline/signature.js';
import { openBaseline } from '../../src/baseline/store.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { aggregatePg, type PgAggregateOptions } from '../../src/server/pg-aggregate.js';
import type { RunningServer } from '../../src/server/server.js';
import { DAY, http, isoDay, sha, startTestServer, tempDir } from '../support/server.js';
import { storeUnderTest } from '../support/postgres-stores.js';

const pgStore = storeUnderTest('postgresql');
const sqliteStore = storeUnderTest('sqlite');
const today = Math.floor(Date.now() / DAY) * DAY;
const NOW = today + 10 * 3_600_000;

function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const SHAS = Array.from({ length: 40 }, (_, i) => sha(`bin-${i}`));
const ROOTS = Array.from({ length: 25 }, (_, i) => `dom${i}.example`);

interface Upload {
  host: number;
  day: number;
  processes: string[];
  combos: Array<{ sha256: string; rootDomain: string; port: number }>;
}

/** A small fleet: 24 hosts of 4 orgs over 6 days, skewed so counts differ; some host-days uploaded twice with other content. */
function fleet(): Upload[] {
  const r = rand(7);
  const out: Upload[] = [];
  for (let day = 6; day >= 1; day--) {
    for (let host = 0; host < 24; host++) {
      if (r() < 0.15) continue;
      const procs = new Set<string>();
      const combos = new Map<string, { sha256: string; rootDomain: string; port: number }>();
      for (let k = 0; k < 12; k++) {
        const s = SHAS[Math.floor(SHAS.length * r() ** 2)] as string;
        procs.add(s);
        if (r() < 0.7) {
          const c = { sha256: s, rootDomain: ROOTS[Math.floor(ROOTS.length * r() ** 1.5)] as string, port: r() < 0.8 ? 443 : 8443 };
          combos.set(`${c.sha256}|${c.rootDomain}|${c.port}`, c);
        }
      }
      out.push({ host, day, processes: [...procs], combos: [...combos.values()] });
      // A retried upload of the same host-day with other content replaces it.
      if (r() < 0.1) out.push({ host, day, processes: [...procs].slice(1), combos: [...combos.values()].slice(2) });
    }
  }
  return out;
}

function publicKeyOf(s: RunningServer): KeyObject {
  const k = parsePublicKey(s.publicKeyText);
  if (!k.ok) throw new Error(k.error);
  return k.key;
}

async function enrolAll(server: RunningServer, tokens: string[]): Promise<string[]> {
  const creds: string[] = [];
  for (let h = 0; h < 24; h++) {
    const r = await http(`${server.url}/v1/enroll`, { body: { token: tokens[h % 4], hostId: `h${h}`, hostName: `h${h}` } });
    expect(r.status, r.body.toString()).toBe(200);
    creds.push(r.json.credential as string);
  }
  return creds;
}

/** Each host-day uploaded on its own day (`setClock`), so hosts gather upload days as a real fleet does. */
async function uploadAll(url: (i: number) => string, creds: string[], uploads: Upload[], setClock: (ms: number) => void): Promise<void> {
  let i = 0;
  for (const u of uploads) {
    setClock(NOW - (u.day - 1) * DAY);
    const r = await http(`${url(i++)}/v1/sightings`, {
      token: creds[u.host] as string,
      body: { days: [{ day: isoDay(today - u.day * DAY), processes: u.processes, combos: u.combos }] },
    });
    expect(r.status, r.body.toString()).toBe(200);
  }
}

/** Every bucket an endpoint could ask for these shas, verified, as rows. */
async function bucketRows(server: RunningServer, cred: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const p of [...new Set(SHAS.map((s) => s.slice(0, 4)))].sort()) {
    const r = await http(`${server.url}/v1/baseline/buckets/${p}`, { token: cred });
    expect(r.status).toBe(200);
    const v = verifySigned(r.body, publicKeyOf(server));
    if (!v.ok) throw new Error(v.error);
    out.push(JSON.parse(v.content.toString('utf8')));
  }
  return out;
}

async function snapshotCounts(server: RunningServer, cred: string, dir: string): Promise<{ meta: object; counts: number[] }> {
  const r = await http(`${server.url}/v1/baseline/snapshot`, { token: cred });
  expect(r.status).toBe(200);
  const v = verifySigned(r.body, publicKeyOf(server));
  if (!v.ok) throw new Error(v.error);
  const file = join(dir, `snap-${Math.random().toString(16).slice(2)}.db`);
  writeFileSync(file, v.content);
  const o = openBaseline(file);
  if (!o.ok) throw new Error(o.error);
  const counts: number[] = [];
  for (const s of SHAS) {
    counts.push(o.baseline.process(s) ?? -1);
    for (const root of ROOTS) for (const port of [443, 8443]) counts.push(o.baseline.combo(s, root, port));
  }
  // The version and build time are each build's own; everything else must agree.
  const meta: Record<string, unknown> = { ...o.baseline.meta() };
  delete meta.version;
  delete meta.builtAtMs;
  o.baseline.close();
  return { meta, counts };
}

describe.skipIf(pgStore.skip !== null)('the PostgreSQL store gives the SQLite store’s baseline', () => {
  const tmp = tempDir('pg-same');
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    tmp.cleanup();
  });

  it('same sightings, revocation and re-uploads: the same counts, meta and bucket rows', async () => {
    const results: Array<{ buckets: unknown[]; snap: { meta: object; counts: number[] } }> = [];
    const uploads = fleet();
    for (const st of [sqliteStore, pgStore]) {
      const over: Partial<ServerConfig> = {
        ...(await st.config()),
        observerUnit: 'host',
        hostMinUploadDays: 2,
        omitSingleObserverCombos: true,
        windowDays: 5,
      };
      const stateDir = join(tmp.dir, st.name);
      let clock = NOW;
      const { server } = await startTestServer(stateDir, over, { now: () => clock });
      servers.push(server);
      const store = await st.open(stateDir, over);
      const tokens: string[] = [];
      for (let o = 0; o < 4; o++) tokens.push((await store.createEnrolToken(`org-${o}`, 100, NOW)).token);
      const creds = await enrolAll(server, tokens);
      await uploadAll(
        () => server.url,
        creds,
        uploads,
        (ms) => (clock = ms),
      );
      clock = NOW;
      expect(await store.revokeHost('h5', null, NOW)).toHaveLength(1);
      await store.close();
      const b = await server.buildNow();
      if (!b.ok) throw new Error(b.error);
      results.push({
        buckets: await bucketRows(server, creds[0] as string),
        snap: await snapshotCounts(server, creds[0] as string, tmp.dir),
      });
    }
    const [lite, pgr] = results as [(typeof results)[0], (typeof results)[0]];
    expect(lite.snap.counts.some((n) => n > 1)).toBe(true);
    expect(pgr.snap.meta).toEqual(lite.snap.meta);
    expect(pgr.snap.counts).toEqual(lite.snap.counts);
    expect(pgr.buckets).toEqual(lite.buckets);
  });
});

/** The verified content of a signed answer (the delta of `from`, or one bucket). */
async function signedContent(server: RunningServer, path: string, cred: string): Promise<unknown> {
  const r = await http(`${server.url}${path}`, { token: cred });
  expect(r.status, `${path}: ${r.body.toString().slice(0, 200)}`).toBe(200);
  const v = verifySigned(r.body, publicKeyOf(server));
  if (!v.ok) throw new Error(v.error);
  return JSON.parse(v.content.toString('utf8'));
}

describe.skipIf(pgStore.skip !== null)('successive builds: the PostgreSQL store publishes the SQLite store’s deltas', () => {
  const tmp = tempDir('pg-deltas');
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    tmp.cleanup();
  });

  // Three builds: counts change, combos and processes vanish (removals), processes turn heavy and back
  // (cells resized), and with two versions of delta history the oldest removals are pruned.
  it('the same deltas from each older version, the same delta horizon and the same buckets', async () => {
    const uploads = fleet();
    const results: unknown[][] = [];
    for (const st of [sqliteStore, pgStore]) {
      const over: Partial<ServerConfig> = {
        ...(await st.config()),
        observerUnit: 'host',
        hostMinUploadDays: 1,
        omitSingleObserverCombos: false,
        windowDays: 5,
        heavyProcessCombos: 6,
        combosPerCell: 2,
        deltaHistoryVersions: 2,
      };
      const stateDir = join(tmp.dir, st.name);
      let clock = NOW;
      const { server } = await startTestServer(stateDir, over, { now: () => clock });
      servers.push(server);
      const store = await st.open(stateDir, over);
      const tokens: string[] = [];
      for (let o = 0; o < 4; o++) tokens.push((await store.createEnrolToken(`org-${o}`, 100, NOW)).token);
      const creds = await enrolAll(server, tokens);
      const seen: unknown[] = [];
      const versions: number[] = [];
      const build = async (): Promise<void> => {
        const b = await server.buildNow();
        if (!b.ok) throw new Error(b.error);
        versions.push(b.version);
        // Each server has its own key and writes its own snapshot file; the rest must agree.
        const info = (await http(`${server.url}/v1/baseline`, { token: creds[0] as string })).json as Record<string, unknown>;
        delete info.keyId;
        delete info.snapshot;
        seen.push(info);
        for (const from of versions.slice(0, -1)) {
          const r = await http(`${server.url}/v1/baseline/delta?from=${from}`, { token: creds[0] as string });
          seen.push(r.status === 200 ? await signedContent(server, `/v1/baseline/delta?from=${from}`, creds[0] as string) : r.status);
        }
        seen.push(await bucketRows(server, creds[0] as string));
      };
      // 1: the first half of the uploads.
      const half = Math.floor(uploads.length / 2);
      await uploadAll(
        () => server.url,
        creds,
        uploads.slice(0, half),
        (ms) => (clock = ms),
      );
      clock = NOW;
      await build();
      // 2: the rest, and hosts re-upload a day with less in it.
      await uploadAll(
        () => server.url,
        creds,
        uploads.slice(half),
        (ms) => (clock = ms),
      );
      clock = NOW + 3_600_000;
      for (let h = 0; h < 6; h++) {
        const r = await http(`${server.url}/v1/sightings`, {
          token: creds[h] as string,
          body: { days: [{ day: isoDay(today - DAY), processes: [SHAS[h]], combos: [] }] },
        });
        expect(r.status).toBe(200);
      }
      await build();
      // 3: revoked hosts count no more.
      clock = NOW + 2 * 3_600_000;
      for (const h of ['h1', 'h2', 'h3', 'h7']) expect(await store.revokeHost(h, null, clock)).toHaveLength(1);
      await build();
      await store.close();
      results.push(seen);
    }
    const [lite, pgr] = results as [unknown[], unknown[]];
    expect(lite.length).toBeGreaterThan(6);
    for (let i = 0; i < lite.length; i++) expect(pgr[i], `answer ${i}`).toEqual(lite[i]);
  });
});

describe.skipIf(pgStore.skip !== null)('two server nodes on one PostgreSQL', () => {
  const tmp = tempDir('pg-nodes');
  let a: RunningServer;
  let b: RunningServer;
  let over: Partial<ServerConfig>;
  beforeAll(async () => {
    over = { ...(await pgStore.config()), omitSingleObserverCombos: false };
    ({ server: a } = await startTestServer(join(tmp.dir, 'a'), over));
    // The operator shares the signing key and admin token with every node; nothing else.
    mkdirSync(join(tmp.dir, 'b'), { recursive: true, mode: 0o700 });
    for (const f of ['signing-key.pem', 'signing-key.pub', 'admin-token']) copyFileSync(join(tmp.dir, 'a', f), join(tmp.dir, 'b', f));
    ({ server: b } = await startTestServer(join(tmp.dir, 'b'), over));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    tmp.cleanup();
  });

  it("share a token's host cap: 16 enrolments at once through both admit exactly 5", async () => {
    const store = await pgStore.open(join(tmp.dir, 'a'), over);
    const token = (await store.createEnrolToken('capped', 5, Date.now())).token;
    await store.close();
    const answers = await Promise.all(
      Array.from({ length: 16 }, (_, i) => http(`${(i % 2 === 0 ? a : b).url}/v1/enroll`, { body: { token, hostId: `c${i}` } })),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(5);
    expect(answers.filter((r) => r.status === 403 && r.json.error.code === 'token-full')).toHaveLength(11);
  });

  it('serve byte-identical signed buckets, delta and snapshot after a build on one of them', async () => {
    const store = await pgStore.open(join(tmp.dir, 'a'), over);
    const token = (await store.createEnrolToken('web', 100, Date.now())).token;
    await store.close();
    const creds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await http(`${(i % 2 === 0 ? a : b).url}/v1/enroll`, { body: { token, hostId: `w${i}` } });
      creds.push(r.json.credential as string);
    }
    const combos = [{ sha256: SHAS[0] as string, rootDomain: 'popular.com', port: 443 }];
    for (let i = 0; i < 6; i++) {
      const r = await http(`${(i % 2 === 0 ? b : a).url}/v1/sightings`, {
        token: creds[i] as string,
        body: { days: [{ day: isoDay(today - DAY), processes: [SHAS[0], SHAS[1]], combos }] },
      });
      expect(r.status).toBe(200);
    }
    const first = await http(`${b.url}/v1/admin/build`, { method: 'POST', token: b.adminToken });
    expect(first.status, first.body.toString()).toBe(200);
    const second = await http(`${b.url}/v1/admin/build`, { method: 'POST', token: b.adminToken });
    expect(second.status).toBe(200);
    const version = second.json.version as number;
    // Node a reads the version from the database (at most a second old).
    const deadline = Date.now() + 20_000;
    while ((await http(`${a.url}/v1/health`)).json.baselineVersion !== version) {
      if (Date.now() > deadline) throw new Error('node a never saw the new version');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const path of [
      `/v1/baseline/buckets/${(SHAS[0] as string).slice(0, 4)}`,
      `/v1/baseline/delta?from=${first.json.version}`,
      '/v1/baseline/snapshot',
    ]) {
      const [ra, rb] = await Promise.all([http(`${a.url}${path}`, { token: creds[0] }), http(`${b.url}${path}`, { token: creds[1] })]);
      expect(ra.status, path).toBe(rb.status === 304 ? 304 : 200);
      expect(ra.body.equals(rb.body), path).toBe(true);
    }
    const bucket = await http(`${a.url}/v1/baseline/buckets/${(SHAS[0] as string).slice(0, 4)}`, { token: creds[0] });
    const v = verifySigned(bucket.body, publicKeyOf(a));
    if (!v.ok) throw new Error(v.error);
    expect(JSON.parse(v.content.toString()).combos).toContainEqual([SHAS[0], 'popular.com', 443, 6]);
  });

  it('uploads of the same new sha256s and root domains at once through both nodes: every one stored, each key once', async () => {
    const store = await pgStore.open(join(tmp.dir, 'a'), over);
    const token = (await store.createEnrolToken('race', 100, Date.now())).token;
    await store.close();
    const creds: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await http(`${(i % 2 === 0 ? a : b).url}/v1/enroll`, { body: { token, hostId: `r${i}` } });
      creds.push(r.json.credential as string);
    }
    // Keys no node has seen: each upload must intern them while the others do the same.
    const fresh = Array.from({ length: 50 }, (_, k) => sha(`race-bin-${k}`));
    const combos = fresh.map((s, k) => ({ sha256: s, rootDomain: `race${k % 20}.example`, port: 443 }));
    const answers = await Promise.all(
      creds.map((cred, i) =>
        http(`${(i % 2 === 0 ? b : a).url}/v1/sightings`, {
          token: cred,
          body: { days: [{ day: isoDay(today - DAY), processes: fresh.slice(0, 10 + i), combos }] },
        }),
      ),
    );
    for (const r of answers) expect(r.status, r.body.toString()).toBe(200);
    const c = new pg.Client({ connectionString: (over.postgres as { url: string }).url });
    await c.connect();
    try {
      const keys = await c.query<{ shas: number; roots: number }>(
        `SELECT (SELECT count(*)::int FROM sha WHERE sha = ANY($1::bytea[])) AS shas,
                (SELECT count(*)::int FROM root WHERE name LIKE 'race%.example') AS roots`,
        [fresh.map((s) => Buffer.from(s, 'hex'))],
      );
      expect(keys.rows[0]).toEqual({ shas: 50, roots: 20 });
      // Every host's sightings under those ids: 50 combos and its processes, each once.
      const stored = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM sighting s JOIN host h ON h.id = s.host, unnest(s.shas) x WHERE h.host_id LIKE 'r%'`,
      );
      expect(stored.rows[0]?.n).toBe(creds.reduce((n, _, i) => n + 50 + 10 + i, 0));
    } finally {
      await c.end();
    }
  });

  it('a scheduled run fired on both nodes builds once: the second finds the version published for it', async () => {
    const url = (over.postgres as { url: string }).url;
    // A run after the builds above: both start after its slot, the first to take the lock publishes for it.
    const slot = Date.now() + 5;
    const opts = (): PgAggregateOptions => ({
      postgres: { ...DEFAULT_SERVER.postgres, url },
      scratchDir: join(tmp.dir, 'scratch'),
      skipIfPublishedSinceMs: slot,
      onlyIfNone: false,
      unit: 'org',
      windowDays: 30,
      thresholds: DEFAULT_SERVER.thresholds,
      policy: DEFAULT_POLICY,
      omitSingleObserverCombos: false,
      bucketHexChars: 4,
      heavyProcessCombos: 1000,
      combosPerCell: 16,
      deltaHistoryVersions: 30,
      keepSnapshots: 3,
      hostMinUploadDays: 1,
      nextBuildByMs: null,
      nowMs: slot + 1_000,
      signingKeyPem: readFileSync(join(tmp.dir, 'a', 'signing-key.pem'), 'utf8'),
    });
    const runs = await Promise.all([aggregatePg(opts()), aggregatePg(opts())]);
    expect(runs.filter((r) => r.ok)).toHaveLength(1);
    expect(runs.filter((r) => !r.ok && r.skipped === true)).toHaveLength(1);
  });

  it('slides the window by dropping day partitions, not by deleting rows', async () => {
    const c = new pg.Client({ connectionString: (over.postgres as { url: string }).url });
    await c.connect();
    try {
      const parts = async (): Promise<number[]> =>
        (
          await c.query<{ n: string }>(
            "SELECT c.relname AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sighting'::regclass",
          )
        ).rows
          .map((r) => Number(r.n.replace('sighting_d', '')))
          .sort((x, y) => x - y);
      const before = await parts();
      const todayDay = today / DAY;
      expect(before).toContain(todayDay - 1);
      expect(before).toContain(todayDay + 2);
      const store = await pgStore.open(join(tmp.dir, 'a'), over);
      const pruned = await store.pruneBefore(todayDay);
      await store.close();
      expect(pruned).toBeGreaterThan(0);
      const after = await parts();
      expect(after[0]).toBe(todayDay);
      const rows = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM sighting WHERE day < $1', [todayDay]);
      expect(rows.rows[0]?.n).toBe(0);
    } finally {
      await c.end();
    }
  });
});
