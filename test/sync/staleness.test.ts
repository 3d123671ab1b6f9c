// Issue 15, finding 8: a network that answers "not modified" forever must not
// freeze an endpoint in silence, and a freshly enrolled endpoint must not take
// a replayed older snapshot. A real `rarecon server` process building every
// two seconds, a middle-man on loopback in front of it, the real `rarecon sync`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rarecon } from '../support/cli.js';
import { until } from '../support/env.js';
import { DIST_SERVER_CLI, enrolToken, http, startProxy, startServerCli, tempDir, type ServerCli } from '../support/server.js';

describe.skipIf(!existsSync(DIST_SERVER_CLI))('baseline staleness and the enrolment version floor', () => {
  const tmp = tempDir('stale');
  let server: ServerCli;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let token = '';

  beforeAll(async () => {
    // A build every 2 s, each promising the next one 2 s later (no grace).
    server = await startServerCli(tmp.dir, '  buildCron: "*/2 * * * * *"\n  buildGraceMs: 0\n');
    token = (await enrolToken(server, 'stale')).token;
    proxy = await startProxy(server.url);
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
    tmp.cleanup();
  });

  function endpoint(name: string): { cfg: string; state: string } {
    const state = join(tmp.dir, name);
    const tokenFile = join(tmp.dir, `${name}.token`);
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const cfg = join(tmp.dir, `${name}.yaml`);
    writeFileSync(
      cfg,
      `stateDir: ${state}\nsync:\n  serverUrl: ${proxy.url}\n  serverPublicKey: "${server.publicKey}"\n  enrolTokenFile: ${tokenFile}\n  mode: snapshot\n  staleGraceMs: 0\n`,
    );
    return { cfg, state };
  }

  const serverVersion = async (): Promise<number | null> => (await http(`${server.url}/v1/health`)).json.baselineVersion as number | null;

  it('says so in status, its exit and a warning when the network answers 304 while the server moves on', async () => {
    await until('a first baseline', 30_000, async () => (await serverVersion()) ?? undefined, 100);
    const ep = endpoint('frozen');
    proxy.mode = { kind: 'pass' };
    const first = await rarecon(['sync', '--now', '--config', ep.cfg, '--host-id', 'frozen', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const held = JSON.parse(first.stdout).status;
    expect(held.version).toBeGreaterThan(0);

    proxy.mode = { kind: 'status', status: 304 };
    const last = await until(
      'the endpoint to call its baseline stale',
      30_000,
      async () => {
        const r = await rarecon(['sync', '--now', '--config', ep.cfg, '--host-id', 'frozen', '--json']);
        const st = JSON.parse(r.stdout).status;
        return st.stale === true ? { r, st } : undefined;
      },
      200,
    );
    expect(last.st.version).toBe(held.version);
    expect(last.st.lastError).toBeNull();
    expect(last.st.baselineDueMs).toBeGreaterThan(held.builtAtMs);
    expect(last.r.stderr).toContain('No newer baseline has arrived although the server promised one');
    // Meanwhile the server is ahead: the 304s were not the truth.
    await until('the server to be ahead', 30_000, async () => ((await serverVersion())! > held.version ? true : undefined), 100);
    const text = await rarecon(['sync', '--status', '--config', ep.cfg]);
    expect(text.stdout).toMatch(/STALE: a newer one was due .* and has not arrived/);

    // Once the network lets a newer baseline through, the alarm is measured from that one's promise.
    proxy.mode = { kind: 'pass' };
    const after = await rarecon(['sync', '--now', '--config', ep.cfg, '--host-id', 'frozen', '--json']);
    const st = JSON.parse(after.stdout).status;
    expect(st.version).toBeGreaterThan(held.version);
    expect(st.baselineDueMs).toBeGreaterThan(last.st.baselineDueMs);
  });

  it('a freshly enrolled endpoint refuses a replayed snapshot older than the version named at enrolment', async () => {
    // An old signed snapshot, recorded on the way to another endpoint.
    proxy.mode = { kind: 'pass' };
    const donor = endpoint('donor');
    expect((await rarecon(['sync', '--now', '--config', donor.cfg, '--host-id', 'donor'])).code).toBe(0);
    const old = proxy.last as Buffer;
    const oldVersion = JSON.parse(Buffer.from(JSON.parse(old.subarray(0, old.indexOf(0x0a)).toString()).header, 'base64url').toString())
      .meta.version as number;
    await until(
      'the server to publish a newer version',
      30_000,
      async () => ((await serverVersion())! > oldVersion ? true : undefined),
      100,
    );

    proxy.mode = { kind: 'replay', body: old };
    const fresh = endpoint('fresh');
    const r = await rarecon(['sync', '--now', '--config', fresh.cfg, '--host-id', 'fresh', '--json']);
    expect(r.code).toBe(1);
    const st = JSON.parse(r.stdout).status;
    expect(st).toMatchObject({ org: 'stale', version: null, lastErrorCode: 'older', refusedTotal: 1 });
    expect(st.lastError).toContain(`version ${oldVersion} is older than version`);
    expect(existsSync(join(fresh.state, 'baseline.db'))).toBe(false);
  });
});
