// End to end with a real baseline server: `rarecon server` (a process) learns a
// fleet's 14 days of sightings in which curl's sha256 is common and talks to
// common-srv.example; `rarecon run` (a process, eBPF, no baseline file) enrols
// with the org token, fetches the bucket of curl's sha256 when curl first
// connects, and raises the very rare variation for a combo the fleet never saw,
// and nothing for the fleet's common one. Needs root; skips with the reason otherwise.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarecon } from '../support/cli.js';
import { DAY, enrolHosts, http, isoDay, startServerProcess } from '../support/server.js';
import { DaemonRun, VERY_RARE, alertKey } from '../support/daemon.js';
import { buildNative, rootReason, sha256File, sleep, until } from '../support/env.js';
import { TestHost } from '../support/testhost.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`daemon-server.e2e: skipping: ${skipReason}`);

const CURL = '/usr/bin/curl';
const PORT = 8443;
// 198.51.100.176/28: this file's test host (see support/testhost.ts).
const IP = { dns: '198.51.100.178', rare: '198.51.100.179', common: '198.51.100.180' };
const NAME = { rare: 'beacon.rare-srv.example', common: 'www.common-srv.example' };

let dir = '';
let server: ChildProcess | null = null;
let host: TestHost | null = null;
let daemon: DaemonRun | null = null;
let curlSha = '';
let version = 0;
let serverUrl = '';
let adminToken = '';

const curlArgs = (url: string): string[] => [CURL, '-sS', '--noproxy', '*', '-m', '5', '-o', '/dev/null', url];

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-server-'));
  curlSha = sha256File(CURL);

  const serverCfg = join(dir, 'server.yaml');
  // The fleet uploads its 14 days at once: every host counts from its first upload day here (the 3-day rule has its own test).
  writeFileSync(
    serverCfg,
    `server:\n  stateDir: ${join(dir, 'server')}\n  listenHost: 127.0.0.1\n  port: 0\n  observerUnit: host\n  hostMinUploadDays: 1\n`,
  );
  const e = await rarecon(['server', 'enroll', '--org', 'acme', '--json', '--config', serverCfg]);
  expect(e.code, e.stderr).toBe(0);
  const { token, publicKey, certSha256 } = JSON.parse(e.stdout) as { token: string; publicKey: string; certSha256: string };
  const started = await startServerProcess(serverCfg);
  server = started.child;
  const url = started.url;
  serverUrl = url;

  // The fleet: 12 hosts, 14 days each, curl to common-srv.example:PORT every day.
  const today = Math.floor(Date.now() / DAY) * DAY;
  const creds = await enrolHosts(url, token, 12, 'fleet');
  for (const cred of creds) {
    const days = Array.from({ length: 14 }, (_, d) => ({
      day: isoDay(today - (d + 1) * DAY),
      processes: [curlSha],
      combos: [{ sha256: curlSha, rootDomain: 'common-srv.example', port: PORT }],
    }));
    const up = await http(`${url}/v1/sightings`, { token: cred, body: { days } });
    expect(up.status, up.body.toString()).toBe(200);
  }
  adminToken = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
  const b = await http(`${url}/v1/admin/build`, { method: 'POST', token: adminToken });
  expect(b.status, b.body.toString()).toBe(200);
  version = b.json.version as number;

  host = await TestHost.start({
    tag: 's',
    hostSide: '198.51.100.177/28',
    addresses: Object.values(IP),
    names: { [NAME.rare]: IP.rare, [NAME.common]: IP.common },
    ports: [PORT],
    dir,
  });
  const tokenFile = join(dir, 'org.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  daemon = await DaemonRun.start({
    dir,
    config: {
      sync: {
        serverUrl: url,
        serverPublicKey: publicKey,
        serverCertSha256: certSha256,
        enrolTokenFile: tokenFile,
        mode: 'buckets',
        jitterMs: 0,
      },
      // Alerts go to the file the helper reads, and to the server's alert intake with the host credential.
      report: {
        sinks: [
          { type: 'file', name: 'e2e', path: join(dir, 'sink.jsonl'), fsync: false },
          { type: 'server', name: 'baseline-server', lingerMs: 0 },
        ],
      },
    },
  });
}, 180_000);

afterAll(async () => {
  await daemon?.stop('SIGTERM');
  host?.stop();
  server?.kill('SIGTERM');
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
  else if (dir !== '') console.log(`daemon-server.e2e: kept ${dir}`);
});

describe.skipIf(skipReason !== null)('rarecon run with a baseline server', () => {
  it('enrols, syncs the signed baseline and shows its version in rarecon status', async () => {
    const d = daemon as DaemonRun;
    const s = await d.waitForStatus((st) => st.sync?.version === version, 15_000);
    expect(s.sync).toMatchObject({ mode: 'buckets', org: 'acme', lastError: null });
    const st = await d.status();
    expect(st.text).toContain(`version ${version}`);
  });

  it('fetches the bucket of curl on its first connection, raises very rare for a combo the fleet never saw and nothing for the fleet’s common one', async () => {
    const d = daemon as DaemonRun;
    await d.waitForStatus((st) => st.sync?.version === version, 15_000);
    const t0 = Date.now();
    const rare = await (host as TestHost).run(curlArgs(`http://${NAME.rare}:${PORT}/`));
    expect(rare.code, rare.stderr).toBe(0);
    const seen = await d.waitForAlert((a) => alertKey(a).hostname === NAME.rare, 10_000);
    console.log(`daemon-server.e2e: curl start -> alert ${seen.seenMs - t0} ms (bucket fetched on demand)`);
    expect(alertKey(seen.alert)).toEqual({ name: VERY_RARE, sha256: curlSha, domain: 'rare-srv.example', port: PORT, hostname: NAME.rare });
    const prevalence = (seen.alert.enrichments as Array<{ name: string; data: Record<string, unknown> }>).find(
      (x) => x.name === 'global_prevalence',
    );
    expect(prevalence?.data).toMatchObject({ process_observers: 12, combo_observers: 0, observer_unit: 'host' });

    const common = await (host as TestHost).run(curlArgs(`http://${NAME.common}:${PORT}/`));
    expect(common.code, common.stderr).toBe(0);
    const rec = await d.waitForRecord((r) => r.type === 'connection' && r.process?.pid === common.pid && r.remote?.port === PORT, 10_000);
    expect(rec.process.sha256).toBe(curlSha);
    const after = await d.waitForStatus(() => true, 3000, Date.now() + 300);
    await sleep(300);
    expect(d.alerts().some((x) => alertKey(x.alert).domain === 'common-srv.example')).toBe(false);
    expect(after.sync?.buckets?.cached).toBeGreaterThanOrEqual(1);

    // The server sink delivered the alert to the server's intake, under this host and org.
    const uid = seen.alert.metadata.uid as string;
    const stored = await until(
      'the alert at the server',
      10_000,
      async () => {
        const r = await http(`${serverUrl}/v1/alerts?org=acme`, { method: 'GET', token: adminToken });
        expect(r.status, r.body.toString()).toBe(200);
        return (r.json.alerts as Array<{ uid: string; org: string; severityId: number }>).find((a) => a.uid === uid);
      },
      200,
    );
    expect(stored).toMatchObject({ org: 'acme', severityId: 3 });
  });
});
