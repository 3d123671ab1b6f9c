/* eslint-disable @typescript-eslint/no-explicit-any -- rendered findings, read field by field in assertions */
// Every rendering variation of an alert, validated against OCSF 1.3.0 with the OCSF
// server's rules (test/support/ocsf-validate.ts, schema in test/fixtures/ocsf-1.3.0).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import type { DetectionAlert } from '../../src/model/alert.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { VARIATIONS } from '../../src/model/alert.js';
import { toOcsf } from '../../src/model/ocsf.js';
import { detection, fleetDetection, health } from '../support/alerts.js';
import { jsonLines, rarecon, REPO } from '../support/cli.js';
import { loadOcsfSchema, validateOcsf, type ValidationResult } from '../support/ocsf-validate.js';

const schema = loadOcsfSchema();
const SMARTSCREEN_SHA256 = '533a950b1b8a63226573e93604c11c241ab1ae34e1be47d9919882a1681acb42';
const NOTEPAD_SHA256 = 'e5d90beeb6f13f4613c3153dabbd1466f4a062b7252d931f37210907a7f914f7';

function variant(over: (d: DetectionAlert) => void, base = detection(1)): DetectionAlert {
  const d = structuredClone(base);
  over(d);
  return d;
}

/** The alert shapes a renderer meets: each variation, every signer kind, missing ids, parents, IPv6, UDP... */
const CASES: Array<[string, DetectionAlert]> = [
  ...VARIATIONS.map((v): [string, DetectionAlert] => [
    `variation ${v.id}`,
    variant((d) => Object.assign(d, { variation: v.id, name: v.name, severity: v.severity, severityId: v.severityId, variationsHeld: [v.id] })),
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
      Object.assign(d.process, { pid: 0, tid: null, uid: '{b1b1b1b1-0000-1111-2222-333333333333}', path: 'C:\\Windows\\System32\\svchost.exe' });
    }),
  ],
  ['Sysmon process without pid nor guid', variant((d) => Object.assign(d.process, { pid: 0, uid: null }))],
  ['no path, only a hash', variant((d) => Object.assign(d.process, { path: null }))],
  ['no hash, only a path', variant((d) => Object.assign(d.process, { sha256: null }))],
  ['no user, no command line, no thread', variant((d) => Object.assign(d.process, { user: null, cmdline: null, tid: null }))],
  ['dpkg verified', variant((d) => (d.process.signer = { status: 'valid', vendor: 'Debian', subject: 'Debian package curl 7.88.1-10+deb12u8' }))],
  [
    'dpkg file differs',
    variant((d) => (d.process.signer = { status: 'invalid', vendor: 'Debian', subject: 'Debian package curl 7.88.1-10 (file differs from the package)' })),
  ],
  [
    'dpkg without checksum',
    variant((d) => (d.process.signer = { status: 'unknown', vendor: null, subject: 'Debian package foo (no recorded checksum)' })),
  ],
  [
    'rpm verified with key',
    variant((d) => (d.process.signer = { status: 'valid', vendor: 'Red Hat, Inc.', subject: 'Red Hat, Inc. package bash 5.1.8-6.el9 (key 199e2f91fd431d51)' })),
  ],
  [
    'Authenticode valid',
    variant((d) => (d.process.signer = { status: 'valid', vendor: 'Microsoft Windows', subject: 'Microsoft Windows' })),
  ],
  [
    'Authenticode invalid',
    variant((d) => (d.process.signer = { status: 'invalid', vendor: 'Evil Corp', subject: 'Evil Corp' })),
  ],
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

function problems(r: ValidationResult): string[] {
  return [...r.errors, ...r.warnings].map((f) => `${f.type} at ${f.path}: ${f.message}`);
}

describe('OCSF 1.3.0 Detection Finding', () => {
  it.each(CASES)('%s: no error and no warning', (_name, alert) => {
    const r = validateOcsf(schema, JSON.parse(JSON.stringify(toOcsf(alert))));
    expect(problems(r)).toEqual([]);
  });

  it('the health alert: no error and no warning', () => {
    expect(problems(validateOcsf(schema, JSON.parse(JSON.stringify(toOcsf(health(2))))))).toEqual([]);
  });

  it('leaves out only these recommended attributes (what rarecon cannot know)', () => {
    const r = validateOcsf(schema, JSON.parse(JSON.stringify(toOcsf(fleetDetection(0)))), { warnRecommended: true });
    expect(r.errors).toEqual([]);
    expect(r.warnings.map((w) => w.path).sort()).toEqual(
      [
        'actor.process.file.ext',
        'actor.process.file.signature.certificate',
        'actor.process.parent_process.uid',
        'metadata.product.uid',
        'actor.process.parent_process.created_time',
        'actor.process.parent_process.file.ext',
        'actor.process.parent_process.file.hashes',
        'actor.process.parent_process.parent_process',
        'actor.process.parent_process.user',
        'actor.process.user.type_id',
        'actor.process.user.uid',
        'actor.user',
        'device.instance_uid',
        'device.interface_name',
        'device.interface_uid',
        'device.org.name',
        'device.org.ou_name',
        'device.owner',
        'device.region',
        'evidences[0].actor',
        'evidences[0].api',
        'evidences[0].connection_info.uid',
        'evidences[0].container',
        'evidences[0].database',
        'evidences[0].databucket',
        'evidences[0].device',
        'evidences[0].dst_endpoint.instance_uid',
        'evidences[0].dst_endpoint.interface_name',
        'evidences[0].dst_endpoint.interface_uid',
        'evidences[0].dst_endpoint.name',
        'evidences[0].dst_endpoint.owner',
        'evidences[0].dst_endpoint.svc_name',
        'evidences[0].dst_endpoint.type_id',
        'evidences[0].dst_endpoint.uid',
        'evidences[0].email',
        'evidences[0].file',
        'evidences[0].job',
        'evidences[0].process.uid',
        'evidences[0].process.file.ext',
        'evidences[0].process.file.signature.certificate',
        'evidences[0].process.parent_process.created_time',
        'evidences[0].process.parent_process.file.ext',
        'evidences[0].process.parent_process.file.hashes',
        'evidences[0].process.parent_process.parent_process',
        'evidences[0].process.parent_process.uid',
        'evidences[0].process.parent_process.user',
        'evidences[0].process.user.type_id',
        'evidences[0].process.user.uid',
        'evidences[0].query',
        'evidences[0].src_endpoint.hostname',
        'evidences[0].src_endpoint.instance_uid',
        'evidences[0].src_endpoint.interface_name',
        'evidences[0].src_endpoint.interface_uid',
        'evidences[0].src_endpoint.name',
        'evidences[0].src_endpoint.owner',
        'evidences[0].src_endpoint.svc_name',
        'evidences[0].src_endpoint.type_id',
        'evidences[0].src_endpoint.uid',
        'evidences[0].url',
        'evidences[0].user',
        'actor.process.uid',
        'enrichments[0].created_time',
        'enrichments[0].short_desc',
        'enrichments[0].src_url',
        'metadata.original_time',
        'resources',
        'status_code',
        'status_detail',
      ].sort(),
    );
  });

  it('maps the evidence to its OCSF homes', () => {
    const f = toOcsf(
      variant((d) => {
        d.process.signer = { status: 'valid', vendor: 'Debian', subject: 'Debian package curl 7.88.1-10+deb12u8' };
        d.process.unusualLibraries = ['/tmp/libx.so'];
        d.injection = { injected: true, indicators: ['anon-exec-frame:0x1'] };
      }),
    ) as any;
    expect(f.metadata.profiles).toEqual(['host']);
    expect(f.actor.process.name).toBe('curl');
    expect(f.actor.process.file).toMatchObject({ name: 'curl', type_id: 1, company_name: 'Debian', product: { name: 'curl', version: '7.88.1-10+deb12u8' } });
    expect(f.actor.process.file.signature).toBeUndefined();
    expect(f.actor.process.loaded_modules).toEqual(['/tmp/libx.so']);
    expect(f.unmapped).toEqual({ injection: { injected: true, indicators: ['anon-exec-frame:0x1'] }, signer_status: 'valid' });
    expect(f.observables.map((o: any) => o.name)).toContain('actor.process.file.hashes[0].value');
    const win = toOcsf(variant((d) => (d.process.signer = { status: 'valid', vendor: 'Microsoft Windows', subject: 'Microsoft Windows' }))) as any;
    expect(win.actor.process.file.signature).toEqual({ algorithm_id: 4, algorithm: 'Authenticode', state_id: 1, state: 'Valid' });
    expect(win.unmapped).toEqual({ injection: { injected: false, indicators: [] } });
    const sysmon = toOcsf(variant((d) => Object.assign(d.process, { pid: 0, uid: '{guid}' }))) as any;
    expect(sysmon.actor.process.pid).toBeUndefined();
    expect(sysmon.actor.process.uid).toBe('{guid}');
  });
});

describe('the validator', () => {
  const good = (): any => JSON.parse(JSON.stringify(toOcsf(fleetDetection(1))));
  const errorTypes = (e: unknown): string[] => validateOcsf(schema, e).errors.map((x) => `${x.type} ${x.path}`);

  it('finds what the OCSF server finds in a broken finding', () => {
    const noProfile = good();
    delete noProfile.metadata.profiles;
    // Without the host profile device and actor are unknown, and so are the observables that name them.
    expect(errorTypes(noProfile)).toEqual([
      'attribute_unknown device',
      'attribute_unknown actor',
      'observable_name_invalid_reference observables[0].name',
      'observable_name_invalid_reference observables[4].name',
      'observable_name_invalid_reference observables[5].name',
      'observable_name_invalid_reference observables[6].name',
    ]);
    const e = good();
    e.actor.process.file.type_id = 42;
    e.actor.process.pid = '4242';
    e.actor.process.file.signature = { vendor_name: 'x', state_id: 1 };
    delete e.finding_info.uid;
    e.type_uid = 200402;
    e.observables.push({ name: 'evidences[0].nowhere', type_id: 1 });
    e.evidences[0].dst_endpoint.port = 70_000;
    expect(errorTypes(e).sort()).toEqual(
      [
        'attribute_enum_value_unknown actor.process.file.type_id',
        'attribute_required_missing actor.process.file.signature.algorithm_id',
        'attribute_required_missing finding_info.uid',
        'attribute_unknown actor.process.file.signature.vendor_name',
        'attribute_value_exceeds_range evidences[0].dst_endpoint.port',
        'attribute_wrong_type actor.process.pid',
        'observable_name_invalid_reference observables[7].name',
        'type_uid_incorrect type_uid',
      ].sort(),
    );
    const noIds = good();
    delete noIds.actor.process.pid;
    expect(errorTypes(noIds)).toEqual(['constraint_failed actor.process']);
  });

  it('warns on a caption that does not match its id', () => {
    const e = good();
    e.actor.process.file.type = 'regular';
    expect(validateOcsf(schema, e).warnings.map((w) => w.type)).toEqual(['attribute_enum_sibling_incorrect']);
  });
});

describe('OCSF from real scoring', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rarecon-ocsf-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('every finding `rarecon score` writes for the golden fleet and the Sysmon datasets validates', async () => {
    const findings: any[] = [];
    const golden = join(REPO, 'test', 'golden', 'basic');
    const base = join(tmp, 'golden.db');
    expect((await rarecon(['baseline', 'build', '--unit', 'host', '--out', base, join(golden, 'history.jsonl')])).code).toBe(0);
    const g = await rarecon(['score', '--baseline', base, '--config', join(golden, 'config.yaml'), join(golden, 'today.jsonl')]);
    expect(g.code).toBe(0);
    findings.push(...jsonLines(g.stdout));
    // The two OTRF datasets against a fleet in which smartscreen.exe and notepad.exe are common
    // and no combination was seen (as in test/cli/sysmon.test.ts): an Authenticode signer,
    // no ProcessId (NXLog), injection indicators.
    const sysmon = ['covenant_lolbin_wuauclt_createremotethread.json.gz', 'empire_dcom_shellwindows_stager.json.gz'].map((f) =>
      join(REPO, 'test', 'fixtures', 'sysmon', f),
    );
    const sbase = join(tmp, 'sysmon.db');
    const windowEndMs = Date.UTC(2020, 8, 20);
    const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    for (const sha256 of [SMARTSCREEN_SHA256, NOTEPAD_SHA256]) {
      for (let h = 0; h < 12; h++) {
        for (const back of [1, 30]) b.add({ observer: `fleet/h${h}`, dayMs: windowEndMs - back * DAY_MS, sha256, rootDomain: null, port: null });
      }
    }
    expect(b.write(sbase, { version: 5, builtAtMs: windowEndMs, windowEndMs }).ok).toBe(true);
    const s = await rarecon(['score', '--activation-days', '0', '--baseline', sbase, ...sysmon]);
    expect(s.code).toBe(0);
    const fromSysmon = jsonLines(s.stdout);
    expect(fromSysmon.length).toBeGreaterThan(0);
    findings.push(...fromSysmon);
    const bad = findings.flatMap((f, i) => validateOcsf(schema, f).errors.map((e) => `finding ${i}: ${e.type} at ${e.path}: ${e.message}`));
    expect(bad).toEqual([]);
  });
});
