// Issue 19: one new host id enrolled at the same moment through two tokens of
// its org. Each enrolment locks only its own token's row, so on PostgreSQL
// both could find no host and both insert: one answered HTTP 500 (a unique
// violation). Either store must admit one and refuse the other as SQLite does
// (409 host-enrolled), and the token that lost keeps its place for another host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { ServerConfig } from '../../src/config/defaults.js';
import type { RunningServer } from '../../src/server/server.js';
import { http, startTestServer, tempDir } from '../support/server.js';
import { STORES, storeUnderTest } from '../support/postgres-stores.js';

describe.each(STORES)('one new host id enrolled at once through two tokens of its org (%s store)', (storeName) => {
  const st = storeUnderTest(storeName);
  if (st.skip !== null) return void it.skip(st.skip, () => {});
  const tmp = tempDir('enrol-race');
  let server: RunningServer;
  let over: Partial<ServerConfig>;
  beforeAll(async () => {
    over = await st.config();
    ({ server } = await startTestServer(join(tmp.dir, 's'), over));
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('admits it once and answers the other 409 host-enrolled, never 500', async () => {
    const store = await st.open(join(tmp.dir, 's'), over);
    const one = (await store.createEnrolToken('race', 20, Date.now())).token;
    const two = (await store.createEnrolToken('race', 20, Date.now())).token;
    // Many ids at once, each through both tokens: the race needs both transactions between their read and insert.
    const ids = Array.from({ length: 12 }, (_, i) => `race-${i}`);
    const answers = await Promise.all(
      ids.flatMap((hostId) => [one, two].map((token) => http(`${server.url}/v1/enroll`, { body: { token, hostId, hostName: hostId } }))),
    );
    const seen = answers.map((r) => (r.status === 200 ? 200 : `${r.status} ${String(r.json?.error?.code)}`));
    for (let i = 0; i < ids.length; i++) expect([seen[2 * i], seen[2 * i + 1]].sort()).toEqual([200, '409 host-enrolled']);
    const hosts = (await store.hosts()).filter((h) => h.org === 'race');
    expect(hosts.map((h) => h.hostId).sort()).toEqual([...ids].sort());
    // Each token counts only the hosts it admitted: 12 between them.
    const tokens = (await store.tokens('race')).map((t) => t.hostsAdmitted);
    expect(tokens.reduce((a, b) => a + b, 0)).toBe(12);
    await store.close();
  });
});
