/* eslint-disable @typescript-eslint/no-explicit-any -- parsed JSON events and alerts, read field by field */
// The two shared OTRF Sysmon datasets (test/fixtures/sysmon/README.md) through
// `rarecon baseline build` and `rarecon score`, as a user runs them: what the
// summaries on stderr say, and the injected-thread variation on a real case.
//
// The reader's own counts are asserted in test/sources/replay/sysmon-reader.test.ts;
// here it is what a user sees. The facts were checked against the raw data with
// `zcat test/fixtures/sysmon/<file>.gz | grep ...` (line numbers below are lines of
// the uncompressed file).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { jsonLines, rarecon, REPO } from '../support/cli.js';

const fixtures = join(REPO, 'test', 'fixtures', 'sysmon');
const COVENANT = join(fixtures, 'covenant_lolbin_wuauclt_createremotethread.json.gz');
const EMPIRE = join(fixtures, 'empire_dcom_shellwindows_stager.json.gz');

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-cli-sysmon-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const INJECTED_NAME = 'Globally uncommon root-domain port combination by a common process (sha256) from an injected thread';
const VERY_RARE_NAME = 'Globally uncommon and very rare root-domain port combination by a common process (sha256)';

/** notepad.exe in the covenant file (Event 1, `Hashes`). */
const NOTEPAD_SHA256 = 'e5d90beeb6f13f4613c3153dabbd1466f4a062b7252d931f37210907a7f914f7';
/** smartscreen.exe in the empire file (Event 1 at line 11735, `Hashes`). */
const SMARTSCREEN_SHA256 = '533a950b1b8a63226573e93604c11c241ab1ae34e1be47d9919882a1681acb42';

/**
 * A fleet baseline in which `sha256` is globally common (12 host observers,
 * each on two days of the window) and no combination was ever seen. Its 30-day
 * window ends on `windowEndMs`, after the dataset's day.
 */
function commonProcessBaseline(name: string, sha256: string, windowEndMs: number): string {
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (let h = 0; h < 12; h++) {
    for (const daysBack of [1, 30]) {
      expect(b.add({ observer: `fleet/h${h}`, dayMs: windowEndMs - daysBack * DAY_MS, sha256, rootDomain: null, port: null })).toBe(true);
    }
  }
  const path = join(tmp, name);
  const w = b.write(path, { version: 5, builtAtMs: windowEndMs, windowEndMs });
  if (!w.ok) throw new Error(w.error);
  expect(w.meta).toMatchObject({
    processCount: 1,
    comboCount: 0,
    populationSize: 12,
    windowEndMs,
    windowStartMs: windowEndMs - 30 * DAY_MS,
  });
  return path;
}

describe('the covenant dataset (wuauclt CreateRemoteThread into notepad)', () => {
  const baseline = join(tmp, 'covenant.db');
  let build: Awaited<ReturnType<typeof rarecon>>;

  beforeAll(async () => {
    build = await rarecon(['baseline', 'build', '--unit', 'host', '--version', '3', '--out', baseline, COVENANT]);
  });

  it('baseline build learns the four process runs of WORKSTATION5 and no combination, and the first day of both hosts', () => {
    expect(build.stderr).toContain(
      `rarecon baseline build: 1,326 lines read from 1 file (31 records, 387 joined into them, 908 skipped, 0 blank, 0 errors); 31 records, 5 sightings -> ${baseline}\n`,
    );
    expect(build.stderr).toContain('  version 3, unit host, 1 observers, window 2020-10-12 .. 2020-10-13\n');
    expect(build.stderr).toContain('  4 processes, 0 combinations\n');
    // MORDORDC ran nothing hashed, but it is in the log: its first day is recorded too.
    expect(build.stderr).toContain('  first day of 2 hosts recorded: `rarecon score` takes it as their enrolment\n');
    expect(build.stderr).toContain('errors: none\n');
    expect(build.code).toBe(0);
  });

  it('score summarises what was read and why nothing was eligible', async () => {
    const r = await rarecon(['score', '--baseline', baseline, COVENANT]);
    expect(r.stdout).toBe('');
    // Every one of the 1,326 lines is accounted for: 31 records, 387 events joined into them, 908 skipped.
    expect(r.stderr).toMatch(
      /^rarecon score: 1,326 lines read from 1 file in \d+\.\d s: 31 records \(25 connections, 2 DNS answers, 4 process runs\), 387 joined into them, 908 skipped, 0 blank, 0 errors\n/,
    );
    expect(r.stderr).toContain('  joined into records: Sysmon event 10 200, Sysmon event 7 183, Sysmon event 5 3, Sysmon event 8 1\n');
    expect(r.stderr).toContain(
      '  skipped: channel Security 562, Sysmon event 12 200, Sysmon event 13 111, Sysmon event 11 18, Sysmon event 9 6, Sysmon event 18 5, channel System 3, Sysmon event 17 2, Sysmon event 23 1\n',
    );
    // 13 inbound; 10 to ::1, fe80::, 172.18.38.5 and notepad's 10.10.10.5:80; dns.exe's
    // forwarder query to 40.90.4.205:53 has no name; svchost's connection to
    // settings-win.data.microsoft.com has no Event 1, so no sha256.
    expect(r.stderr).toContain('  eligible: 0 (common combination 0, excluded: none)\n');
    expect(r.stderr).toContain('  not eligible: inbound 13, internal-address 10, no-sha256 1, no-hostname 1\n');
    expect(r.stderr).toContain('  alerts: 0 (none); repeats folded into them: 0\n');
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    // Enrolment is each host's first day in the baseline's history: the log spans minutes.
    expect(r.stderr).toContain(
      '  hosts still learning: default/MORDORDC.theshire.local 14 days left, default/WORKSTATION5.theshire.local 14 days left\n',
    );
    expect(r.stderr).toContain(
      '  note: hosts still learning are scored once enrolled 14 days; to score them now: a baseline built from older logs (its history of these hosts starts less than 14 days before); or --state DIR, to keep enrolment across runs; or --activation-days N (now 14, the default)\n',
    );
    expect(r.code).toBe(0);
  });

  it("notepad's injected connection to 10.10.10.5 is internal-address even when notepad is common and the host active", async () => {
    const common = commonProcessBaseline('notepad-common.db', NOTEPAD_SHA256, Date.UTC(2020, 9, 14));
    const r = await rarecon(['score', '--activation-days', '0', '--baseline', common, COVENANT]);
    expect(r.stdout).toBe('');
    // Were 10.10.10.5 taken as external, notepad (no name for it) would be no-hostname 2.
    expect(r.stderr).toContain('  not eligible: inbound 13, internal-address 10, no-sha256 1, no-hostname 1\n');
    expect(r.stderr).toContain('  eligible: 0 ');
    expect(r.stderr).not.toContain('hosts still learning');
    expect(r.code).toBe(0);
  });
});

describe('the empire dataset (DCOM ShellWindows stager)', () => {
  const baseline = join(tmp, 'empire.db');
  let build: Awaited<ReturnType<typeof rarecon>>;

  beforeAll(async () => {
    build = await rarecon(['baseline', 'build', '--unit', 'host', '--version', '4', '--out', baseline, EMPIRE]);
  });

  it('baseline build learns 80 process runs and 51 hashed connections of WORKSTATION6', () => {
    expect(build.stderr).toContain(
      `rarecon baseline build: 32,706 lines read from 1 file (182 records, 12,410 joined into them, 20,114 skipped, 0 blank, 0 errors); 182 records, 131 sightings -> ${baseline}\n`,
    );
    expect(build.stderr).toContain('  version 4, unit host, 1 observers, window 2020-09-18 .. 2020-09-19\n');
    // msoia -> live.com, smartscreen and svchost and Teams -> microsoft.com,
    // backgroundTaskHost -> microsoftonline.com, all on 443.
    expect(build.stderr).toContain('  46 processes, 5 combinations\n');
    expect(build.code).toBe(0);
  });

  it('score against its own one-host baseline: no process is globally common', async () => {
    const r = await rarecon(['score', '--baseline', baseline, EMPIRE]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^rarecon score: 32,706 lines read from 1 file in \d+\.\d s: 182 records \(80 connections, 22 DNS answers, 80 process runs\), 12,410 joined into them, 20,114 skipped, 0 blank, 0 errors\n/,
    );
    expect(r.stderr).toContain('  eligible: 0 (common combination 0, excluded: none)\n');
    expect(r.stderr).toContain('  not eligible: process-not-common 41, internal-address 29, inbound 6, no-sha256 4\n');
    expect(r.stderr).toContain('  alerts: 0 (none); repeats folded into them: 0\n');
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    expect(r.stderr).toContain(
      '  hosts still learning: default/WORKSTATION5.theshire.local 14 days left, default/WORKSTATION6.theshire.local 14 days left\n',
    );
    expect(r.code).toBe(0);
  });

  it('both datasets in one run add up', async () => {
    const r = await rarecon(['score', '--baseline', baseline, COVENANT, EMPIRE]);
    expect(r.stderr).toMatch(
      /^rarecon score: 34,032 lines read from 2 files in \d+\.\d s: 213 records \(105 connections, 24 DNS answers, 84 process runs\), 12,797 joined into them, 21,022 skipped, 0 blank, 0 errors\n/,
    );
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    expect(r.code).toBe(0);
    // WORKSTATION5 is in both, the covenant day a month after the empire one: read newest first,
    // the older file is still joined in its own time order, so every connection is judged as alone.
    const reasons = (stderr: string): Record<string, number> => {
      const line = /^ {2}not eligible: (.*)$/m.exec(stderr)?.[1] ?? '';
      return Object.fromEntries(line.split(', ').map((p) => [p.replace(/ [\d,]+$/, ''), Number(p.replace(/^.* /, ''))]));
    };
    const alone = [await rarecon(['score', '--baseline', baseline, COVENANT]), await rarecon(['score', '--baseline', baseline, EMPIRE])];
    const summed: Record<string, number> = {};
    for (const one of alone) for (const [k, v] of Object.entries(reasons(one.stderr))) summed[k] = (summed[k] ?? 0) + v;
    expect(reasons(r.stderr)).toEqual(summed);
  });
});

// smartscreen.exe on WORKSTATION6: created at 17:06:33.032 (line 11735); opened with
// PROCESS_ALL_ACCESS (0x1fffff) by svchost.exe and csrss.exe (Event 10, lines 11736,
// 11737, 11743) and with 0x1478 (includes PROCESS_VM_WRITE) by svchost.exe and lsass.exe
// (lines 11778, 11816), all from C:\Windows\System32; its own DNS query for
// checkappexec.microsoft.com answered 70.37.74.6 at 17:06:33.342 (Event 22, line 12166);
// it connected to 70.37.74.6:443 at 17:06:33.383 (Event 3, line 12090). This NXLog export
// carries no ProcessId, so the pid is not known. Its image is signed "Microsoft Windows"
// (Event 7 of its own image). The first edition called it injected; the routine-access
// rule of the second edition does not.
describe('routine access is no injection on a real Sysmon case (empire, smartscreen.exe)', () => {
  let baseline: string;
  let alerts: ReturnType<typeof jsonLines>;
  let stderr: string;
  let code: number;

  beforeAll(async () => {
    baseline = commonProcessBaseline('smartscreen-common.db', SMARTSCREEN_SHA256, Date.UTC(2020, 8, 20));
    const r = await rarecon(['score', '--activation-days', '0', '--baseline', baseline, EMPIRE]);
    alerts = jsonLines(r.stdout);
    stderr = r.stderr;
    code = r.code;
  });

  it('raises exactly one alert, Medium (very rare, known vendor), not the injected-thread variation', () => {
    expect(code).toBe(0);
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    expect(a.severity).toBe('Medium');
    expect(a.finding_info.title).toBe(VERY_RARE_NAME);
    expect(a.finding_info.types).toEqual(['very-rare', 'known-vendor', 'rare', 'uncommon']);
    expect(a.unmapped.injection).toEqual({ injected: false, indicators: [] });
    expect(a.device).toMatchObject({ uid: 'WORKSTATION6.theshire.local', hostname: 'WORKSTATION6.theshire.local' });
  });

  it('names the process, its sha256, and the destination by the DNS answer the process got', () => {
    const a = alerts[0]!;
    const p = a.actor.process;
    expect(p.file.path).toBe('C:\\Windows\\System32\\smartscreen.exe');
    expect(p.file.hashes).toEqual([{ algorithm_id: 3, algorithm: 'SHA-256', value: SMARTSCREEN_SHA256 }]);
    expect(p.cmd_line).toBe('C:\\Windows\\System32\\smartscreen.exe -Embedding');
    expect(p.parent_process).toMatchObject({ pid: 960, file: { path: 'C:\\Windows\\System32\\svchost.exe' } });
    expect(a.evidences[0].dst_endpoint).toEqual({
      ip: '70.37.74.6',
      port: 443,
      hostname: 'checkappexec.microsoft.com',
      domain: 'microsoft.com',
    });
    expect(a.finding_info.first_seen_time).toBe(Date.UTC(2020, 8, 18, 17, 6, 33, 383));
    expect(a.enrichments[0].data).toMatchObject({ process_observers: 12, combo_observers: 0, baseline_version: 5 });
  });

  it('says so in the summary: one eligible event, the other 79 connections not', () => {
    expect(stderr).toContain('  eligible: 1 (common combination 0, excluded: none)\n');
    expect(stderr).toContain('  not eligible: process-not-common 40, internal-address 29, inbound 6, no-sha256 4\n');
    expect(stderr).toContain(`  alerts: 1 (${VERY_RARE_NAME} 1); repeats folded into them: 0
`);
  });

  it('renders the same alert in ECS, without T1055 now that routine access is no injection', async () => {
    const r = await rarecon(['score', '--format', 'ecs', '--activation-days', '0', '--baseline', baseline, EMPIRE]);
    const ecs = jsonLines(r.stdout);
    expect(ecs).toHaveLength(1);
    expect(ecs[0]).toMatchObject({
      event: { kind: 'alert', id: alerts[0]!.finding_info.uid },
      rule: { name: VERY_RARE_NAME },
      process: { executable: 'C:\\Windows\\System32\\smartscreen.exe' },
      destination: { ip: '70.37.74.6', port: 443, registered_domain: 'microsoft.com' },
    });
    expect(ecs[0]!.threat.technique.id).toEqual(['T1071']);
  });

  it('without --activation-days 0 the host is still learning and nothing alerts', async () => {
    const r = await rarecon(['score', '--baseline', baseline, EMPIRE]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('  learning: host-learning 1\n');
    expect(r.stderr).toContain('default/WORKSTATION6.theshire.local 14 days left');
    // This baseline (like a server's) records no host history: the summary says what would.
    expect(r.stderr).toContain(
      "to score them now: a baseline built with `rarecon baseline build --unit host` from the fleet's earlier logs",
    );
    expect(r.code).toBe(0);
  });
});

// covenant-notepad-external.json: the covenant file's events of notepad.exe (wuauclt.exe
// creates it and a remote thread in it, then notepad connects out), its connection moved
// from 10.10.10.5 to 203.0.113.5 and named by an Event 22, and NXLog's system ProcessID
// (2804, Sysmon's service) added to every line as other exports carry it
// (test/fixtures/sysmon/README.md).
describe('the injected-thread variation on a real Sysmon case (covenant notepad.exe, to an external address)', () => {
  const FIXTURE = join(fixtures, 'covenant-notepad-external.json');
  let baseline: string;

  /** The fixture with wuauclt's CreateRemoteThread stamped `deltaMs` after notepad's connection (written after it, as it arrived). */
  function threadAfterConnection(deltaMs: number): string {
    const lines = readFileSync(FIXTURE, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>);
    const i = lines.findIndex((o) => o.EventID === 8);
    const [thread] = lines.splice(i, 1);
    const connectMs = Date.parse(lines.find((o) => o.EventID === 3)!.UtcTime.replace(' ', 'T') + 'Z');
    thread!.UtcTime = new Date(connectMs + deltaMs).toISOString().replace('T', ' ').replace('Z', '');
    lines.push(thread!);
    const path = join(tmp, `notepad-thread-${deltaMs}.json`);
    writeFileSync(path, lines.map((o) => JSON.stringify(o)).join('\n') + '\n');
    return path;
  }

  beforeAll(() => {
    baseline = commonProcessBaseline('notepad-common-2.db', NOTEPAD_SHA256, Date.UTC(2020, 9, 14));
  });

  it("raises one High alert whose only indicator is wuauclt's CreateRemoteThread, naming notepad's own pid", async () => {
    const r = await rarecon(['score', '--activation-days', '0', '--baseline', baseline, FIXTURE]);
    expect(r.code, r.stderr).toBe(0);
    const alerts = jsonLines(r.stdout);
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    expect(a.finding_info.title).toBe(INJECTED_NAME);
    expect(a.finding_info.types).toEqual(['injected-thread', 'very-rare', 'known-vendor', 'rare', 'uncommon']);
    const attacks = a.finding_info.attacks as Array<{ tactic: { uid: string }; technique: { uid: string } }>;
    expect(attacks.map((x) => [x.tactic.uid, x.technique.uid])).toEqual([
      ['TA0011', 'T1071'],
      ['TA0005', 'T1055'],
    ]);
    // wuauclt's full-access open of its new child, and those of svchost, csrss and lsass from System32, are routine.
    expect(a.unmapped.injection).toEqual({ injected: true, indicators: ['sysmon-create-remote-thread:wuauclt.exe'] });
    // The event's own ProcessId (2368), not NXLog's system ProcessID (2804).
    expect(a.actor.process.pid).toBe(2368);
    expect(a.actor.process.parent_process).toMatchObject({ pid: 6208, file: { path: 'C:\\Windows\\System32\\wuauclt.exe' } });
    expect(a.evidences[0].dst_endpoint).toEqual({
      ip: '203.0.113.5',
      port: 80,
      hostname: 'update.example-c2.net',
      domain: 'example-c2.net',
    });
    expect(r.stderr).toContain('  joined into records: Sysmon event 10 6, Sysmon event 8 1, Sysmon event 7 1\n');
    const ecs = jsonLines((await rarecon(['score', '--format', 'ecs', '--activation-days', '0', '--baseline', baseline, FIXTURE])).stdout);
    expect(ecs[0]!.threat.technique.id).toEqual(['T1071', 'T1055']);
    expect(ecs[0]).toMatchObject({ process: { pid: 2368 }, rule: { name: INJECTED_NAME } });
  });

  it('a CreateRemoteThread stamped 9 s after the connection still counts (the iexplore case: 9.3 s); 11 s after does not', async () => {
    const at9 = await rarecon(['score', '--activation-days', '0', '--baseline', baseline, threadAfterConnection(9_300)]);
    expect(jsonLines(at9.stdout).map((a) => a.finding_info.title)).toEqual([INJECTED_NAME]);
    const at11 = await rarecon(['score', '--activation-days', '0', '--baseline', baseline, threadAfterConnection(11_000)]);
    const late = jsonLines(at11.stdout);
    expect(late.map((a) => a.finding_info.title)).toEqual([VERY_RARE_NAME]);
    expect(late[0]!.unmapped.injection).toEqual({ injected: false, indicators: [] });
  });
});
