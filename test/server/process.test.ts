// The compiled `rarecon server`, `rarecon sync` and `rarecon score` as separate processes: the
// server aggregates in its worker thread, the endpoint syncs from the command
// line, and a sync killed at any moment leaves a usable baseline behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openBaseline } from '../../src/baseline/store.js';
import { BucketCache } from '../../src/sync/bucket-cache.js';
import { SightingsStore } from '../../src/sync/sightings-store.js';
import {
  DAY,
  DIST_SERVER_CLI,
  POPULAR,
  enrolHosts,
  startServerProcess,
  http,
  isoDay,
  sha,
  startProxy,
  tempDir,
  uploadFleetDay,
} from '../support/server.js';
import { CLI, REPO } from '../support/cli.js';

function run(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

function killAfter(args: string[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: 'ignore' });
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe.skipIf(!existsSync(DIST_SERVER_CLI))('server and sync as processes', () => {
  const tmp = tempDir('proc');
  const serverDir = join(tmp.dir, 'server');
  const serverCfg = join(tmp.dir, 'server.yaml');
  let serverProc: ChildProcess;
  let url = '';
  let adminToken = '';
  let pubkey = '';
  let pin = '';
  let token = '';
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  const today = Math.floor(Date.now() / DAY) * DAY;

  beforeAll(async () => {
    writeFileSync(
      serverCfg,
      `server:\n  stateDir: ${serverDir}\n  listenHost: 127.0.0.1\n  port: 0\n  observerUnit: host\n  hostMinUploadDays: 1\n  limits:\n    maxBodyBytes: 65536\n    maxCombosPerDay: 500\n`,
    );
    const e = await run(['server', 'enroll', '--org', 'acme', '--json', '--config', serverCfg]);
    expect(e.code).toBe(0);
    const enrolled = JSON.parse(e.stdout) as { token: string; publicKey: string; certSha256: string };
    token = enrolled.token;
    pubkey = enrolled.publicKey;
    pin = enrolled.certSha256;
    expect(statSync(join(serverDir, 'signing-key.pem')).mode & 0o777).toBe(0o600);

    ({ child: serverProc, url } = await startServerProcess(serverCfg));
    adminToken = readFileSync(join(serverDir, 'admin-token'), 'utf8').trim();
    proxy = await startProxy(url);
  });

  afterAll(async () => {
    await proxy?.close();
    serverProc?.kill('SIGTERM');
    await new Promise((r) => serverProc?.once('close', r));
    tmp.cleanup();
  });

  async function build(): Promise<number> {
    const b = await http(`${url}/v1/admin/build`, { method: 'POST', token: adminToken });
    expect(b.status, b.body.toString()).toBe(200);
    return b.json.version as number;
  }

  function endpointCfg(name: string, mode: 'snapshot' | 'buckets', via: string): { cfgFile: string; state: string } {
    const state = join(tmp.dir, name);
    mkdirSync(state, { recursive: true });
    const tokenFile = join(tmp.dir, `${name}.token`);
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const cfgFile = join(tmp.dir, `${name}.yaml`);
    writeFileSync(
      cfgFile,
      `stateDir: ${state}\nsync:\n  serverUrl: ${via}\n  serverPublicKey: "${pubkey}"\n${via.startsWith('https:') ? `  serverCertSha256: "${pin}"\n` : ''}  enrolTokenFile: ${tokenFile}\n  mode: ${mode}\n  requestTimeoutMs: 15000\n`,
    );
    return { cfgFile, state };
  }

  it('aggregates uploads in its worker and serves a baseline the endpoint CLI syncs and scores with', async () => {
    const creds = await enrolHosts(url, token, 12);
    for (let d = 1; d <= 2; d++) await uploadFleetDay(url, creds, today - d * DAY);
    const version = await build();
    const { cfgFile, state } = endpointCfg('cli-snap', 'snapshot', url);
    // This endpoint saw the rare combo too: its sightings go up with the sync.
    const own = new SightingsStore(join(state, 'sightings.db'));
    own.add([{ observer: '', dayMs: today - DAY, sha256: POPULAR, rootDomain: 'rare-c2.net', port: 8443 }]);
    own.close();
    const r = await run(['sync', '--now', '--config', cfgFile, '--host-id', 'cli-snap', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { status: { version: number; org: string; uploadedDaysTotal: number } };
    expect(out.status).toMatchObject({ version, org: 'acme', uploadedDaysTotal: 1 });
    const o = openBaseline(join(state, 'baseline.db'));
    if (!o.ok) throw new Error(o.error);
    expect(o.baseline.process(POPULAR)).toBe(12);
    expect(o.baseline.combo(POPULAR, 'popular.com', 443)).toBe(12);
    expect(o.baseline.combo(POPULAR, 'rare-c2.net', 8443)).toBe(2);
    o.baseline.close();
    // Next version: the endpoint's own upload counts (13 hosts, 3 with the rare combo).
    const v2 = await build();
    const r2 = await run(['sync', '--now', '--config', cfgFile, '--host-id', 'cli-snap']);
    expect(r2.code, r2.stderr).toBe(0);
    const o2 = openBaseline(join(state, 'baseline.db'));
    if (!o2.ok) throw new Error(o2.error);
    expect(o2.baseline.meta().version).toBe(v2);
    expect(o2.baseline.process(POPULAR)).toBe(13);
    expect(o2.baseline.combo(POPULAR, 'rare-c2.net', 8443)).toBe(3);
    o2.baseline.close();
    const status = await run(['sync', '--config', cfgFile]);
    expect(status.stdout).toContain(`version ${v2}`);
  });

  it('refuses malformed and oversized uploads with a 4xx that says why', async () => {
    const [cred] = await enrolHosts(url, token, 1, 'limits');
    const big = await http(`${url}/v1/sightings`, {
      token: cred as string,
      body: {
        days: [
          {
            day: isoDay(today - DAY),
            combos: Array.from({ length: 2000 }, (_, i) => ({ sha256: sha(`x${i}`), rootDomain: 'example.com', port: 443 })),
          },
        ],
      },
    });
    expect(big.status).toBe(413);
    expect(big.json.error.message).toMatch(/limit/);
    const many = await http(`${url}/v1/sightings`, {
      token: cred as string,
      body: {
        days: [
          {
            day: isoDay(today - DAY),
            combos: Array.from({ length: 501 }, (_, i) => ({ sha256: sha(`y${i}`), rootDomain: 'ex.com', port: i })),
          },
        ],
      },
    });
    expect(many.status).toBe(413);
    expect(many.json.error.message).toContain('days[0].combos');
    const notJson = await http(`${url}/v1/sightings`, { token: cred as string, rawBody: Buffer.from('{"days": [') });
    expect(notJson.status).toBe(400);
    const badSha = await http(`${url}/v1/sightings`, {
      token: cred as string,
      body: { days: [{ day: isoDay(today), processes: ['abc'] }] },
    });
    expect(badSha.status).toBe(400);
    expect(badSha.json.error.message).toContain('days[0].processes[0]');
    const unknown = await http(`${url}/v1/sightings`, { token: 'rch_nobody', body: { days: [] } });
    expect(unknown.status).toBe(401);
  });

  it('leaves a usable snapshot when the sync process is killed at any point', async () => {
    const { cfgFile, state } = endpointCfg('kill-snap', 'snapshot', proxy.url);
    proxy.mode = { kind: 'pass' };
    expect((await run(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-snap'])).code).toBe(0);
    const before = openBaseline(join(state, 'baseline.db'));
    if (!before.ok) throw new Error(before.error);
    const oldVersion = before.baseline.meta().version;
    before.baseline.close();
    const newVersion = await build();
    const size = (proxy.last as Buffer).length;
    const tickMs = 10;
    const bytesPerTick = Math.ceil(size / 40);
    proxy.mode = { kind: 'trickle', bytesPerTick, tickMs };
    // Before the answer, mid-download, at its end, and just after (verify, rename).
    for (const ms of [150, 350, 500, 650, 700, 750, 800, 900]) {
      await killAfter(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-snap'], ms);
      const o = openBaseline(join(state, 'baseline.db'));
      expect(o.ok, `killed after ${ms} ms`).toBe(true);
      if (!o.ok) continue;
      expect([oldVersion, newVersion]).toContain(o.baseline.meta().version);
      expect(o.baseline.combo(POPULAR, 'popular.com', 443)).toBe(12);
      o.baseline.close();
    }
    proxy.mode = { kind: 'pass' };
    const done = await run(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-snap', '--json']);
    expect(done.code, done.stderr).toBe(0);
    expect((JSON.parse(done.stdout) as { status: { version: number } }).status.version).toBe(newVersion);
    expect(readdirSync(state).filter((f) => f.startsWith('sync-download-'))).toEqual([]);
  });

  it('leaves a usable bucket cache when the sync process is killed mid-refresh', async () => {
    const { cfgFile, state } = endpointCfg('kill-buckets', 'buckets', proxy.url);
    proxy.mode = { kind: 'pass' };
    // An event held for POPULAR's bucket makes the sync fetch that bucket.
    const seed = new BucketCache(join(state, 'bucket-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 60_000 });
    seed.close();
    expect((await run(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-buckets'])).code).toBe(0);
    const c1 = new BucketCache(join(state, 'bucket-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 60_000 });
    expect(c1.hold(POPULAR, null, { e: 1 })).toBe(true);
    c1.close();
    expect((await run(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-buckets'])).code).toBe(0);
    const c2 = new BucketCache(join(state, 'bucket-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 60_000 });
    expect(c2.reader()?.process(POPULAR)).toBe(13);
    const held = c2.version();
    c2.close();
    const newer = await build();
    proxy.mode = { kind: 'trickle', bytesPerTick: 64, tickMs: 10 };
    for (const ms of [100, 250, 400, 600]) {
      await killAfter(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-buckets'], ms);
      const c = new BucketCache(join(state, 'bucket-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 60_000 });
      expect([held, newer]).toContain(c.version());
      expect(c.reader()?.combo(POPULAR, 'rare-c2.net', 8443)).toBe(3);
      c.close();
    }
    proxy.mode = { kind: 'pass' };
    expect((await run(['sync', '--now', '--config', cfgFile, '--host-id', 'kill-buckets'])).code).toBe(0);
    const c3 = new BucketCache(join(state, 'bucket-cache.db'), { pendingMaxEvents: 10, pendingTimeoutMs: 60_000 });
    expect(c3.version()).toBe(newer);
    c3.close();
  });
  it('scores with the synced baseline: a planted rare combo alerts, the popular one does not', async () => {
    // A fleet of its own (so the counts do not depend on the other tests): 12
    // hosts run BIN to popular.com:443, two of them to rare-c2.net:8443, one
    // to planted-c2.org:4444.
    const BIN = sha('scored-binary');
    const creds = await enrolHosts(url, token, 12, 'scored');
    for (let i = 0; i < creds.length; i++) {
      const combos = [{ sha256: BIN, rootDomain: 'popular.com', port: 443 }];
      if (i < 2) combos.push({ sha256: BIN, rootDomain: 'rare-c2.net', port: 8443 });
      if (i === 0) combos.push({ sha256: BIN, rootDomain: 'planted-c2.org', port: 4444 });
      // 14 days of history: the contract scores only on a baseline that covers the activation period.
      const days = Array.from({ length: 14 }, (_, d) => ({ day: isoDay(today - (d + 1) * DAY), processes: [BIN], combos }));
      const up = await http(`${url}/v1/sightings`, { token: creds[i] as string, body: { days } });
      expect(up.status, up.body.toString()).toBe(200);
    }
    await build();
    const { cfgFile, state } = endpointCfg('scorer', 'snapshot', url);
    const s = await run(['sync', '--now', '--config', cfgFile, '--host-id', 'scorer']);
    expect(s.code, s.stderr).toBe(0);

    const conn = (i: number, hostname: string, port: number): string =>
      JSON.stringify({
        type: 'connection',
        time: new Date(today + i * 1000).toISOString(),
        host: { id: 'scorer', org: 'acme' },
        process: { pid: 100 + i, path: '/usr/bin/scored', sha256: BIN },
        protocol: 'tcp',
        remote: { ip: `203.0.113.${10 + i}`, port, hostname: `api.${hostname}` },
      });
    const events = join(tmp.dir, 'scorer-today.jsonl');
    writeFileSync(events, [conn(1, 'popular.com', 443), conn(2, 'rare-c2.net', 8443), conn(3, 'planted-c2.org', 4444)].join('\n') + '\n');
    const r = await run(['score', '--baseline', join(state, 'baseline.db'), '--activation-days', '0', events]);
    expect(r.code, r.stderr).toBe(0);
    const alerts = r.stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            severity: string;
            metadata: { labels: string[] };
            evidences: Array<{ dst_endpoint: { domain: string; port: number } }>;
          },
      );
    const seen = alerts.map((a) => [
      a.evidences[0]?.dst_endpoint.domain,
      a.evidences[0]?.dst_endpoint.port,
      a.severity,
      a.metadata.labels[0],
    ]);
    // The popular combo is common: no alert. rare-c2.net has 2 host observers
    // (rare, Low); planted-c2.org one (very rare, Medium).
    expect(seen).toEqual([
      ['rare-c2.net', 8443, 'Low', 'rare'],
      ['planted-c2.org', 4444, 'Medium', 'very-rare'],
    ]);
  });
});
