// Issue 15, finding 2: an alert is filed under the host and org that sent it.
// Two real orgs (two `rarecon server enroll` tokens) against a real
// `rarecon server` process: a uid that collides across orgs or hosts never
// touches the other's row, whichever arrives first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { DIST_SERVER_CLI, enrolHosts, enrolToken, http, startServerCli, tempDir, type ServerCli } from '../support/server.js';

interface Listed {
  uid: string;
  org: string;
  hostId: string;
  severityId: number;
  alert: { finding_info: { title: string }; severity_id: number };
}

function alert(uid: string, severityId: number, title: string): Record<string, unknown> {
  return { metadata: { uid }, time: Date.now(), severity_id: severityId, finding_info: { title } };
}

describe.skipIf(!existsSync(DIST_SERVER_CLI))('alerts are scoped to the host and org that sent them', () => {
  const tmp = tempDir('alert-scope');
  let server: ServerCli;
  let a1 = '';
  let a2 = '';
  let b1 = '';

  beforeAll(async () => {
    server = await startServerCli(tmp.dir, '');
    const orgA = await enrolToken(server, 'org-a');
    const orgB = await enrolToken(server, 'org-b');
    [a1, a2] = (await enrolHosts(server.url, orgA.token, 2, 'a')) as [string, string];
    [b1] = (await enrolHosts(server.url, orgB.token, 1, 'b')) as [string];
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  async function listed(uid: string): Promise<Listed[]> {
    const q = await http(`${server.url}/v1/alerts?limit=1000`, { token: server.adminToken });
    expect(q.status, q.body.toString()).toBe(200);
    return (q.json.alerts as Listed[]).filter((x) => x.uid === uid);
  }

  async function post(cred: string, body: unknown): Promise<Record<string, number>> {
    const r = await http(`${server.url}/v1/alerts`, { token: cred, body });
    expect(r.status, r.body.toString()).toBe(200);
    return r.json as Record<string, number>;
  }

  it("org B posting org A's uid leaves A's severity-4 alert as it was", async () => {
    await post(a1, [alert('collide-1', 4, 'injected C2 on a-0')]);
    expect(await post(b1, [alert('collide-1', 1, 'benign')])).toEqual({ stored: 1, updated: 0, duplicates: 0 });
    const rows = await listed('collide-1');
    expect(rows.map((r) => [r.org, r.hostId, r.severityId, r.alert.finding_info.title]).sort()).toEqual([
      ['org-a', 'a-0', 4, 'injected C2 on a-0'],
      ['org-b', 'b-0', 1, 'benign'],
    ]);
  });

  it("org B posting a uid first does not get org A's real alert filed under B", async () => {
    await post(b1, [alert('collide-2', 1, 'planted by b')]);
    expect(await post(a1, [alert('collide-2', 4, 'real alert of a-0')])).toEqual({ stored: 1, updated: 0, duplicates: 0 });
    const rows = await listed('collide-2');
    const ofA = rows.filter((r) => r.org === 'org-a');
    expect(ofA).toHaveLength(1);
    expect(ofA[0]).toMatchObject({ hostId: 'a-0', severityId: 4 });
    expect(rows.find((r) => r.org === 'org-b')).toMatchObject({ hostId: 'b-0', severityId: 1 });
    const byOrg = await http(`${server.url}/v1/alerts?org=org-a&limit=1000`, { token: server.adminToken });
    expect((byOrg.json.alerts as Listed[]).filter((x) => x.uid === 'collide-2').map((x) => x.alert.finding_info.title)).toEqual([
      'real alert of a-0',
    ]);
  });

  it('two hosts of one org with the same uid keep two alerts; a host re-sending its own uid updates only its row', async () => {
    await post(a1, [alert('collide-3', 3, 'a-0 first')]);
    await post(a2, [alert('collide-3', 2, 'a-1 own')]);
    expect(await post(a1, [alert('collide-3', 3, 'a-0 later count')])).toEqual({ stored: 0, updated: 1, duplicates: 0 });
    const rows = await listed('collide-3');
    expect(rows.map((r) => [r.hostId, r.alert.finding_info.title]).sort()).toEqual([
      ['a-0', 'a-0 later count'],
      ['a-1', 'a-1 own'],
    ]);
  });
});
