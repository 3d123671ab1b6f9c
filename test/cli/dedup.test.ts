// Dedup as `rarecon score` shows it (DETECTION.md section 6): the key holds
// the alert name, so a lower-severity event raises its own alert beside an
// open higher one; and windows close in each host's own event time, so one
// host's future-dated record changes no other host's alerts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { jsonLines, rarecon } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-cli-dedup-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SHA = 'c0'.repeat(32);
const T = Date.UTC(2026, 9, 1, 9);
const HOUR = 3_600_000;
const baseline = join(tmp, 'base.db');

beforeAll(() => {
  // curl is common (12 hosts); no host ever reached c2.example.net.
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (let h = 0; h < 12; h++)
    for (const back of [1, 30]) b.add({ observer: `acme/fleet${h}`, dayMs: T - back * DAY_MS, sha256: SHA, rootDomain: null, port: null });
  const w = b.write(baseline, { version: 1, builtAtMs: T, windowEndMs: T });
  if (!w.ok) throw new Error(w.error);
});

function conn(timeMs: number, host: string, opts: { injected?: boolean; name?: string } = {}): string {
  return JSON.stringify({
    type: 'connection',
    time: new Date(timeMs).toISOString(),
    host: { id: host, org: 'acme' },
    process: {
      pid: 4100,
      path: '/usr/bin/curl',
      sha256: SHA,
      injection: opts.injected === true ? { injected: true, indicators: ['memfd-exe'] } : { injected: false, indicators: [] },
    },
    protocol: 'tcp',
    remote: { ip: '203.0.113.10', port: 8443, hostname: opts.name ?? 'beacon.c2.example.net' },
  });
}

async function score(name: string, lines: string[]) {
  const f = join(tmp, name);
  writeFileSync(f, lines.join('\n') + '\n');
  const r = await rarecon(['score', '--baseline', baseline, '--activation-days', '0', f]);
  expect(r.code, r.stderr).toBe(0);
  return jsonLines(r.stdout).map((a) => ({
    host: a.device.uid as string,
    severity: a.severity as string,
    count: a.count as number,
    first: a.finding_info.first_seen_time as number,
    last: a.finding_info.last_seen_time as number,
    uid: a.finding_info.uid as string,
  }));
}

describe('rarecon score dedup', () => {
  it('a lower-severity event raises its own alert beside an open higher one, and each takes its own repeats', async () => {
    const alerts = await score('severities.jsonl', [
      conn(T, 'ws1', { injected: true }),
      conn(T + HOUR, 'ws1'),
      conn(T + 2 * HOUR, 'ws1'),
      conn(T + 3 * HOUR, 'ws1', { injected: true }),
    ]);
    expect(alerts.map((a) => [a.severity, a.count, a.first, a.last])).toEqual([
      ['High', 2, T, T + 3 * HOUR],
      ['Medium', 2, T + HOUR, T + 2 * HOUR],
    ]);
  });

  it("a future-dated record of one host changes no other host's alerts", async () => {
    const common = [conn(T, 'ws1'), conn(T, 'ws2'), conn(T + 5 * HOUR, 'ws1'), conn(T + 6 * HOUR, 'ws1')];
    const plain = await score('plain.jsonl', common);
    // ws2's clock is two days ahead for one record, to another name.
    const skewed = await score('skewed.jsonl', [
      ...common.slice(0, 2),
      conn(T + 2 * DAY_MS, 'ws2', { name: 'x.other.example' }),
      ...common.slice(2),
    ]);
    const ws1 = (alerts: typeof plain) => alerts.filter((a) => a.host === 'ws1');
    expect(ws1(plain)).toEqual([{ host: 'ws1', severity: 'Medium', count: 3, first: T, last: T + 6 * HOUR, uid: expect.any(String) }]);
    expect(ws1(skewed)).toEqual(ws1(plain));
    expect(skewed.filter((a) => a.host === 'ws2').map((a) => a.count)).toEqual([1, 1]);
  });
});
