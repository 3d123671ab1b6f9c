// The alert shapes a renderer meets, for the OCSF and ECS validation tests.
/* eslint-disable @typescript-eslint/no-explicit-any -- parsed JSON alerts */
import { join } from 'node:path';
import { expect } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import type { DetectionAlert } from '../../src/model/alert.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { jsonLines, rarecon, REPO } from './cli.js';
import { VARIATIONS } from '../../src/model/alert.js';
import { detection, fleetDetection } from './alerts.js';

export function variant(over: (d: DetectionAlert) => void, base = detection(1)): DetectionAlert {
  const d = structuredClone(base);
  over(d);
  return d;
}

/** The alert shapes a renderer meets: each variation, every signer kind, missing ids, parents, IPv6, UDP... */
export const ALERT_CASES: Array<[string, DetectionAlert]> = [
  ...VARIATIONS.map((v): [string, DetectionAlert] => [
    `variation ${v.id}`,
    variant((d) =>
      Object.assign(d, { variation: v.id, name: v.name, severity: v.severity, severityId: v.severityId, variationsHeld: [v.id] }),
    ),
  ]),
  ['the fleet alert (signer, parent, local endpoint)', fleetDetection(3)],
  [
    'injected thread with indicators and unusual libraries',
    variant((d) => {
      Object.assign(d, { variation: 'injected-thread', severityId: 4, severity: 'High', variationsHeld: ['injected-thread', 'very-rare'] });
      d.injection = { injected: true, indicators: ['anon-exec-frame:0x7f1200001000', 'sysmon-create-remote-thread:wuauclt.exe'] };
      d.process.unusualLibraries = ['/tmp/.x/libevil.so', 'C:\\Users\\bob\\AppData\\Local\\Temp\\x.dll'];
    }),
  ],
  [
    'Sysmon process without pid, with ProcessGuid',
    variant((d) => {
      Object.assign(d.process, {
        pid: 0,
        tid: null,
        uid: '{b1b1b1b1-0000-1111-2222-333333333333}',
        path: 'C:\\Windows\\System32\\svchost.exe',
      });
    }),
  ],
  ['Sysmon process without pid nor guid', variant((d) => Object.assign(d.process, { pid: 0, uid: null }))],
  ['no path, only a hash', variant((d) => Object.assign(d.process, { path: null }))],
  ['no hash, only a path', variant((d) => Object.assign(d.process, { sha256: null }))],
  ['no user, no command line, no thread', variant((d) => Object.assign(d.process, { user: null, cmdline: null, tid: null }))],
  [
    'dpkg verified',
    variant((d) => (d.process.signer = { status: 'valid', vendor: 'Debian', subject: 'Debian package curl 7.88.1-10+deb12u8' })),
  ],
  [
    'dpkg file differs',
    variant(
      (d) =>
        (d.process.signer = {
          status: 'invalid',
          vendor: 'Debian',
          subject: 'Debian package curl 7.88.1-10 (file differs from the package)',
        }),
    ),
  ],
  [
    'dpkg without checksum',
    variant((d) => (d.process.signer = { status: 'unknown', vendor: null, subject: 'Debian package foo (no recorded checksum)' })),
  ],
  [
    'rpm verified with key',
    variant(
      (d) =>
        (d.process.signer = {
          status: 'valid',
          vendor: 'Red Hat, Inc.',
          subject: 'Red Hat, Inc. package bash 5.1.8-6.el9 (key 199e2f91fd431d51)',
        }),
    ),
  ],
  [
    'Authenticode valid',
    variant((d) => (d.process.signer = { status: 'valid', vendor: 'Microsoft Windows', subject: 'Microsoft Windows' })),
  ],
  ['Authenticode invalid', variant((d) => (d.process.signer = { status: 'invalid', vendor: 'Evil Corp', subject: 'Evil Corp' }))],
  ['signer unknown', variant((d) => (d.process.signer = { status: 'unknown', vendor: null, subject: null }))],
  ['parent without pid', variant((d) => (d.process.parent = { pid: null, path: '/usr/bin/bash', cmdline: 'bash' }))],
  ['parent without path', variant((d) => (d.process.parent = { pid: 1, path: null, cmdline: null }))],
  ['process start time', variant((d) => (d.process.startTimeMs = Date.UTC(2026, 9, 1)))],
  [
    'IPv6 over UDP with a local endpoint',
    variant((d) => Object.assign(d.connection, { protocol: 'udp', ip: '2001:db8::10', localIp: '2001:db8::5', localPort: 5353 })),
  ],
  ['local address without port', variant((d) => Object.assign(d.connection, { localIp: '10.0.0.5', localPort: null }))],
  ['host without a name', variant((d) => (d.host = { id: 'h9', org: 'default' }))],
  ['a count of repeats', variant((d) => Object.assign(d, { count: 17, lastSeenMs: d.firstSeenMs + 3_600_000 }))],
];

const SMARTSCREEN_SHA256 = '533a950b1b8a63226573e93604c11c241ab1ae34e1be47d9919882a1681acb42';
const NOTEPAD_SHA256 = 'e5d90beeb6f13f4613c3153dabbd1466f4a062b7252d931f37210907a7f914f7';

/**
 * What `rarecon score` writes for the golden fleet, and for the two OTRF Sysmon datasets
 * against a fleet in which smartscreen.exe and notepad.exe are common and no combination
 * was seen (as in test/cli/sysmon.test.ts): an Authenticode signer, no ProcessId (NXLog),
 * injection indicators.
 */
export async function scoredAlerts(format: 'ocsf' | 'ecs', tmp: string): Promise<Array<Record<string, any>>> {
  const out: Array<Record<string, any>> = [];
  const golden = join(REPO, 'test', 'golden', 'basic');
  const base = join(tmp, 'golden.db');
  expect((await rarecon(['baseline', 'build', '--unit', 'host', '--out', base, join(golden, 'history.jsonl')])).code).toBe(0);
  const g = await rarecon([
    'score',
    '--format',
    format,
    '--baseline',
    base,
    '--config',
    join(golden, 'config.yaml'),
    join(golden, 'today.jsonl'),
  ]);
  expect(g.code).toBe(0);
  out.push(...jsonLines(g.stdout));
  const sysmon = ['covenant_lolbin_wuauclt_createremotethread.json.gz', 'empire_dcom_shellwindows_stager.json.gz'].map((f) =>
    join(REPO, 'test', 'fixtures', 'sysmon', f),
  );
  const sbase = join(tmp, 'sysmon.db');
  const windowEndMs = Date.UTC(2020, 8, 20);
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (const sha256 of [SMARTSCREEN_SHA256, NOTEPAD_SHA256]) {
    for (let h = 0; h < 12; h++) {
      for (const back of [1, 30])
        b.add({ observer: `fleet/h${h}`, dayMs: windowEndMs - back * DAY_MS, sha256, rootDomain: null, port: null });
    }
  }
  expect(b.write(sbase, { version: 5, builtAtMs: windowEndMs, windowEndMs }).ok).toBe(true);
  const s = await rarecon(['score', '--format', format, '--activation-days', '0', '--baseline', sbase, ...sysmon]);
  expect(s.code).toBe(0);
  const fromSysmon = jsonLines(s.stdout);
  expect(fromSysmon.length).toBeGreaterThan(0);
  out.push(...fromSysmon);
  return out;
}
