/* eslint-disable @typescript-eslint/no-explicit-any -- rendered findings, read field by field in assertions */
// Every rendering variation of an alert, validated against OCSF 1.3.0 with the OCSF
// server's rules (test/support/ocsf-validate.ts, schema in test/fixtures/ocsf-1.3.0).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toOcsf } from '../../src/model/ocsf.js';
import { ALERT_CASES as CASES, scoredAlerts, variant } from '../support/alert-cases.js';
import { fleetDetection, health } from '../support/alerts.js';
import { loadOcsfSchema, validateOcsf, type ValidationResult } from '../support/ocsf-validate.js';

const schema = loadOcsfSchema();

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
    expect(f.actor.process.file).toMatchObject({
      name: 'curl',
      type_id: 1,
      company_name: 'Debian',
      product: { name: 'curl', version: '7.88.1-10+deb12u8' },
    });
    expect(f.actor.process.file.signature).toBeUndefined();
    expect(f.actor.process.loaded_modules).toEqual(['/tmp/libx.so']);
    expect(f.unmapped).toEqual({ injection: { injected: true, indicators: ['anon-exec-frame:0x1'] }, signer_status: 'valid' });
    expect(f.observables.map((o: any) => o.name)).toContain('actor.process.file.hashes[0].value');
    const win = toOcsf(
      variant((d) => (d.process.signer = { status: 'valid', vendor: 'Microsoft Windows', subject: 'Microsoft Windows' })),
    ) as any;
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
    const findings = await scoredAlerts('ocsf', tmp);
    const bad = findings.flatMap((f, i) => validateOcsf(schema, f).errors.map((e) => `finding ${i}: ${e.type} at ${e.path}: ${e.message}`));
    expect(bad).toEqual([]);
  });
});
