// The two shared OTRF Sysmon datasets (test/fixtures/sysmon/README.md) through
// `rarecon baseline build` and `rarecon score`, as a user runs them: what the
// summaries on stderr say, and the injected-thread variation on a real case.
//
// The reader's own counts are asserted in test/sources/replay/sysmon-reader.test.ts;
// here it is what a user sees. The facts were checked against the raw data with
// `zcat test/fixtures/sysmon/<file>.gz | grep ...` (line numbers below are lines of
// the uncompressed file).
import { mkdtempSync, rmSync } from 'node:fs';
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

  it('baseline build learns the four process runs of WORKSTATION5 and no combination', () => {
    expect(build.stderr).toContain(`rarecon baseline build: 31 records, 5 sightings -> ${baseline}\n`);
    expect(build.stderr).toContain('  version 3, unit host, 1 observers, window 2020-10-12 .. 2020-10-13\n');
    expect(build.stderr).toContain('  4 processes, 0 combinations\n');
    expect(build.stderr).toContain('errors: none\n');
    expect(build.code).toBe(0);
  });

  it('score summarises what was read and why nothing was eligible', async () => {
    const r = await rarecon(['score', '--baseline', baseline, COVENANT]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^rarecon score: 31 records read from 1 file in \d+\.\d s \(25 connections, 2 DNS answers, 4 process runs\)\n/,
    );
    // 13 inbound; 10 to ::1, fe80::, 172.18.38.5 and notepad's 10.10.10.5:80; dns.exe's
    // forwarder query to 40.90.4.205:53 has no name; svchost's connection to
    // settings-win.data.microsoft.com has no Event 1, so no sha256.
    expect(r.stderr).toContain('  eligible: 0 (common combination 0, excluded: none)\n');
    expect(r.stderr).toContain('  not eligible: inbound 13, internal-address 10, no-hostname 1, no-sha256 1\n');
    expect(r.stderr).toContain('  alerts: 0 (none); repeats folded into them: 0\n');
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    // Enrolment is the earliest record of each host: the log spans minutes.
    expect(r.stderr).toContain('  hosts still learning: default/mordordc 14 days left, default/workstation5 14 days left\n');
    expect(r.code).toBe(0);
  });

  it("notepad's injected connection to 10.10.10.5 is internal-address even when notepad is common and the host active", async () => {
    const common = commonProcessBaseline('notepad-common.db', NOTEPAD_SHA256, Date.UTC(2020, 9, 14));
    const r = await rarecon(['score', '--activation-days', '0', '--baseline', common, COVENANT]);
    expect(r.stdout).toBe('');
    // Were 10.10.10.5 taken as external, notepad (no name for it) would be no-hostname 2.
    expect(r.stderr).toContain('  not eligible: inbound 13, internal-address 10, no-hostname 1, no-sha256 1\n');
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
    expect(build.stderr).toContain(`rarecon baseline build: 182 records, 131 sightings -> ${baseline}\n`);
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
      /^rarecon score: 182 records read from 1 file in \d+\.\d s \(80 connections, 22 DNS answers, 80 process runs\)\n/,
    );
    expect(r.stderr).toContain('  eligible: 0 (common combination 0, excluded: none)\n');
    expect(r.stderr).toContain('  not eligible: process-not-common 41, internal-address 29, inbound 6, no-sha256 4\n');
    expect(r.stderr).toContain('  alerts: 0 (none); repeats folded into them: 0\n');
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    expect(r.stderr).toContain('  hosts still learning: default/workstation5 14 days left, default/workstation6 14 days left\n');
    expect(r.code).toBe(0);
  });

  it('both datasets in one run add up', async () => {
    const r = await rarecon(['score', '--baseline', baseline, COVENANT, EMPIRE]);
    expect(r.stderr).toMatch(
      /^rarecon score: 213 records read from 2 files in \d+\.\d s \(105 connections, 24 DNS answers, 84 process runs\)\n/,
    );
    expect(r.stderr).toContain('  errors: 0 (none)\n');
    expect(r.code).toBe(0);
  });
});

// smartscreen.exe on WORKSTATION6: created at 17:06:33.032 (line 11735); opened with
// PROCESS_ALL_ACCESS (0x1fffff) by svchost.exe and csrss.exe (Event 10, lines 11736,
// 11737, 11743) and with 0x1478 (includes PROCESS_VM_WRITE) by svchost.exe and lsass.exe
// (lines 11778, 11816); its own DNS query for checkappexec.microsoft.com answered
// 70.37.74.6 at 17:06:33.342 (Event 22, line 12166); it connected to 70.37.74.6:443 at
// 17:06:33.383 (Event 3, line 12090). This NXLog export carries no ProcessId, so the
// pid is not known. Its image is signed "Microsoft Windows" (Event 7 of its own image).
describe('the injected-thread variation on a real Sysmon case (empire, smartscreen.exe)', () => {
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

  it('raises exactly one alert, High, named for the injected thread, and exits 0', () => {
    expect(code).toBe(0);
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    expect(a.severity).toBe('High');
    expect(a.severity_id).toBe(4);
    expect(a.finding_info.title).toBe(INJECTED_NAME);
    // Never-seen combo: very rare (so rare and uncommon); signed by Microsoft: known vendor.
    expect(a.finding_info.types).toEqual(['injected-thread', 'very-rare', 'known-vendor', 'rare', 'uncommon']);
    const attacks = a.finding_info.attacks as Array<{ tactic: { uid: string }; technique: { uid: string } }>;
    expect(attacks.map((x) => [x.tactic.uid, x.technique.uid])).toEqual([
      ['TA0011', 'T1071'],
      ['TA0005', 'T1055'],
    ]);
    expect(a.count).toBe(1);
    expect(a.device).toMatchObject({ uid: 'workstation6', hostname: 'WORKSTATION6.theshire.local' });
  });

  it('names the process, its sha256 and the injections that came before the connection', () => {
    const a = alerts[0]!;
    const p = a.actor.process;
    expect(p.file.path).toBe('C:\\Windows\\System32\\smartscreen.exe');
    expect(p.file.hashes).toEqual([{ algorithm_id: 3, algorithm: 'SHA-256', value: SMARTSCREEN_SHA256 }]);
    expect(p.cmd_line).toBe('C:\\Windows\\System32\\smartscreen.exe -Embedding');
    expect(p.parent_process).toMatchObject({ pid: 960, file: { path: 'C:\\Windows\\System32\\svchost.exe' } });
    expect(a.evidences[0].process.file.hashes[0].value).toBe(SMARTSCREEN_SHA256);
    expect(a.unmapped.injection).toEqual({
      injected: true,
      indicators: [
        'sysmon-process-access:svchost.exe:0x1fffff',
        'sysmon-process-access:csrss.exe:0x1fffff',
        'sysmon-process-access:svchost.exe:0x1478',
        'sysmon-process-access:lsass.exe:0x1478',
      ],
    });
  });

  it('names the destination by the DNS answer the process got', () => {
    const a = alerts[0]!;
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
    expect(stderr).toContain(`  alerts: 1 (${INJECTED_NAME} 1); repeats folded into them: 0\n`);
  });

  it('renders the same alert in ECS with T1055 in threat', async () => {
    const r = await rarecon(['score', '--format', 'ecs', '--activation-days', '0', '--baseline', baseline, EMPIRE]);
    const ecs = jsonLines(r.stdout);
    expect(ecs).toHaveLength(1);
    expect(ecs[0]).toMatchObject({
      event: { kind: 'alert', id: alerts[0]!.finding_info.uid },
      rule: { name: INJECTED_NAME },
      process: { executable: 'C:\\Windows\\System32\\smartscreen.exe' },
      destination: { ip: '70.37.74.6', port: 443, registered_domain: 'microsoft.com' },
    });
    expect(ecs[0]!.threat.technique.id).toEqual(['T1071', 'T1055']);
  });

  it('without --activation-days 0 the host is still learning and nothing alerts', async () => {
    const r = await rarecon(['score', '--baseline', baseline, EMPIRE]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('  learning: host-learning 1\n');
    expect(r.stderr).toContain('default/workstation6 14 days left');
    expect(r.code).toBe(0);
  });
});
