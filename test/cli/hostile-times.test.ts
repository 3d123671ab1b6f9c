/* eslint-disable @typescript-eslint/no-explicit-any -- parsed JSON alerts, read field by field in assertions */
// One record with a time beyond what a Date holds (1e21, 8640000000000001 ms)
// among a day of ordinary ones: `rarecon score` writes every alert of the run
// in either format and with either reader, instead of dying in toISOString
// ("internal error: RangeError: Invalid time value") with none written.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rarecon, REPO } from '../support/cli.js';

const golden = join(REPO, 'test', 'golden', 'basic');
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-hostile-times-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const baseline = join(tmp, 'base.db');
const input = join(tmp, 'today.jsonl');

beforeAll(async () => {
  const b = await rarecon(['baseline', 'build', '--unit', 'host', '--version', '7', '--out', baseline, join(golden, 'history.jsonl')]);
  expect(b.code, b.stderr).toBe(0);
  const today = readFileSync(join(golden, 'today.jsonl'), 'utf8');
  // An ordinary alerting connection of the golden day, at times no Date holds, each to its own name.
  const alerting = JSON.parse(today.split('\n').find((l) => l.includes('api.uncommon9.net'))!) as Record<string, any>;
  const hostile = [1e21, 8_640_000_000_000_001].map((t) =>
    JSON.stringify({ ...alerting, time: t, remote: { ...alerting.remote, hostname: `t${t}.uncommon9.net` } }),
  );
  writeFileSync(input, today + hostile.join('\n') + '\n');
});

describe('rarecon score with a record beyond the Date range', () => {
  for (const reader of [[], ['--js-reader']]) {
    it(`writes every alert of the run as ECS and as OCSF${reader.length > 0 ? ' (JavaScript reader)' : ''}`, async () => {
      const config = ['--config', join(golden, 'config.yaml')];
      const [ocsf, ecs] = await Promise.all(
        (['ocsf', 'ecs'] as const).map((f) => rarecon(['score', '--baseline', baseline, ...config, '--format', f, ...reader, input])),
      );
      for (const r of [ocsf!, ecs!]) {
        expect(r.stderr).not.toContain('internal error');
        expect(r.code, r.stderr).toBe(0);
      }
      const ocsfAlerts = jsonLines(ocsf!.stdout);
      const ecsAlerts = jsonLines(ecs!.stdout);
      // The golden day's 17 alerts at least, and the same alerts in both formats.
      expect(ocsfAlerts.length).toBeGreaterThanOrEqual(17);
      expect(ecsAlerts.map((a) => a.event.id)).toEqual(ocsfAlerts.map((a) => a.finding_info.uid));
      for (const a of ecsAlerts) {
        // A time a Date cannot hold has no text: the field is left out, every other one is a real time.
        if (a['@timestamp'] !== undefined) expect(new Date(a['@timestamp']).toISOString()).toBe(a['@timestamp']);
      }
    });
  }
});
