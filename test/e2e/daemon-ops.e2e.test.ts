// End-to-end, real kernel: how `rarecon run` behaves as a service. The /proc
// fallback forced on, the helper killed and fed garbage, SIGHUP with a bad
// config, SIGTERM. Asserts what an operator sees: the log (JSON lines on
// stderr), `rarecon status`, the record file and the exit status.
// Needs root; skips with the reason otherwise.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBaseline } from '../support/e2e-baseline.js';
import { DaemonRun, type Json } from '../support/daemon.js';
import { EVENT_WAIT_MS, HELPER_BIN, buildNative, rootReason, sha256File, sleep, until } from '../support/env.js';
import { TestHost } from '../support/testhost.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`daemon-ops.e2e: skipping: ${skipReason}`);

const CURL = '/usr/bin/curl';
const PORT = 8443;
// 198.51.100.128/28: this file's test host (see support/testhost.ts).
const DNS_IP = '198.51.100.130';
const SERVICE_IP = '198.51.100.131';
const NAME = 'svc.ops-test.example';

let dir = '';
let host: TestHost | null = null;
let baselinePath = '';
const daemons: DaemonRun[] = [];
let n = 0;

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-ops-'));
  baselinePath = join(dir, 'baseline.db');
  writeBaseline(baselinePath, { commonSha256: [sha256File(CURL)] });
  host = await TestHost.start({
    tag: 'o',
    hostSide: '198.51.100.129/28',
    addresses: [DNS_IP, SERVICE_IP],
    names: { [NAME]: SERVICE_IP },
    ports: [PORT],
    dir,
  });
}, 180_000);

afterAll(async () => {
  for (const d of daemons) await d.stop('SIGTERM');
  host?.stop();
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
  else if (dir !== '') console.log(`daemon-ops.e2e: kept ${dir}`);
});

async function startDaemon(config: Json = {}): Promise<DaemonRun> {
  const d = await DaemonRun.start({ dir: join(dir, `run${++n}`), baseline: baselinePath, config });
  daemons.push(d);
  return d;
}

/** curl to the test host by address; `holdMs` keeps the connection open that long. */
function curl(holdMs = 0): ReturnType<TestHost['run']> {
  return (host as TestHost).run([
    CURL,
    '-sS',
    '--noproxy',
    '*',
    '-m',
    '10',
    '-o',
    '/dev/null',
    `http://${SERVICE_IP}:${PORT}/?ms=${holdMs}`,
  ]);
}

const connectionOf =
  (pid: number) =>
  (r: Json): boolean =>
    r.type === 'connection' && r.process?.pid === pid && r.remote?.ip === SERVICE_IP && r.remote?.port === PORT;

describe.skipIf(skipReason !== null)('rarecon run as a service (root, real kernel)', () => {
  it('with source.kind procfs, sees a long-lived connection and says so in status, with what the fallback misses', async () => {
    const d = await startDaemon({ source: { kind: 'procfs', pollIntervalMs: 200 } });
    const run = curl(2500);
    const child = await run;
    expect(child.code, child.stderr).toBe(0);
    const rec = await d.waitForRecord(connectionOf(child.pid), EVENT_WAIT_MS);
    expect(rec.process).toMatchObject({ pid: child.pid, path: CURL, sha256: sha256File(CURL) });
    expect(rec.protocol).toBe('tcp');
    // Timed by the poll that saw it: within the life of the connection.
    const t = Date.parse(rec.time);
    expect(t).toBeGreaterThanOrEqual(child.startedMs - 50);
    expect(t).toBeLessThanOrEqual(child.endedMs + 50);

    const { text, json } = await d.status();
    expect(json.source).toMatchObject({ name: 'procfs_poll', reason: 'configured: source.kind is procfs' });
    expect(text).toContain('source:    procfs_poll (configured: source.kind is procfs)');
    expect(text).toMatch(/misses: Polling \/proc misses connections opened and closed between two polls/);
    expect(json.score.connectionsTotal).toBeGreaterThanOrEqual(1);
    expect(d.logs.find((l) => l.message === 'rarecon is watching outbound connections.')).toMatchObject({
      source: 'procfs_poll',
      sourceReason: 'configured: source.kind is procfs',
    });
    expect((await d.stop()).code).toBe(0);
  });

  it('counts garbage from the helper, restarts a killed helper with growing back-off, and keeps capturing', async () => {
    // A helper that writes garbage (with a frame header of impossible length) and a malformed frame before the real frames.
    mkdirSync(join(dir, 'bin'), { recursive: true });
    const fake = join(dir, 'bin', 'garbage-helper.sh');
    writeFileSync(
      fake,
      [
        '#!/bin/sh',
        "printf 'not a frame at all\\000\\001\\002\\003'",
        "printf 'RCEV\\001\\000\\002\\000\\377\\377\\377\\177\\000\\000\\000\\000'",
        "printf 'more junk'",
        // A well-formed header (CONNECT, length 20) around a 4-byte body: too short to be a CONNECT.
        "printf 'RCEV\\001\\000\\002\\000\\024\\000\\000\\000\\000\\000\\000\\000abcd'",
        `exec ${HELPER_BIN} "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    const d = await startDaemon({ source: { kind: 'ebpf', helperPath: fake } });

    // The run of garbage counts once, the malformed frame once.
    const first = await d.waitForStatus((s) => (s.source?.decodeErrorsTotal ?? 0) >= 2, EVENT_WAIT_MS);
    const errorsPerRun = first.source?.decodeErrorsTotal ?? 0;
    expect(errorsPerRun).toBe(2);
    const c1 = await curl();
    await d.waitForRecord(connectionOf(c1.pid), EVENT_WAIT_MS);

    const delays: number[] = [];
    for (let kill = 1; kill <= 2; kill++) {
      const [helperPid] = d.childPids('rarecon-events');
      expect(helperPid, 'the helper runs as the daemon child rarecon-events').toBeDefined();
      const killedMs = Date.now();
      process.kill(helperPid as number, 'SIGKILL');
      const exited = (l: Json): boolean => typeof l.message === 'string' && l.message.includes('helper exited (signal SIGKILL)');
      await until('the helper exit in the log', EVENT_WAIT_MS, () => (d.logs.filter(exited).length === kill ? true : undefined));
      const line = d.logs.filter(exited)[kill - 1] as Json;
      expect(line.level).toBe('warn');
      const m = /restarting in (\d+) ms/.exec(line.message as string);
      expect(m, line.message as string).not.toBeNull();
      delays.push(Number(m?.[1]));
      // Restarted (a new pid), the garbage of the new run counted too, status still written.
      const s = await d.waitForStatus(
        (x) => x.source?.helperRestartsTotal === kill && (x.source?.decodeErrorsTotal ?? 0) >= errorsPerRun * (kill + 1),
        EVENT_WAIT_MS,
        killedMs,
      );
      expect(s.updatedMs).toBeGreaterThan(killedMs);
      const [again] = await until('the new helper', EVENT_WAIT_MS, () => {
        const p = d.childPids('rarecon-events');
        return p.length === 1 && p[0] !== helperPid ? p : undefined;
      });
      expect(again).not.toBe(helperPid);
      // Capturing again once the new helper said HELLO.
      await d.waitForLog(
        (l) => typeof l.message === 'string' && l.message.startsWith('eBPF helper: streaming') && Date.parse(l.timestamp) > killedMs,
        EVENT_WAIT_MS,
      );
      const c = await curl();
      await d.waitForRecord(connectionOf(c.pid), EVENT_WAIT_MS);
    }
    console.log(`daemon-ops.e2e: helper restart delays after kill -9: ${delays.join(' ms, ')} ms`);
    // Exponential back-off with +-20 % jitter: 500 ms then 1 s by default.
    expect(delays[1] as number).toBeGreaterThan(delays[0] as number);
    expect(d.exit).toBeNull();
    const { text } = await d.status();
    expect(text).toMatch(/^rarecon daemon: running/m);
    expect(text).toMatch(/decode errors [1-9]/);
    expect((await d.stop()).code).toBe(0);
  });

  it('keeps running on SIGHUP with a bad config (and logs why), reloads a good one, and stops cleanly on SIGTERM', async () => {
    const d = await startDaemon();
    const good = JSON.parse(
      JSON.stringify({
        statusIntervalMs: 200,
        report: { sinks: [{ type: 'file', name: 'e2e', path: join(d.stateDir, '..', 'sink.jsonl'), fsync: false }] },
      }),
    ) as Json;

    writeFileSync(d.configPath, 'statusIntervalMs: fast\ndetect:\n  activationDays: -3\n');
    const hupMs = Date.now();
    process.kill(d.pid, 'SIGHUP');
    const err = await d.waitForLog(
      (l) => l.level === 'error' && l.message === 'The config file has problems; the running config stays.',
      EVENT_WAIT_MS,
    );
    expect(err.problems).toContain('statusIntervalMs');
    expect(err.problems).toContain('detect.activationDays');
    await sleep(300);
    expect(d.exit).toBeNull();
    // Still working: status written after the HUP, and a new connection captured.
    await d.waitForStatus(() => true, EVENT_WAIT_MS, hupMs + 200);
    const c = await curl();
    await d.waitForRecord(connectionOf(c.pid), EVENT_WAIT_MS);
    expect(d.statusFile()?.counters.reloadsTotal).toBe(0);

    writeFileSync(d.configPath, JSON.stringify({ ...good, detect: { exclusions: { ports: [9] } } }));
    process.kill(d.pid, 'SIGHUP');
    await d.waitForLog((l) => l.message === 'Config reloaded.', EVENT_WAIT_MS);
    await d.waitForStatus((s) => s.counters.reloadsTotal === 1, EVENT_WAIT_MS);

    const termMs = Date.now();
    const exit = await d.stop('SIGTERM');
    console.log(`daemon-ops.e2e: SIGTERM -> exit in ${Date.now() - termMs} ms`);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(d.logs.find((l) => l.message === 'Stopping on a signal.')).toMatchObject({ signal: 'SIGTERM' });
    expect(d.logs.find((l) => l.message === 'rarecon stopped.')).toBeDefined();
    expect(d.logs.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      'The config file has problems; the running config stays.',
    ]);
    // The helper went with it.
    expect(d.childPids('rarecon-events')).toEqual([]);
    const { text } = await d.status();
    expect(text).toMatch(/^rarecon daemon: NOT RUNNING/m);
  });
});
