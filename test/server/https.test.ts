// Issue 15, finding 6 (clear text; credentials that never expire), against a
// real `rarecon server` process and the real `rarecon sync` client:
//   - HTTPS by default with the server's own certificate; `server enroll`
//     prints its pin beside the signing key; start-up says where it listens;
//   - the endpoint talks only to the pinned certificate, and refuses plain
//     http:// off this host unless told to (then warns at every start);
//   - credentials expire and the endpoint rotates its own on the server's schedule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:tls';
import { request as plainRequest } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rarecon } from '../support/cli.js';
import { until } from '../support/env.js';
import { DEFAULT_SYNC } from '../../src/config/defaults.js';
import { SyncClient } from '../../src/sync/sync-client.js';
import {
  DIST_SERVER_CLI,
  enrolToken,
  http,
  memoryLog,
  startServerCli,
  startServerProcess,
  tempDir,
  type ServerCli,
} from '../support/server.js';

function servedPin(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      const cert = s.getPeerX509Certificate();
      s.destroy();
      if (cert === undefined) reject(new Error('no certificate'));
      else resolve(`sha256:${createHash('sha256').update(cert.raw).digest('hex')}`);
    });
    s.on('error', reject);
  });
}

function endpoint(dir: string, name: string, server: ServerCli, token: string, extra = ''): { cfg: string; state: string } {
  const state = join(dir, name);
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(
    cfg,
    `stateDir: ${state}\nsync:\n  serverUrl: ${server.url}\n  serverPublicKey: "${server.publicKey}"\n  enrolTokenFile: ${tokenFile}\n  mode: snapshot\n${extra}`,
  );
  return { cfg, state };
}

describe.skipIf(!existsSync(DIST_SERVER_CLI))('HTTPS by default and the pinned certificate', () => {
  const tmp = tempDir('https');
  let server: ServerCli;
  let token = '';

  beforeAll(async () => {
    server = await startServerCli(tmp.dir, '');
    token = (await enrolToken(server, 'tls')).token;
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('listens over HTTPS with its own certificate, says so at start, and enroll prints the pin it serves', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const port = new URL(server.url).port;
    expect(server.log()).toContain(`listens on https://127.0.0.1:${port} over HTTPS with its own certificate`);
    expect(server.certSha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await servedPin(server.url)).toBe(server.certSha256);
    const printed = await rarecon(['server', 'enroll', '--org', 'tls', '--config', server.configPath]);
    expect(printed.stdout).toContain(`server public key: ${server.publicKey}`);
    expect(printed.stdout).toContain(`server certificate: ${server.certSha256}`);
    expect(printed.stdout).toContain('sync.serverCertSha256');
    // Nothing is answered in clear text.
    const clear = await new Promise<string>((resolve) => {
      const req = plainRequest({ host: '127.0.0.1', port, path: '/v1/health', agent: false }, (res) => resolve(`HTTP ${res.statusCode}`));
      req.on('error', (e) => resolve(`refused: ${e.message}`));
      req.end();
    });
    expect(clear).toMatch(/^refused|HTTP 400/);
  });

  it('an endpoint with the pin enrols and syncs; with another pin it sends nothing and says why', async () => {
    await http(`${server.url}/v1/admin/build`, { method: 'POST', token: server.adminToken });
    const good = endpoint(tmp.dir, 'pinned', server, token, `  serverCertSha256: "${server.certSha256}"\n`);
    const r = await rarecon(['sync', '--now', '--config', good.cfg, '--host-id', 'pinned', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toMatchObject({ org: 'tls', lastError: null });

    const wrongPin = `sha256:${'ab'.repeat(32)}`;
    const bad = endpoint(tmp.dir, 'wrong-pin', server, token, `  serverCertSha256: "${wrongPin}"\n`);
    const w = await rarecon(['sync', '--now', '--config', bad.cfg, '--host-id', 'wrong-pin', '--json']);
    expect(w.code).toBe(1);
    const st = JSON.parse(w.stdout).status;
    expect(st.lastErrorCode).toBe('tls-pin');
    expect(st.lastError).toContain(`not the pinned ${wrongPin}`);
    const hosts = await http(`${server.url}/v1/admin/hosts`, { token: server.adminToken });
    expect((hosts.json.hosts as Array<{ hostId: string }>).map((h) => h.hostId)).not.toContain('wrong-pin');

    const none = endpoint(tmp.dir, 'no-pin', server, token);
    const n = await rarecon(['sync', '--now', '--config', none.cfg, '--host-id', 'no-pin', '--json']);
    expect(n.code).toBe(1);
    expect(JSON.parse(n.stdout).status.lastError).toContain('sync.serverCertSha256');
  });
});

describe('the endpoint refuses plain http:// off this host', () => {
  const tmp = tempDir('plain');
  afterAll(() => tmp.cleanup());

  it('refuses the config, names the setting, and warns at every start when allowed', async () => {
    const cfg = join(tmp.dir, 'remote.yaml');
    const key = 'ed25519:' + Buffer.alloc(32, 7).toString('base64url');
    writeFileSync(
      cfg,
      `stateDir: ${join(tmp.dir, 'st')}\nsync:\n  serverUrl: http://baseline.example.org:8787\n  serverPublicKey: "${key}"\n`,
    );
    const r = await rarecon(['sync', '--now', '--config', cfg]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('sync.serverUrl http://baseline.example.org:8787 is plain http:// to another host');
    expect(r.stderr).toContain('sync.allowInsecureHttp');

    const base = { ...DEFAULT_SYNC, serverUrl: 'http://baseline.example.org:8787', serverPublicKey: key };
    expect(() => new SyncClient({ cfg: base, stateDir: join(tmp.dir, 'a'), hostId: 'h', log: () => {} })).toThrow(/plain http:\/\//);
    for (let start = 0; start < 2; start++) {
      const { log, lines } = memoryLog();
      const c = new SyncClient({ cfg: { ...base, allowInsecureHttp: true }, stateDir: join(tmp.dir, 'b'), hostId: 'h', log });
      c.close();
      expect(lines.filter((l) => l.level === 'warn' && l.msg.includes('plain http:// to baseline.example.org'))).toHaveLength(1);
    }
    // Loopback needs no leave and gets no warning.
    const { log, lines } = memoryLog();
    new SyncClient({ cfg: { ...base, serverUrl: 'http://127.0.0.1:9' }, stateDir: join(tmp.dir, 'c'), hostId: 'h', log }).close();
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(0);
  });

  it('the server warns at every start when told to listen in clear text', async () => {
    const cfg = join(tmp.dir, 'plain-server.yaml');
    writeFileSync(cfg, `server:\n  stateDir: ${join(tmp.dir, 'srv')}\n  listenHost: 127.0.0.1\n  port: 0\n  plainHttp: true\n`);
    const p = await startServerProcess(cfg);
    try {
      expect(p.url).toMatch(/^http:\/\//);
      expect(p.log()).toMatch(/listens in clear text on http:\/\/127\.0\.0\.1:\d+ \(server\.plainHttp\)/);
    } finally {
      p.child.kill('SIGTERM');
    }
  });
});

describe.skipIf(!existsSync(DIST_SERVER_CLI))('credentials expire and rotate', () => {
  const tmp = tempDir('rotate');
  let server: ServerCli;
  let token = '';

  beforeAll(async () => {
    server = await startServerCli(tmp.dir, '  credentialLifetimeMs: 6000\n  credentialGraceMs: 1000\n');
    token = (await enrolToken(server, 'rot')).token;
    await http(`${server.url}/v1/admin/build`, { method: 'POST', token: server.adminToken });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  const credOf = (state: string): { credential: string; rotateAfterMs: number; expiresMs: number } =>
    JSON.parse(readFileSync(join(state, 'server-credential.json'), 'utf8'));
  const answers = async (cred: string): Promise<string> => {
    const r = await http(`${server.url}/v1/baseline`, { token: cred });
    return r.status === 200 ? 'ok' : `${r.status} ${r.json?.error?.code}`;
  };

  it('the endpoint rotates its credential once due; the old one is refused after the grace', async () => {
    const ep = endpoint(tmp.dir, 'rotating', server, token, `  serverCertSha256: "${server.certSha256}"\n`);
    const sync = (): Promise<{ code: number; stderr: string }> => rarecon(['sync', '--now', '--config', ep.cfg, '--host-id', 'rotating']);
    expect((await sync()).code).toBe(0);
    const first = credOf(ep.state);
    expect(first.expiresMs - first.rotateAfterMs).toBe(3000);
    await until(
      'the endpoint to rotate its credential',
      30_000,
      async () => {
        const r = await sync();
        expect(r.code, r.stderr).toBe(0);
        return credOf(ep.state).credential !== first.credential ? true : undefined;
      },
      200,
    );
    const second = credOf(ep.state);
    expect(await answers(second.credential)).toBe('ok');
    await until(
      'the old credential to be refused',
      30_000,
      async () => ((await answers(first.credential)) === '401 credential-expired' ? true : undefined),
      200,
    );
  });

  it('an expired credential is refused; the endpoint enrols again with it as proof and carries on', async () => {
    const ep = endpoint(tmp.dir, 'sleeper', server, token, `  serverCertSha256: "${server.certSha256}"\n`);
    const sync = (): Promise<{ code: number; stdout: string; stderr: string }> =>
      rarecon(['sync', '--now', '--config', ep.cfg, '--host-id', 'sleeper', '--json']);
    expect((await sync()).code).toBe(0);
    const old = credOf(ep.state);
    // The host sleeps past the expiry without syncing.
    await until(
      'the credential to expire',
      30_000,
      async () => ((await answers(old.credential)) === '401 credential-expired' ? true : undefined),
      200,
    );
    // The org token alone would not do (the host id is enrolled): the expired credential is the proof.
    const takeover = await http(`${server.url}/v1/enroll`, { body: { token, hostId: 'sleeper' } });
    expect(takeover.status).toBe(409);
    const back = await sync();
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout).status.lastError).toBeNull();
    const now = credOf(ep.state);
    expect(now.credential).not.toBe(old.credential);
    expect(await answers(now.credential)).toBe('ok');
  });
});
