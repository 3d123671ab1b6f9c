/* eslint-disable @typescript-eslint/no-explicit-any -- parsed JSON alerts, read field by field in assertions */
// Golden tests of the scorer through the CLI: input logs + baseline -> exact alerts.
// The cases are described one a line in basic/today.jsonl (the `note` field).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rarecon, REPO } from '../support/cli.js';

const dir = join(REPO, 'test', 'golden', 'basic');
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-golden-'));
const baseline = join(tmp, 'base.db');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Fields that change with the release, not with the scoring. */
function stable(rec: Record<string, any>): Record<string, any> {
  const copy = structuredClone(rec);
  if (copy.metadata?.product) copy.metadata.product.version = 'X';
  if (copy.observer) copy.observer.version = 'X';
  return copy;
}

let ocsf: Array<Record<string, any>> = [];
let stderr = '';

beforeAll(async () => {
  const build = await rarecon(['baseline', 'build', '--unit', 'host', '--version', '7', '--out', baseline, join(dir, 'history.jsonl')]);
  expect(build.stderr).toContain('12 observers');
  expect(build.code).toBe(0);
  const scored = await rarecon(['score', '--baseline', baseline, '--config', join(dir, 'config.yaml'), join(dir, 'today.jsonl')]);
  expect(scored.code).toBe(0);
  ocsf = jsonLines(scored.stdout);
  stderr = scored.stderr;
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(join(dir, 'expected.ocsf.jsonl'), ocsf.map((r) => JSON.stringify(stable(r))).join('\n') + '\n');
  }
});

describe('golden: basic fleet', () => {
  it('gives exactly the expected OCSF findings', () => {
    const expected = jsonLines(readFileSync(join(dir, 'expected.ocsf.jsonl'), 'utf8'));
    expect(ocsf.map(stable)).toEqual(expected);
  });

  it('raises one alert per case that should alert, with the right variation, severity and count', () => {
    const seen = ocsf.map((f) => [
      f.device.uid,
      f.evidences[0].dst_endpoint.domain,
      f.evidences[0].dst_endpoint.port,
      f.severity,
      f.finding_info.types.join('+'),
      f.count,
    ]);
    expect(seen).toEqual([
      ['h01', 'uncommon9.net', 443, 'Informational', 'uncommon', 1],
      ['h04', 'uncommon4.net', 443, 'Informational', 'uncommon', 1],
      ['h01', 'rare3.net', 443, 'Low', 'rare+uncommon', 1],
      ['h01', 'veryrare1.net', 443, 'Medium', 'very-rare+rare+uncommon', 3],
      ['h01', 'unseen-new.example', 443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h01', 'popular.com', 8443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h02', 'uncommon4.net', 443, 'High', 'injected-thread+uncommon', 1],
      ['h03', 'uncommon4.net', 443, 'Medium', 'known-vendor+uncommon', 1],
      ['h03', 'unseen-new.example', 443, 'Medium', 'very-rare+known-vendor+rare+uncommon', 1],
      ['h04', 'rare3.net', 443, 'Low', 'rare+uncommon', 1],
      ['h01', 'unseen-new.example', 443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h01', 'dns-only.example', 443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h01', 'evil.github.io', 443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h01', 'xn--bcher-kva.example', 443, 'Medium', 'very-rare+rare+uncommon', 1],
      ['h03', 'rare2.net', 8443, 'Low', 'rare+uncommon', 2],
      ['h03', 'rare2.net', 8443, 'High', 'injected-thread+rare+uncommon', 1],
      ['h01', 'veryrare1.net', 443, 'Medium', 'very-rare+rare+uncommon', 1],
    ]);
  });

  it('maps the injected variation to T1055 as well as T1071', () => {
    const high = ocsf.filter((f) => f.severity_id === 4);
    expect(high).toHaveLength(2);
    for (const f of high) {
      expect(f.finding_info.attacks.map((a: any) => a.technique.uid)).toEqual(['T1071', 'T1055']);
      expect(f.finding_info.title).toBe('Globally uncommon root-domain port combination by a common process (sha256) from an injected thread');
    }
  });

  it('summarises on stderr what was read, skipped and raised', () => {
    expect(stderr).toMatch(
      /^rarecon score: 42 lines read from 1 file in \d+\.\d s: 42 records \(36 connections, 1 DNS answer, 5 process runs\), 0 joined into them, 0 skipped, 0 blank, 0 errors\n/,
    );
    expect(stderr).toMatch(/internal-address 4/);
    expect(stderr).toMatch(/no-hostname 2/);
    expect(stderr).toMatch(/process-not-common 1/);
    expect(stderr).toMatch(/host-learning 1/);
    expect(stderr).toMatch(/excluded: domain-suffix 1/);
    expect(stderr).toMatch(/alerts: 17 /);
    // h-new was enrolled 6 days before its last record today (its own clock), and the baseline's history does not know it.
    expect(stderr).toMatch(/hosts still learning: o1\/h-new 9 days left\n/);
    expect(stderr).toContain(
      '  note: hosts still learning are scored once enrolled 14 days; to score them now: a baseline built from logs that hold these hosts under the same host ids',
    );
    expect(stderr).toMatch(/errors: 0/);
  });

  it('renders the same alerts as ECS on request', async () => {
    const r = await rarecon(['score', '--format', 'ecs', '--baseline', baseline, '--config', join(dir, 'config.yaml'), join(dir, 'today.jsonl')]);
    const ecs = jsonLines(r.stdout);
    expect(ecs).toHaveLength(ocsf.length);
    expect(ecs[0]).toMatchObject({
      event: { kind: 'alert', id: ocsf[0]!.finding_info.uid },
      rule: { name: 'Globally uncommon root-domain port combination by a common process (sha256)' },
      threat: { tactic: { id: ['TA0011'] }, technique: { id: ['T1071'] } },
      rarecon: { count: 1 },
      destination: { port: 443, registered_domain: 'uncommon9.net' },
      process: { executable: '/usr/bin/curl' },
    });
  });

  it("with --activation-days 32 every host is still learning (the baseline's history starts 30-31 days before) and nothing alerts", async () => {
    const r = await rarecon(['score', '--activation-days', '32', '--baseline', baseline, join(dir, 'today.jsonl')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/host-learning \d+/);
    expect(r.stderr).toMatch(/hosts still learning: o1\/h-new 27 days left, o1\/h01 1 day left, o1\/h02 2 days left, o1\/h03 2 days left, o1\/h04 2 days left\n/);
    expect(r.stderr).toContain(
      "to score them now: a baseline built from logs that hold the 1 of them its history does not know under the same host ids (its history records each host's first day); or --state DIR, to keep enrolment across runs; or --activation-days N (now 32, from the command line)",
    );
  });
});
