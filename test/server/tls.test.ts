// HTTPS when the server is given a certificate and key; the endpoint trusts it through sync.caFile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { DEFAULT_SYNC } from '../../src/config/defaults.js';
import { SyncClient } from '../../src/sync/sync-client.js';
import { IntakeStore } from '../../src/server/intake-store.js';
import { serverPaths, type RunningServer } from '../../src/server/server.js';
import { memoryLog, startTestServer, tempDir } from '../support/server.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!haveOpenssl())('baseline server over TLS', () => {
  const tmp = tempDir('tls');
  let server: RunningServer;
  const cert = join(tmp.dir, 'cert.pem');
  const key = join(tmp.dir, 'key.pem');

  beforeAll(async () => {
    const conf = join(tmp.dir, 'openssl.cnf');
    writeFileSync(
      conf,
      '[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n[dn]\nCN=127.0.0.1\n[ext]\nsubjectAltName=IP:127.0.0.1\n',
    );
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-keyout',
        key,
        '-out',
        cert,
        '-config',
        conf,
      ],
      { stdio: 'ignore' },
    );
    ({ server } = await startTestServer(join(tmp.dir, 'server'), { tlsCertFile: cert, tlsKeyFile: key, plainHttp: false }));
    await server.buildNow();
  });
  afterAll(async () => {
    await server.close();
    tmp.cleanup();
  });

  it('serves HTTPS and a client pinning the CA enrols and syncs', async () => {
    expect(server.url.startsWith('https://')).toBe(true);
    const store = new IntakeStore(serverPaths(join(tmp.dir, 'server')).intake);
    const token = store.createEnrolToken('tls-org', 1_000, Date.now()).token;
    store.close();
    const { log } = memoryLog();
    const cfg = {
      ...DEFAULT_SYNC,
      serverUrl: server.url,
      serverPublicKey: server.publicKeyText,
      enrolTokenEnv: 'T',
      caFile: cert,
      mode: 'snapshot' as const,
    };
    const c = new SyncClient({ cfg, stateDir: join(tmp.dir, 'ep'), hostId: 'tls-host', log, env: { T: token } });
    const r = await c.syncNow();
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(c.status().org).toBe('tls-org');
    await c.stop();
    c.close();
    const untrusting = new SyncClient({
      cfg: { ...cfg, caFile: null },
      stateDir: join(tmp.dir, 'ep2'),
      hostId: 'tls-host-2',
      log,
      env: { T: token },
    });
    const bad = await untrusting.syncNow();
    expect(bad.ok).toBe(false);
    expect(untrusting.status().lastErrorCode).toBe('tls');
    await untrusting.stop();
    untrusting.close();
  });
});
