// End-to-end, real kernel and real network: an alert storm against `rarecon
// run` (the built CLI, the eBPF helper). One process (the connect_ports
// trigger, a binary the baseline holds as globally common) opens thousands of
// new connections a second to a test host in a network namespace, each to a
// new port of a name the daemon saw resolved by a real DNS server: each would
// raise its own alert. With the safety valve at 200 alerts a host, the daemon
// raises 200 alerts, then exactly one health alert, then only counts the
// host's connections, and stays up and watching: a later connection of
// another process is counted too. Asserts what a user sees: the alerts file,
// the sink, the log and the status file.
// Needs root; skips with the reason otherwise.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines } from '../support/cli.js';
import { writeBaseline } from '../support/e2e-baseline.js';
import { DaemonRun, type Json } from '../support/daemon.js';
import { EVENT_WAIT_MS, buildNative, buildTrigger, rootReason, sha256File, until } from '../support/env.js';
import { TestHost } from '../support/testhost.js';
import type { DaemonStatus } from '../../src/daemon/status.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`daemon-storm.e2e: skipping: ${skipReason}`);

// 198.51.100.224/28: this file's test host (see support/testhost.ts).
const DNS_IP = '198.51.100.226';
const TARGET_IP = '198.51.100.227';
const NAME = 'storm.storm-test.example';
const VALVE = 200;
const STORM = { rate: 2000, ms: 2000, portBase: 20_000, ports: 10_000 };
const HEALTH_MESSAGE = 'This host raised more alerts than the safety valve allows in 24 h';

let dir = '';
let host: TestHost | null = null;
let daemon: DaemonRun | null = null;
let generator = '';
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-storm-'));
  generator = buildTrigger('connect_ports', join(dir, 'bin'));
  const baselinePath = join(dir, 'baseline.db');
  // The generator is globally common; none of its combinations is in the baseline.
  writeBaseline(baselinePath, { commonSha256: [sha256File(generator)] });
  host = await TestHost.start({
    tag: 'r18e',
    hostSide: '198.51.100.225/28',
    addresses: [DNS_IP, TARGET_IP],
    names: { [NAME]: TARGET_IP },
    ports: [],
    dir,
  });
  // No --record: the daemon as it runs in service.
  daemon = await DaemonRun.start({ dir, baseline: baselinePath, record: false, config: { detect: { maxAlertsPerHostPerDay: VALVE } } });
}, 180_000);

afterAll(async () => {
  for (const c of children) c.stdin?.end();
  await daemon?.stop('SIGTERM');
  host?.stop();
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
  else if (dir !== '') console.log(`daemon-storm.e2e: kept ${dir}`);
});

/** Runs the generator (from the root namespace: the test host is routed over the veth); resolves once its load is done. */
function generate(rate: number, ms: number, portBase: number, ports: number): Promise<{ pid: number; attempted: number }> {
  // stdin stays open: the generator lives on after its load, so its last connections can still be enriched.
  const child = spawn(generator, [String(rate), String(ms), TARGET_IP, String(portBase), String(ports)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /attempted=(\d+)/.exec(out);
      if (m) resolve({ pid: child.pid ?? -1, attempted: Number(m[1]) });
    });
    child.on('error', reject);
    child.on('close', () => reject(new Error(`connect_ports ended early: ${out}`)));
  });
}

/** Connections the daemon accounted for: scored (paused ones included), counted by the valve, or dropped and counted. */
function accounted(s: DaemonStatus): { scored: number; counted: number; dropped: number } {
  const shed = s.watchdog?.shedByReason;
  return {
    scored: s.score.connectionsTotal,
    counted: s.counters['valveCountedTotal'] ?? 0,
    dropped:
      (s.source?.kernelDropsTotal ?? 0) +
      (s.source?.droppedTotal ?? 0) +
      s.queue.droppedTotal +
      (shed?.connection_not_common ?? 0) +
      (shed?.connection_sampled ?? 0),
  };
}

const total = (a: { scored: number; counted: number; dropped: number }): number => a.scored + a.counted + a.dropped;

function sinkAlerts(): Json[] {
  const sink = join(dir, 'sink.jsonl');
  return existsSync(sink) ? jsonLines(readFileSync(sink, 'utf8')) : [];
}

const isHealth = (a: Json): boolean => (a.finding_info?.types as string[] | undefined)?.includes('health') === true;

describe.skipIf(skipReason !== null)('rarecon run on a real kernel: an alert storm', () => {
  it(`raises ${VALVE} alerts, then exactly one health alert, counts the rest, and keeps watching`, async () => {
    const d = daemon as DaemonRun;
    expect((host as TestHost).resolve(NAME)).toBe(true);
    const before = accounted(d.statusFile() as DaemonStatus);

    const storm = await generate(STORM.rate, STORM.ms, STORM.portBase, STORM.ports);
    expect(storm.attempted).toBeGreaterThan(VALVE * 5);

    // The health alert, in the alerts file and at the sink (through the outbox).
    const seen = await d.waitForAlert(isHealth, EVENT_WAIT_MS);
    expect(seen.alert.finding_info.title).toBe('rarecon detector paused for a host that raised too many alerts');
    expect(seen.alert.unmapped.alerts_in_window).toBe(VALVE);
    await until('the health alert at the sink', EVENT_WAIT_MS, () => (sinkAlerts().some(isHealth) ? true : undefined));

    // Every connection of the storm is accounted for: scored, counted while paused, or dropped and counted.
    const after = await until('every storm connection accounted for', EVENT_WAIT_MS, () => {
      const s = d.statusFile();
      if (s === null) return undefined;
      const a = accounted(s);
      return total(a) - total(before) >= storm.attempted ? a : undefined;
    });
    // Most of the storm came after the valve closed: counted, not enriched.
    expect(after.counted - before.counted).toBeGreaterThan(storm.attempted / 4);

    // Still watching: another process's connections, after the storm, are counted by the valve too.
    const probe = await generate(100, 200, 9000, 1);
    await until('the probe connections counted', EVENT_WAIT_MS, () => {
      const s = d.statusFile();
      return s !== null && accounted(s).counted - after.counted >= probe.attempted ? true : undefined;
    });

    expect(d.exit).toBeNull();
    const alerts = d.alerts().map((s) => s.alert);
    const ours = alerts.filter((a) => !isHealth(a) && a.evidences?.[0]?.process?.pid === storm.pid);
    expect(ours).toHaveLength(VALVE);
    expect(alerts.filter(isHealth)).toHaveLength(1);
    const sink = sinkAlerts();
    expect(sink.filter(isHealth)).toHaveLength(1);
    const status = d.statusFile() as DaemonStatus;
    expect(status.score.healthAlertsTotal).toBe(1);
    // The daemon said once why it stopped alerting, and never reached its memory limit.
    expect(d.logs.filter((l) => String(l.message).startsWith(HEALTH_MESSAGE))).toHaveLength(1);
    expect(d.logs.filter((l) => String(l.message).includes('hard memory limit'))).toEqual([]);
    const st = await d.status();
    expect(st.text).toMatch(/connections counted while the safety valve paused the detector for this host/);

    const exit = await d.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    daemon = null;
  }, 120_000);
});
