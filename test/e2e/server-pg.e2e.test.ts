// Issue 19, "Done when": two `rarecon server` processes on one PostgreSQL, a
// hot standby made with pg_basebackup serving the downloads.
//   - endpoints enrol through one node and upload through the other; the
//     schedule (every minute, on both nodes) builds once, not twice;
//     `rarecon sync` + `rarecon score` give the alerts the SQLite store gives
//     on the same sightings;
//   - a node killed during uploads loses no acknowledged sightings;
//   - the builder killed mid-build leaves the last version served, and the
//     next build completes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { DAY, DIST_SERVER_CLI, enrolHosts, http, isoDay, sha, startServerProcess, tempDir } from '../support/server.js';
import { rarecon, type CliResult } from '../support/cli.js';
import { freePort, pgMissingReason, startPgCluster, startStandby, waitForReplay, type PgCluster } from '../support/postgres.js';

const missing = pgMissingReason();
if (missing !== null) process.stdout.write(`skipping the PostgreSQL e2e test: ${missing}\n`);

/** The CLI, to its end (a minute at most). */
function run(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return rarecon(args, { timeoutMs });
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const BIN = sha('pg-e2e-binary');
const today = Math.floor(Date.now() / DAY) * DAY;

/** 12 hosts: BIN -> popular.com:443 on all, rare-c2.net:8443 on two, planted-c2.org:4444 on one; 14 days of history. */
async function uploadScoredFleet(url: string, creds: string[]): Promise<void> {
  for (let i = 0; i < creds.length; i++) {
    const combos = [{ sha256: BIN, rootDomain: 'popular.com', port: 443 }];
    if (i < 2) combos.push({ sha256: BIN, rootDomain: 'rare-c2.net', port: 8443 });
    if (i === 0) combos.push({ sha256: BIN, rootDomain: 'planted-c2.org', port: 4444 });
    const days = Array.from({ length: 14 }, (_, d) => ({ day: isoDay(today - (d + 1) * DAY), processes: [BIN], combos }));
    const up = await http(`${url}/v1/sightings`, { token: creds[i] as string, body: { days } });
    expect(up.status, up.body.toString()).toBe(200);
  }
}

interface Node {
  child: ChildProcess;
  url: string;
  log: () => string;
  configPath: string;
}

describe.skipIf(missing !== null || !existsSync(DIST_SERVER_CLI))('two server nodes on PostgreSQL with a standby', () => {
  const tmp = tempDir('pg-e2e');
  let primary: PgCluster;
  let standby: PgCluster;
  let dbUrl = '';
  let a: Node;
  let b: Node;
  let token = '';
  let pubkey = '';
  let adminToken = '';
  const children: ChildProcess[] = [];

  async function writeNodeConfig(name: string, cron: string): Promise<string> {
    const path = join(tmp.dir, `${name}.yaml`);
    writeFileSync(
      path,
      `server:\n  stateDir: ${join(tmp.dir, name)}\n  listenHost: 127.0.0.1\n  port: ${await freePort()}\n  plainHttp: true\n` +
        `  observerUnit: host\n  hostMinUploadDays: 1\n  buildCron: "${cron}"\n  store: postgresql\n` +
        // One loopback address for a whole fleet: no per-address limits (the brakes have their own tests).
        `  rateLimits:\n    enrolPerAddress: { perMinute: 0, burst: 1 }\n    uploadPerAddress: { perMinute: 0, burst: 1 }\n` +
        `  postgres:\n    url: ${dbUrl}\n    readUrl: ${standby.url('rarecon')}\n`,
    );
    return path;
  }

  async function startNode(configPath: string): Promise<Node> {
    const p = await startServerProcess(configPath);
    children.push(p.child);
    return { child: p.child, url: p.url, log: p.log, configPath };
  }

  async function kill(n: Node): Promise<void> {
    if (n.child.exitCode !== null || n.child.signalCode !== null) return;
    const closed = new Promise((r) => n.child.once('close', r));
    n.child.kill('SIGKILL');
    await closed;
  }

  async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = [], on: PgCluster | null = null): Promise<T[]> {
    const c = new pg.Client({ connectionString: on === null ? dbUrl : on.url('rarecon') });
    await c.connect();
    try {
      return (await c.query<T>(text, values)).rows;
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    primary = await startPgCluster();
    dbUrl = await primary.createDatabase('rarecon');
    standby = await startStandby(primary);
    // Node a: its state folder made by `rarecon server enroll`, which creates the schema and the first token.
    const aCfg = await writeNodeConfig('a', '* * * * *');
    const e = await run(['server', 'enroll', '--org', 'acme', '--json', '--config', aCfg]);
    expect(e.code, e.stderr).toBe(0);
    ({ token, publicKey: pubkey } = JSON.parse(e.stdout) as { token: string; publicKey: string });
    a = await startNode(aCfg);
    adminToken = readFileSync(join(tmp.dir, 'a', 'admin-token'), 'utf8').trim();
    // Node b holds what the operator shares: the signing key and the admin token, nothing else.
    mkdirSync(join(tmp.dir, 'b'), { recursive: true, mode: 0o700 });
    for (const f of ['signing-key.pem', 'signing-key.pub', 'admin-token']) copyFileSync(join(tmp.dir, 'a', f), join(tmp.dir, 'b', f));
    b = await startNode(await writeNodeConfig('b', '* * * * *'));
  }, 180_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await standby?.stop();
    await primary?.stop();
    tmp.cleanup();
  });

  function endpointCfg(name: string, url: string, tok: string, key: string): { cfgFile: string; state: string } {
    const state = join(tmp.dir, name);
    mkdirSync(state, { recursive: true });
    const tokenFile = join(tmp.dir, `${name}.token`);
    writeFileSync(tokenFile, tok, { mode: 0o600 });
    const cfgFile = join(tmp.dir, `${name}.yaml`);
    writeFileSync(
      cfgFile,
      `stateDir: ${state}\nsync:\n  serverUrl: ${url}\n  serverPublicKey: "${key}"\n  enrolTokenFile: ${tokenFile}\n  mode: snapshot\n  requestTimeoutMs: 15000\n`,
    );
    return { cfgFile, state };
  }

  async function scoreWith(name: string, url: string, tok: string, key: string): Promise<string[][]> {
    const { cfgFile, state } = endpointCfg(name, url, tok, key);
    const s = await run(['sync', '--now', '--config', cfgFile, '--host-id', name]);
    expect(s.code, s.stderr).toBe(0);
    const conn = (i: number, hostname: string, port: number): string =>
      JSON.stringify({
        type: 'connection',
        time: new Date(today + i * 1000).toISOString(),
        host: { id: name, org: 'acme' },
        process: { pid: 100 + i, path: '/usr/bin/scored', sha256: BIN },
        protocol: 'tcp',
        remote: { ip: `203.0.113.${10 + i}`, port, hostname: `api.${hostname}` },
      });
    const events = join(tmp.dir, `${name}-today.jsonl`);
    writeFileSync(events, [conn(1, 'popular.com', 443), conn(2, 'rare-c2.net', 8443), conn(3, 'planted-c2.org', 4444)].join('\n') + '\n');
    const r = await run(['score', '--baseline', join(state, 'baseline.db'), '--activation-days', '0', events]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const x = JSON.parse(l) as {
          severity: string;
          metadata: { labels: string[] };
          evidences: Array<{ dst_endpoint: { domain: string; port: number } }>;
        };
        return [
          String(x.evidences[0]?.dst_endpoint.domain),
          String(x.evidences[0]?.dst_endpoint.port),
          x.severity,
          String(x.metadata.labels[0]),
        ];
      });
  }

  it('enrols through one node, uploads through the other, builds once on the schedule, and scores as the SQLite store does', async () => {
    const creds = await enrolHosts(a.url, token, 12, 'scored');
    await uploadScoredFleet(b.url, creds);
    // The first scheduled run after the uploads: both nodes fire it, one builds.
    const slot = Math.ceil((Date.now() + 1) / 60_000) * 60_000;
    const built = await until(
      'the scheduled build',
      async () => (await sql<{ version: number }>('SELECT version FROM pub_version WHERE published_ms >= $1', [slot]))[0],
      150_000,
    );
    // Both nodes have had their say about this run: one built it, the other found it built.
    const skipped = `version ${built.version} was published for this scheduled run by another node`;
    await until('both nodes to answer the run', async () =>
      [a, b].every((n) => n.log().includes(skipped) || n.log().includes(`"version":${built.version}`)),
    );
    expect(await sql('SELECT version FROM pub_version WHERE published_ms >= $1 AND published_ms < $2', [slot, slot + 60_000])).toHaveLength(
      1,
    );
    const builders = [a, b].filter((n) => n.log().includes(`"version":${built.version}`));
    expect(builders).toHaveLength(1);
    expect([a, b].filter((n) => n.log().includes(skipped))).toHaveLength(1);

    // Downloads come from the standby: let it replay the version first.
    await waitForReplay(primary, standby, 'rarecon');
    await until(
      'node a to serve the version from the standby',
      async () => ((await http(`${a.url}/v1/health`)).json.baselineVersion as number) >= built.version,
    );
    const pgAlerts = await scoreWith('pg-scorer', a.url, token, pubkey);
    const readers = await sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'rarecon-server-read'",
      [],
      standby,
    );
    expect(readers[0]?.n).toBeGreaterThan(0);

    // The same sightings on the SQLite store.
    const liteDir = join(tmp.dir, 'lite');
    const liteCfg = join(tmp.dir, 'lite.yaml');
    writeFileSync(
      liteCfg,
      `server:\n  stateDir: ${liteDir}\n  listenHost: 127.0.0.1\n  port: ${await freePort()}\n  plainHttp: true\n  observerUnit: host\n  hostMinUploadDays: 1\n`,
    );
    const le = await run(['server', 'enroll', '--org', 'acme', '--json', '--config', liteCfg]);
    expect(le.code, le.stderr).toBe(0);
    const lite = JSON.parse(le.stdout) as { token: string; publicKey: string };
    const liteNode = await startNode(liteCfg);
    try {
      const liteCreds = await enrolHosts(liteNode.url, lite.token, 12, 'scored');
      await uploadScoredFleet(liteNode.url, liteCreds);
      const lb = await http(`${liteNode.url}/v1/admin/build`, {
        method: 'POST',
        token: readFileSync(join(liteDir, 'admin-token'), 'utf8').trim(),
      });
      expect(lb.status, lb.body.toString()).toBe(200);
      const liteAlerts = await scoreWith('lite-scorer', liteNode.url, lite.token, lite.publicKey);
      expect(liteAlerts).toEqual([
        ['rare-c2.net', '8443', 'Low', 'rare'],
        ['planted-c2.org', '4444', 'Medium', 'very-rare'],
      ]);
      expect(pgAlerts).toEqual(liteAlerts);
    } finally {
      await kill(liteNode);
    }
  }, 300_000);

  it('a node killed during uploads loses no acknowledged sightings', async () => {
    const creds = await enrolHosts(a.url, token, 40, 'busy');
    const acked: Array<{ host: string; day: string; combos: number }> = [];
    let stop = false;
    const uploader = async (i: number): Promise<void> => {
      for (let d = 1; !stop && d <= 20; d++) {
        const combos = Array.from({ length: 200 }, (_, k) => ({
          sha256: sha(`busy-${k % 20}`),
          rootDomain: `d${k}-${i}.example`,
          port: 443,
        }));
        const day = isoDay(today - d * DAY);
        try {
          const r = await http(`${b.url}/v1/sightings`, { token: creds[i] as string, body: { days: [{ day, processes: [], combos }] } });
          if (r.status === 200) acked.push({ host: `busy-${i}`, day, combos: combos.length });
        } catch {
          return; // the node is gone: this upload was never acknowledged
        }
      }
    };
    const uploads = Promise.all(creds.map((_, i) => uploader(i)));
    await until('some uploads acknowledged', async () => acked.length >= 40);
    await kill(b);
    stop = true;
    await uploads;
    expect(acked.length).toBeGreaterThan(0);
    const rows = await sql<{ host_id: string; day: number; combo_count: number; n: number }>(
      `SELECT h.host_id, hd.day, hd.combo_count,
              (SELECT coalesce(sum(cardinality(s.shas)), 0)::int FROM sighting s WHERE s.host = hd.host AND s.day = hd.day) AS n
       FROM host_day hd JOIN host h ON h.id = hd.host WHERE h.host_id LIKE 'busy-%'`,
    );
    const stored = new Map(rows.map((r) => [`${r.host_id}|${isoDay(r.day * DAY)}`, r]));
    for (const x of acked) {
      const r = stored.get(`${x.host}|${x.day}`);
      expect(r, `${x.host} ${x.day}`).toBeDefined();
      expect(r?.combo_count).toBe(x.combos);
      expect(r?.n).toBe(x.combos);
    }
    // Back with a schedule that stays quiet, so the next test's build is the only one.
    b = await startNode(await writeNodeConfig('b', '0 0 1 1 *'));
  }, 240_000);

  it('the builder killed mid-build leaves the last version served; the next build completes', async () => {
    await kill(a);
    a = await startNode(await writeNodeConfig('a', '0 0 1 1 *'));
    await until('no build running', async () => {
      const r = await sql<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'rarecon-server-build'");
      return r[0]?.n === 0;
    });
    const before = (await http(`${b.url}/v1/health`)).json.baselineVersion as number;
    expect(before).not.toBeNull();
    // Writers of pub_combo wait behind this lock: the build stops inside its publishing transaction.
    const holder = new pg.Client({ connectionString: dbUrl });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE pub_combo IN SHARE ROW EXCLUSIVE MODE');
    const building = http(`${a.url}/v1/admin/build`, { method: 'POST', token: adminToken }).catch(() => null);
    await until('the build to wait inside its publication', async () => {
      const r = await sql<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'rarecon-server-build' AND wait_event = 'relation'",
      );
      return (r[0]?.n ?? 0) > 0;
    });
    await kill(a);
    await building;
    await holder.query('ROLLBACK');
    await holder.end();
    // The last version stays served, whole.
    const h = await http(`${b.url}/v1/health`);
    expect(h.json.baselineVersion).toBe(before);
    const cred = (await enrolHosts(b.url, token, 1, 'after-kill'))[0] as string;
    const bucket = await http(`${b.url}/v1/baseline/buckets/${BIN.slice(0, 4)}`, { token: cred });
    expect(bucket.status).toBe(200);
    expect(bucket.headers['x-rarecon-version']).toBe(String(before));
    // The next build, through the surviving node, takes the lock once the dead session is gone, and publishes.
    const next = await http(`${b.url}/v1/admin/build`, { method: 'POST', token: adminToken });
    expect(next.status, next.body.toString()).toBe(200);
    expect(next.json.version).toBeGreaterThan(before);
    expect(await sql('SELECT 1 FROM pg_class WHERE relname = $1', ['agg_pair'])).toHaveLength(0);
  }, 240_000);
});
