// Issue 15, findings 3 and 4: a forged majority and host takeover, tried
// against a real `rarecon server` process and the real `rarecon sync` client.
//   - an enrolment token admits at most --max-hosts hosts, is listed with its
//     use and can be revoked;
//   - with observerUnit host, hosts count toward prevalence only from their
//     third day of uploads, which the signed baseline states: twelve fresh
//     hosts cannot make a C2 combo common;
//   - enrolling an enrolled host id again with the org token alone is refused;
//     the real host keeps working; an operator can allow a re-enrolment.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rarecon } from '../support/cli.js';
import {
  DAY,
  DIST_SERVER_CLI,
  POPULAR,
  enrolToken,
  http,
  isoDay,
  startServerCli,
  startTestServer,
  tempDir,
  type ServerCli,
} from '../support/server.js';
import { STORES, storeUnderTest } from '../support/postgres-stores.js';

const C2 = { sha256: POPULAR, rootDomain: 'forged-c2.net', port: 8443 };
const today = Math.floor(Date.now() / DAY) * DAY;

async function enrol(
  url: string,
  token: string,
  hostId: string,
  credential?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await http(`${url}/v1/enroll`, {
    body: { token, hostId, hostName: hostId, ...(credential === undefined ? {} : { credential }) },
  });
  return { status: r.status, json: r.json as Record<string, unknown> };
}

describe.skipIf(!existsSync(DIST_SERVER_CLI)).each(STORES)('enrolment under attack (a real rarecon server, %s store)', (storeName) => {
  const st = storeUnderTest(storeName);
  if (st.skip !== null) return void it.skip(st.skip, () => {});
  const tmp = tempDir('enrol');
  let server: ServerCli;

  beforeAll(async () => {
    // hostMinUploadDays stays at its default (3).
    server = await startServerCli(tmp.dir, '  observerUnit: host\n  omitSingleObserverCombos: false\n' + st.yaml(await st.config()));
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('admits at most --max-hosts hosts per token, lists the token with its use, and refuses it once revoked', async () => {
    const printed = await rarecon(['server', 'enroll', '--org', 'capped', '--max-hosts', '5', '--config', server.configPath]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/admits at most 5 hosts; id [0-9a-f]{12}/);
    const token = /enrolment token: (\S+)/.exec(printed.stdout)?.[1] as string;
    const id = /id ([0-9a-f]{12})/.exec(printed.stdout)?.[1] as string;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await enrol(server.url, token, `cap-${i}`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 403, 403, 403]);
    const full = await enrol(server.url, token, 'cap-extra');
    expect(full.json).toMatchObject({ error: { code: 'token-full' } });
    expect(JSON.stringify(full.json)).toContain('--max-hosts');

    const listed = await rarecon(['server', 'tokens', '--org', 'capped', '--config', server.configPath]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`${id}  org capped  5/5 hosts`);
    expect(listed.stdout).toContain('active');

    const second = await enrolToken(server, 'capped', 2);
    expect((await enrol(server.url, second.token, 'cap-more')).status).toBe(200);
    const revoked = await rarecon(['server', 'revoke-token', second.tokenId, '--config', server.configPath]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/revoked: .* 1\/2 hosts .* revoked/);
    expect((await enrol(server.url, second.token, 'cap-after')).json).toMatchObject({ error: { code: 'revoked' } });
  });

  it('prints a small default cap with every token', async () => {
    const e = await rarecon(['server', 'enroll', '--org', 'default-cap', '--json', '--config', server.configPath]);
    expect(JSON.parse(e.stdout)).toMatchObject({ maxHosts: 1000 });
  });

  it('twelve fresh hosts uploading a C2 combo on their first day do not make it common; the baseline states the rule', async () => {
    const { token } = await enrolToken(server, 'forgers', 20);
    for (let i = 0; i < 12; i++) {
      const e = await enrol(server.url, token, `fake-${i}`);
      expect(e.status).toBe(200);
      const days = [1, 2, 3].map((d) => ({ day: isoDay(today - d * DAY), processes: [POPULAR], combos: [C2] }));
      const up = await http(`${server.url}/v1/sightings`, { token: e.json.credential as string, body: { days } });
      expect(up.status, up.body.toString()).toBe(200);
    }
    const b = await http(`${server.url}/v1/admin/build`, { method: 'POST', token: server.adminToken });
    expect(b.status, b.body.toString()).toBe(200);
    expect(b.json.meta).toMatchObject({ observerUnit: 'host', observerMinUploadDays: 3, populationSize: 0, comboCount: 0 });
    // What an endpoint downloads says the same, under the server's signature.
    const probe = await enrol(server.url, token, 'probe');
    const info = await http(`${server.url}/v1/baseline`, { token: probe.json.credential as string });
    expect(info.json.meta).toMatchObject({ observerMinUploadDays: 3 });
    const hosts = await http(`${server.url}/v1/admin/hosts`, { token: server.adminToken });
    const fake = (hosts.json.hosts as Array<{ hostId: string; uploadDays: number }>).find((h) => h.hostId === 'fake-0');
    expect(fake?.uploadDays).toBe(1);
  });

  it('refuses to enrol an enrolled host id again with the org token alone; the real host keeps syncing', async () => {
    const { token } = await enrolToken(server, 'victims');
    const state = join(tmp.dir, 'victim');
    const tokenFile = join(tmp.dir, 'victim.token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const cfg = join(tmp.dir, 'victim.yaml');
    writeFileSync(
      cfg,
      `stateDir: ${state}\nsync:\n  serverUrl: ${server.url}\n  serverPublicKey: "${server.publicKey}"\n  serverCertSha256: "${server.certSha256}"\n  enrolTokenFile: ${tokenFile}\n  mode: snapshot\n`,
    );
    await http(`${server.url}/v1/admin/build`, { method: 'POST', token: server.adminToken });
    const first = await rarecon(['sync', '--now', '--config', cfg, '--host-id', 'victim-1', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const credBefore = readFileSync(join(state, 'server-credential.json'), 'utf8');

    const takeover = await enrol(server.url, token, 'victim-1');
    expect(takeover.status).toBe(409);
    expect(takeover.json).toMatchObject({ error: { code: 'host-enrolled' } });
    expect(JSON.stringify(takeover.json)).toContain('allow-reenrol victim-1 --org victims');
    const wrongProof = await enrol(server.url, token, 'victim-1', 'rch_not-its-credential');
    expect(wrongProof.status).toBe(409);

    const again = await rarecon(['sync', '--now', '--config', cfg, '--host-id', 'victim-1', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).status.lastError).toBeNull();
    expect(readFileSync(join(state, 'server-credential.json'), 'utf8')).toBe(credBefore);

    // The host itself may enrol again, proving it with its credential.
    const own = JSON.parse(credBefore) as { credential: string };
    const proved = await enrol(server.url, token, 'victim-1', own.credential);
    expect(proved.status).toBe(200);
  });

  it('lets an operator allow one re-enrolment of a host that lost its credential', async () => {
    const { token } = await enrolToken(server, 'reinstalls');
    expect((await enrol(server.url, token, 'rebuilt')).status).toBe(200);
    expect((await enrol(server.url, token, 'rebuilt')).status).toBe(409);
    const allow = await rarecon(['server', 'allow-reenrol', 'rebuilt', '--org', 'reinstalls', '--config', server.configPath]);
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.stdout).toContain('may enrol again with the org token until');
    expect((await enrol(server.url, token, 'rebuilt')).status).toBe(200);
    // Once: the grant is used up.
    expect((await enrol(server.url, token, 'rebuilt')).status).toBe(409);
  });
});

describe.each(STORES)('a host counts toward prevalence from its third upload day (%s store)', (storeName) => {
  const st = storeUnderTest(storeName);
  if (st.skip !== null) return void it.skip(st.skip, () => {});
  it('twelve hosts count once each has uploaded on three days', async () => {
    const tmp = tempDir('third-day');
    let nowMs = today + 12 * 3_600_000;
    const over = { ...(await st.config()), hostMinUploadDays: 3, omitSingleObserverCombos: false };
    const { server } = await startTestServer(tmp.dir, over, { now: () => nowMs });
    try {
      const store = await st.open(tmp.dir, over);
      const token = (await store.createEnrolToken('fleet', 100, nowMs)).token;
      await store.close();
      const creds: string[] = [];
      for (let i = 0; i < 12; i++) creds.push((await enrol(server.url, token, `h-${i}`)).json.credential as string);
      const counts: number[] = [];
      for (let day = 0; day < 3; day++) {
        for (const cred of creds) {
          const up = await http(`${server.url}/v1/sightings`, {
            token: cred,
            body: { days: [{ day: isoDay(nowMs - DAY), processes: [POPULAR], combos: [C2] }] },
          });
          expect(up.status, up.body.toString()).toBe(200);
        }
        const b = await server.buildNow();
        if (!b.ok) throw new Error(b.error);
        counts.push(b.meta.populationSize);
        nowMs += DAY;
      }
      expect(counts).toEqual([0, 0, 12]);
    } finally {
      await server.close();
      tmp.cleanup();
    }
  });
});
