/* eslint-disable @typescript-eslint/no-explicit-any -- rendered documents, read field by field in assertions */
// Every rendering variation of an alert, checked against ECS 8.11's field list
// (test/support/ecs-check.ts, fields in test/fixtures/ecs-8.11).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toEcs } from '../../src/model/ecs.js';
import { ALERT_CASES, scoredAlerts, variant } from '../support/alert-cases.js';
import { fleetDetection, health } from '../support/alerts.js';
import { checkEcs, loadEcsFields } from '../support/ecs-check.js';

const ecs = loadEcsFields();
const render = (a: Parameters<typeof toEcs>[0]): Record<string, any> => JSON.parse(JSON.stringify(toEcs(a))) as Record<string, any>;

describe('ECS 8.11 documents', () => {
  it.each(ALERT_CASES)('%s: every field is ECS or rarecon.*, of its ECS type', (_name, alert) => {
    expect(checkEcs(ecs, render(alert))).toEqual([]);
  });

  it('the health alert too', () => {
    expect(checkEcs(ecs, render(health(1)))).toEqual([]);
  });

  it('puts the evidence where ECS has it', () => {
    const d = render(
      variant((x) => {
        Object.assign(x, {
          variation: 'injected-thread',
          severityId: 4,
          severity: 'High',
          variationsHeld: ['injected-thread', 'very-rare'],
        });
        x.process.uid = '{guid}';
      }, fleetDetection(0)),
    );
    expect(d.threat).toEqual({
      framework: 'MITRE ATT&CK',
      tactic: {
        id: ['TA0011', 'TA0005'],
        name: ['Command and Control', 'Defense Evasion'],
        reference: ['https://attack.mitre.org/tactics/TA0011/', 'https://attack.mitre.org/tactics/TA0005/'],
      },
      technique: {
        id: ['T1071', 'T1055'],
        name: ['Application Layer Protocol', 'Process Injection'],
        reference: ['https://attack.mitre.org/techniques/T1071/', 'https://attack.mitre.org/techniques/T1055/'],
      },
    });
    // Elastic's scale: high is 73 (99 is critical).
    expect(d.event).toMatchObject({ severity: 73, kind: 'alert', type: ['info'], dataset: 'rarecon.alerts', module: 'rarecon' });
    expect(d.event.count).toBeUndefined();
    expect(d.rarecon.count).toBe(1);
    expect(d.process).toMatchObject({
      name: 'firefox',
      entity_id: '{guid}',
      code_signature: { exists: true, subject_name: 'Mozilla Corporation', valid: true },
    });
    expect(d.process.code_signature.signing_id).toBeUndefined();
    expect(d.rarecon.prevalence.thresholds).toEqual({
      uncommon_below_observers: 10,
      rare_max_observers: 3,
      very_rare_max_observers: 1,
      common_process_min_observers: 10,
    });
    const pkg = render(
      variant((x) => (x.process.signer = { status: 'valid', vendor: 'Debian', subject: 'Debian package curl 7.88.1-10' })),
    );
    expect(pkg.process.code_signature).toBeUndefined();
    expect(pkg.rarecon.package).toEqual({ name: 'curl', vendor: 'Debian', status: 'valid', version: '7.88.1-10' });
    expect([1, 2, 3, 4].map((s) => render(variant((x) => (x.severityId = s as 1 | 2 | 3 | 4))).event.severity)).toEqual([10, 21, 47, 73]);
  });
});

describe('the ECS check', () => {
  it('finds what is not ECS', () => {
    const d = render(fleetDetection(1));
    d.event.count = 3;
    d.event.type = ['connection', 'info'];
    d.threat = [{ tactic: { id: 'TA0011' } }];
    d.labels = { n: 5 };
    d.rarecon.someField = 1;
    d.process.pid = '12';
    d.event.kind = 'finding';
    d.tags = 'rare';
    expect(checkEcs(ecs, d).sort()).toEqual(
      [
        'event.count: not an ECS 8.11.0 field',
        'event.kind: "finding" is not one of ECS\'s values (alert, asset, enrichment, event, metric, state, pipeline_error, signal)',
        'event.type: "connection" is not expected for event.category intrusion_detection',
        'labels.n: labels are keywords (strings)',
        'process.pid: a long is a whole number, got "12"',
        "rarecon.someField: rarecon's own field names are snake_case",
        'tags: ECS normalizes this field to an array',
        'threat: not an ECS 8.11.0 field',
      ].sort(),
    );
  });
});

describe('ECS from real scoring', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rarecon-ecs-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('every document `rarecon score --format ecs` writes for the golden fleet and the Sysmon datasets checks', async () => {
    const docs = await scoredAlerts('ecs', tmp);
    expect(docs.flatMap((d, i) => checkEcs(ecs, d).map((p) => `document ${i}: ${p}`))).toEqual([]);
  });
});
