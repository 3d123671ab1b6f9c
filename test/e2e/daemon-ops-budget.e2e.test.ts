// End-to-end, real kernel: the daemon's self-protection and its state under
// stress, as an operator sees them. A tiny CPU budget under a burst of
// connections (it sheds, says so in the log, `rarecon status` and /metrics,
// then recovers); SIGHUP with new sinks while alerts wait in the outbox
// (real HTTP receivers); a full state folder (a small tmpfs).
// Needs root; skips with the reason otherwise. Run under flock /tmp/rarecon-root.lock.
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import dgram from 'node:dgram';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeBaseline } from '../support/e2e-baseline.js';
import { DaemonRun, type Json } from '../support/daemon.js';
import { EVENT_WAIT_MS, buildNative, rootReason, sha256File, sleep, until } from '../support/env.js';
import { TestHost, type RunResult } from '../support/testhost.js';
import { deliveryReport, Receiver } from '../support/receiver.js';
import { jsonLines } from '../support/cli.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`daemon-ops-budget.e2e: skipping: ${skipReason}`);

const CURL = '/usr/bin/curl';
// 198.51.100.160/28 (bench/daemon.ts has .144/28, daemon-server.e2e .176/28): this file's test host (see support/testhost.ts).
const DNS_IP = '198.51.100.162';
const SERVICE_IP = '198.51.100.163';
const NAME = 'svc.budget-test.example';
// Each port is a new (root domain, port) combination for curl: a new alert.
const PORTS = [9101, 9102, 9103, 9104, 9105, 9106, 9107, 9108];

let dir = '';
let host: TestHost | null = null;
let baselinePath = '';
const daemons: DaemonRun[] = [];
const receivers: Receiver[] = [];
let n = 0;
let ctxLoad: Promise<unknown> | null = null;

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-budget-'));
  baselinePath = join(dir, 'baseline.db');
  writeBaseline(baselinePath, { commonSha256: [sha256File(CURL)] });
  host = await TestHost.start({
    tag: 'w',
    hostSide: '198.51.100.161/28',
    addresses: [DNS_IP, SERVICE_IP],
    names: { [NAME]: SERVICE_IP },
    ports: PORTS,
    dir,
  });
}, 180_000);

afterAll(async () => {
  for (const d of daemons) await d.stop('SIGTERM');
  for (const r of receivers) await r.stop().catch(() => {});
  host?.stop();
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
  else if (dir !== '') console.log(`daemon-ops-budget.e2e: kept ${dir}`);
});

function metricsPort(): number {
  return 20_000 + Math.floor(Math.random() * 20_000);
}

async function startDaemon(config: Json, sub?: string): Promise<DaemonRun> {
  const d = await DaemonRun.start({ dir: sub ?? join(dir, `run${++n}`), baseline: baselinePath, config });
  daemons.push(d);
  return d;
}

async function receiver(): Promise<Receiver> {
  const r = await new Receiver().listen();
  receivers.push(r);
  return r;
}

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

/** curl by address (no name, nothing to alert on): a connection to find in the record. */
function curlIp(): Promise<RunResult> {
  return (host as TestHost).run([CURL, '-sS', '--noproxy', '*', '-m', '10', '-o', '/dev/null', `http://${SERVICE_IP}:${PORTS[0]}/`]);
}

/** curl by name (resolved by the test host's DNS, seen by the daemon): a new alert for each port. */
async function curlName(port: number): Promise<void> {
  const r = await (host as TestHost).run([CURL, '-sS', '--noproxy', '*', '-m', '10', '-o', '/dev/null', `http://${NAME}:${port}/`]);
  expect(r.code, r.stderr).toBe(0);
}

/** Alert uids the daemon wrote to --alerts for `port`. */
function alertUids(d: DaemonRun, port: number): string[] {
  return d
    .alerts()
    .filter((s) => s.alert.evidences?.[0]?.dst_endpoint?.port === port)
    .map((s) => String(s.alert.metadata?.uid));
}

/** Many short TCP connections and UDP flows from this process to the test host, for `ms`. */
async function burst(ms: number): Promise<{ tcp: number; udp: number }> {
  const end = Date.now() + ms;
  let tcp = 0;
  let udp = 0;
  while (Date.now() < end) {
    const round: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) {
      round.push(
        new Promise<void>((resolve) => {
          const s = net.connect({ host: SERVICE_IP, port: PORTS[0] as number }, () => s.end());
          s.on('error', () => resolve());
          s.on('close', () => resolve());
        }),
      );
      tcp++;
      // A new destination port each time: a new flow, not deduplicated by the helper.
      const u = dgram.createSocket('udp4');
      u.send('x', 20_000 + (udp % 40_000), SERVICE_IP, () => u.close());
      udp++;
    }
    await Promise.all(round);
  }
  return { tcp, udp };
}

describe.skipIf(skipReason !== null)('rarecon run under stress (root, real kernel)', () => {
  afterEach(async () => {
    await ctxLoad;
    ctxLoad = null;
  });

  it('over a tiny CPU budget sheds UDP flows, then samples connections, says so, and recovers when the load stops', async () => {
    const port = metricsPort();
    const d = await startDaemon({
      metrics: { port },
      // No start-up grace: the test loads the daemon right after it starts.
      watchdog: { intervalMs: 500, cpuPercent: 4, recoverSamples: 2, sampleOneIn: 4, startupGraceMs: 0 },
    });
    // Idle first: within budget.
    // Idle (the start-up's own work may take one sample over the tiny budget).
    const idle = (await d.waitForStatus((s) => s.watchdog?.level === 0, EVENT_WAIT_MS, Date.now() + 1500)).watchdog;
    const mib = (x: number | undefined): string => ((x ?? 0) / 2 ** 20).toFixed(0);
    console.log(
      `daemon-ops-budget.e2e: idle CPU ${idle?.cpuPercent.toFixed(2)} % of a core, ${mib(idle?.rssBytes)} MiB resident, ${mib(idle?.liveBytes)} MiB in use`,
    );
    expect(idle?.level).toBe(0);

    // curl once before the load: its image is judged common, so a new curl process is not sampled out later.
    const first = await curlIp();
    await d.waitForRecord((r) => r.type === 'connection' && r.process?.pid === first.pid, EVENT_WAIT_MS);

    const loadStart = Date.now();
    const load = burst(6000);
    // Never leave the load running into the next test.
    ctxLoad = load;
    const shedding = await d.waitForStatus(
      (s) => (s.watchdog?.level ?? 0) >= 1 && (s.watchdog?.shedByReason.udp_flow_not_common ?? 0) > 0,
      EVENT_WAIT_MS,
    );
    console.log(
      `daemon-ops-budget.e2e: shedding after ${Date.now() - loadStart} ms of load at ${shedding.watchdog?.cpuPercent.toFixed(1)} % CPU`,
    );
    const warn = await d.waitForLog(
      (l) => l.level === 'warn' && /^The daemon is over its (cpu|cpu and memory) budget; it sheds low-value work/.test(l.message),
      EVENT_WAIT_MS,
    );
    expect(warn).toMatchObject({ shedLevel: 1, cpuBudgetPercent: 4 });
    const { text } = await d.status();
    expect(text).toMatch(/^watchdog:  SHEDDING level [12] for .* over cpu/m);
    expect(text).toMatch(/shed so far: .*udp_flow_not_common \d/);
    const m = await metrics(port);
    expect(metricValue(m, 'rarecon_watchdog_level')).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'rarecon_watchdog_shed_total{reason="udp_flow_not_common"}')).toBeGreaterThan(0);
    expect(metricValue(m, 'rarecon_events_dropped_total{reason="watchdog_udp_not_common"}')).toBeGreaterThan(0);

    // At level 2 connections of processes not judged yet are sampled, but a new process of an image
    // judged common is kept: every such curl is enriched and scored.
    await d.waitForStatus((s) => s.watchdog?.level === 2, EVENT_WAIT_MS);
    const during = await curlIp();
    await d.waitForRecord((r) => r.type === 'connection' && r.process?.pid === during.pid, EVENT_WAIT_MS);

    const sent = await load;
    const peak = d.statusFile()?.watchdog;
    console.log(
      `daemon-ops-budget.e2e: load ${sent.tcp} TCP connections and ${sent.udp} UDP flows in 6 s; shed ${JSON.stringify(peak?.shedByReason)}`,
    );

    // Load gone: back to level 0 and said so once.
    const back = await d.waitForStatus((s) => s.watchdog?.level === 0, EVENT_WAIT_MS);
    console.log(
      `daemon-ops-budget.e2e: recovered ${Date.now() - loadStart - 6000} ms after the load stopped; ${mib(back.watchdog?.rssBytes)} MiB resident, ${mib(back.watchdog?.liveBytes)} MiB in use`,
    );
    expect(back.watchdog?.shedTotal).toBeGreaterThan(0);
    await d.waitForLog((l) => l.message === 'The daemon is back under its budget; nothing is shed any more.', EVENT_WAIT_MS);
    // Counted work stays counted; nothing new is shed once back.
    const shedBack = back.watchdog?.shedTotal ?? 0;
    const c = await curlIp();
    await d.waitForRecord((r) => r.type === 'connection' && r.process?.pid === c.pid, EVENT_WAIT_MS);
    expect(d.statusFile()?.watchdog?.shedTotal).toBe(shedBack);
    const changes = d.logs.filter((l) => typeof l.message === 'string' && l.message.startsWith('The daemon is '));
    // One line per change of level, not per sample (some 30 samples): up and down, with at most a flap
    // or two while shedding itself brings the CPU back under the budget.
    expect(changes.length).toBeLessThanOrEqual(8);
    expect(d.exit).toBeNull();
  }, 150_000);

  it('at the hard memory limit logs why, stops cleanly and exits 70 for systemd to restart it', async () => {
    const d = await startDaemon({
      source: { kind: 'procfs' },
      watchdog: { intervalMs: 1500, memoryBytes: 1024 * 1024, hardMemoryBytes: 2 * 1024 * 1024 },
    });
    await d.waitExit();
    expect(d.exit).toEqual({ code: 70, signal: null });
    const err = d.logs.find((l) => l.message === 'The daemon reached its hard memory limit; it exits so the service manager restarts it.');
    expect(err).toMatchObject({ level: 'error', hardMemoryBytes: 2 * 1024 * 1024 });
    expect(err?.rssBytes).toBeGreaterThan(2 * 1024 * 1024);
    expect(d.logs.find((l) => l.message === 'rarecon stops and exits for the service manager to restart it.')).toMatchObject({
      exitCode: 70,
    });
    expect(d.logs.find((l) => l.message === 'rarecon stopped.')).toBeDefined();
  }, 120_000);

  it('SIGHUP moves queued alerts to a sink new address, adds a sink, and a sink that cannot be built keeps it all', async () => {
    const down = await receiver();
    down.mode = { kind: 'status', status: 503 };
    const up = await receiver();
    const sub = join(dir, `run${++n}`);
    const archive = join(sub, 'archive.jsonl');
    const httpSink = (url: string, extra: Json = {}): Json => ({ type: 'http', name: 'siem', url, lingerMs: 0, ...extra });
    const base = { report: { pollMs: 100, backoff: { initialMs: 100, maxMs: 300 }, sinks: [httpSink(down.url)] } };
    const d = await startDaemon(base, sub);

    await curlName(PORTS[0] as number);
    await curlName(PORTS[1] as number);
    const queued = await until('two alerts', EVENT_WAIT_MS, () => {
      const u = [...alertUids(d, PORTS[0] as number), ...alertUids(d, PORTS[1] as number)];
      return u.length === 2 ? u : undefined;
    });
    await until('the sink refusing them', EVENT_WAIT_MS, () => (down.attempts.length > 0 ? true : undefined));
    const held = await d.waitForStatus((s) => (s.report as Json).outbox.rows === 2, EVENT_WAIT_MS);
    expect((held.report as Json).delivery[0]).toMatchObject({ sink: 'siem' });

    writeFileSync(
      d.configPath,
      JSON.stringify({
        ...JSON.parse(readFileSync(d.configPath, 'utf8')),
        report: { ...base.report, sinks: [httpSink(up.url), { type: 'file', name: 'archive', path: archive, fsync: false }] },
        // Not applied while running: the reload must say so rather than pass over it.
        baselineStore: { lookupCacheEntries: 12_345 },
      }),
    );
    process.kill(d.pid, 'SIGHUP');
    const reloaded = await d.waitForLog((l) => l.message === 'Config reloaded.', EVENT_WAIT_MS);
    expect(reloaded.sinks).toEqual({ added: ['archive'], removed: [], changed: ['siem'], kept: [] });
    expect(d.logs.find((l) => l.message === 'Some changed settings take a restart; the running values stay until then.')).toMatchObject({
      settings: ['baselineStore'],
    });
    // What waited in the outbox goes to the new address, once each.
    await until('the queued alerts at the new address', EVENT_WAIT_MS, () =>
      deliveryReport(up.uids, queued).missing.length === 0 ? true : undefined,
    );
    expect(deliveryReport(up.uids, queued).duplicates).toBe(0);
    expect(down.uids).toEqual([]);
    // A new alert reaches both sinks; the added one gets only what came after the reload.
    await curlName(PORTS[2] as number);
    const [third] = await until('the third alert', EVENT_WAIT_MS, () => {
      const u = alertUids(d, PORTS[2] as number);
      return u.length === 1 ? u : undefined;
    });
    await until('the third alert in both sinks', EVENT_WAIT_MS, () => {
      const inArchive = existsSync(archive) && jsonLines(readFileSync(archive, 'utf8')).some((a) => a.metadata?.uid === third);
      return inArchive && up.uids.includes(third as string) ? true : undefined;
    });
    expect(jsonLines(readFileSync(archive, 'utf8')).map((a) => a.metadata?.uid)).toEqual([third]);
    await d.waitForStatus((s) => (s.report as Json).outbox.rows === 0, EVENT_WAIT_MS);

    // A sink whose token is missing: nothing changes, every problem logged, delivery goes on.
    writeFileSync(
      d.configPath,
      JSON.stringify({
        ...JSON.parse(readFileSync(d.configPath, 'utf8')),
        report: { ...base.report, sinks: [httpSink(down.url, { tokenEnv: 'RARECON_NO_SUCH_TOKEN' })] },
      }),
    );
    process.kill(d.pid, 'SIGHUP');
    const refused = await d.waitForLog((l) => l.message === 'The new sinks could not be set up; the running config stays.', EVENT_WAIT_MS);
    expect(refused.level).toBe('error');
    expect(String(refused.problem)).toContain('RARECON_NO_SUCH_TOKEN');
    await curlName(PORTS[3] as number);
    const [fourth] = await until('the fourth alert', EVENT_WAIT_MS, () => {
      const u = alertUids(d, PORTS[3] as number);
      return u.length === 1 ? u : undefined;
    });
    await until('the fourth alert at the running sink', EVENT_WAIT_MS, () => (up.uids.includes(fourth as string) ? true : undefined));
    expect(down.uids).toEqual([]);
    expect(d.statusFile()?.counters.reloadsTotal).toBe(1);
    expect((await d.stop()).code).toBe(0);
  }, 150_000);

  it('on a full state folder keeps running, says so, holds new alerts, loses nothing stored, and carries on once space is freed', async (ctx) => {
    const sub = join(dir, `run${++n}`);
    const state = join(sub, 'state');
    mkdirSync(state, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', state], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      console.log(`daemon-ops-budget.e2e: cannot mount a tmpfs: ${(err as Error).message}`);
      ctx.skip();
    }
    try {
      const rx = await receiver();
      rx.mode = { kind: 'status', status: 503 };
      const port = metricsPort();
      const d = await startDaemon(
        {
          metrics: { port },
          report: {
            pollMs: 100,
            backoff: { initialMs: 100, maxMs: 300 },
            sinks: [{ type: 'http', name: 'siem', url: rx.url, lingerMs: 0 }],
          },
        },
        sub,
      );
      await curlName(PORTS[4] as number);
      const [stored] = await until('the first alert', EVENT_WAIT_MS, () => {
        const u = alertUids(d, PORTS[4] as number);
        return u.length === 1 ? u : undefined;
      });
      await d.waitForStatus((s) => (s.report as Json).outbox.rows === 1, EVENT_WAIT_MS);

      // Another program fills the disk, and keeps taking any block that frees up (the daemon's own
      // SQLite checkpoints give some back), so the disk stays full until the test frees it.
      const filler = join(state, 'filler');
      const chunk = Buffer.alloc(4096, 1);
      const topUp = (): void => {
        for (;;) {
          try {
            appendFileSync(filler, chunk);
          } catch {
            return; // ENOSPC: full
          }
        }
      };
      topUp();
      const keepFull = setInterval(topUp, 20);
      const fullMs = Date.now();
      await curlName(PORTS[5] as number);
      const [whileFull] = await until('the alert raised while the disk is full', EVENT_WAIT_MS, () => {
        const u = alertUids(d, PORTS[5] as number);
        return u.length === 1 ? u : undefined;
      });
      const err = await d.waitForLog(
        (l) => l.level === 'error' && typeof l.message === 'string' && l.message.startsWith('The state folder is full'),
        EVENT_WAIT_MS,
      );
      expect(err).toMatchObject({ reason: 'disk-full' });
      const full = await d.waitForStatus((s) => s.stateDir?.diskFull === true && s.stateDir.heldAlerts === 1, EVENT_WAIT_MS, fullMs);
      expect((full.report as Json).outbox.rows).toBe(1);
      const { text } = await d.status();
      expect(text).toMatch(/^state:     DISK FULL: .*outbox \(disk-full/m);
      expect(text).toMatch(/holding 1 alerts/);
      const m = await metrics(port);
      expect(metricValue(m, 'rarecon_state_disk_full')).toBe(1);
      expect(metricValue(m, 'rarecon_state_held_items{kind="alerts"}')).toBe(1);
      expect(metricValue(m, 'rarecon_state_write_failures_total{store="outbox"}')).toBeGreaterThan(0);
      // Still capturing.
      const c = await curlIp();
      await d.waitForRecord((r) => r.type === 'connection' && r.process?.pid === c.pid, EVENT_WAIT_MS);
      // Only one error line per store for the whole episode.
      await sleep(1000);
      const errors = d.logs.filter((l) => l.level === 'error' && String(l.message).startsWith('The state folder'));
      expect(new Set(errors.map((l) => l.store)).size).toBe(errors.length);

      // Space comes back; the held alert is stored and both go out.
      clearInterval(keepFull);
      rmSync(filler);
      await d.waitForLog((l) => l.message === 'The state folder takes writes again.' && l.store === 'outbox', EVENT_WAIT_MS);
      rx.mode = { kind: 'up' };
      await until('both alerts delivered', EVENT_WAIT_MS, () =>
        deliveryReport(rx.uids, [stored as string, whileFull as string]).missing.length === 0 ? true : undefined,
      );
      expect(deliveryReport(rx.uids, [stored as string, whileFull as string]).duplicates).toBe(0);
      const after = await d.waitForStatus(
        (s) => s.stateDir?.diskFull === false && s.stateDir.heldAlerts === 0 && (s.report as Json).outbox.rows === 0,
        EVENT_WAIT_MS,
      );
      expect(after.stateDir?.writeFailuresTotal.outbox).toBeGreaterThan(0);
      // The sightings of the connections made while the disk was full reached sightings.db too.
      await d.waitForStatus((s) => s.stateDir?.heldSightings === 0 && s.stateDir.failing.sightings === undefined, EVENT_WAIT_MS);
      const db = new Database(join(state, 'sightings.db'), { readonly: true });
      try {
        const ports = db.prepare("SELECT port FROM day_combo WHERE root = 'budget-test.example' ORDER BY port").pluck().all() as number[];
        expect(ports).toEqual(expect.arrayContaining([PORTS[4], PORTS[5]]));
      } finally {
        db.close();
      }
      expect(d.exit).toBeNull();
      expect((await d.stop()).code).toBe(0);
    } finally {
      for (const d of daemons) if (d.stateDir === state) await d.stop();
      if (process.env['RARECON_E2E_KEEP']) execFileSync('cp', ['-a', state, join(sub, 'state-kept')]);
      execFileSync('umount', ['-l', state]);
    }
  }, 200_000);
});
