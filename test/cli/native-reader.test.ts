/* eslint-disable @typescript-eslint/no-explicit-any -- parsed JSON summaries and alerts */
// `rarecon score` gives the same alerts and counts whether the native line
// scanner reads the connections (the default) or every line is parsed in
// JavaScript (--js-reader): a day of mixed records, odd values included.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rarecon, REPO } from '../support/cli.js';
import { seededRandom } from '../support/rng.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 8, 1, 9);
const TODAY = T0 + 40 * DAY;
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-native-reader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const baseline = join(tmp, 'base.db');
const today = join(tmp, 'today.jsonl');
const addonBuilt = existsSync(join(REPO, 'native-events', 'build', 'line_scan.node'));

const sha = (i: number): string => (i.toString(16).padStart(2, '0') + 'ab').repeat(16);

function connection(o: {
  time: number | string;
  host: unknown;
  sha?: unknown;
  ip: string;
  port: number;
  hostname?: unknown;
  extra?: string;
  direction?: string;
  protocol?: string;
  injected?: boolean;
  local?: boolean;
}): string {
  const process: Record<string, unknown> = {
    pid: 4000,
    tid: 4001,
    path: '/usr/bin/app',
    signer: { status: 'valid', subject: 'Debian', vendor: 'Debian' },
  };
  if (o.sha !== undefined) process.sha256 = o.sha;
  if (o.injected === true) process.injection = { injected: true, indicators: ['ptrace'] };
  const remote: Record<string, unknown> = { ip: o.ip, port: o.port };
  if (o.hostname !== undefined) remote.hostname = o.hostname;
  const rec: Record<string, unknown> = { type: 'connection', time: o.time, host: o.host, process, protocol: o.protocol ?? 'tcp', remote };
  if (o.direction !== undefined) rec.direction = o.direction;
  if (o.local === true) rec.local = { ip: '192.0.2.7', port: 50_000 };
  const line = JSON.stringify(rec);
  return o.extra === undefined ? line : line.slice(0, -1) + ',' + o.extra + '}';
}

/** 30 days of a 40-host fleet: 10 common binaries, domain dJ seen by about 2J hosts. */
function history(): string {
  const lines: string[] = [];
  for (let d = 0; d < 30; d++) {
    for (let h = 0; h < 40; h++) {
      for (let s = 0; s < 10; s++) {
        for (let j = 0; j < 20; j++) {
          if (h >= 2 * j || (d + h + s + j) % 7 !== 0) continue;
          lines.push(
            connection({
              time: T0 + d * DAY,
              host: { id: `h${h}`, org: 'o1' },
              sha: sha(s),
              ip: '203.0.113.9',
              port: 443,
              hostname: `www.d${j}.net`,
            }),
          );
        }
        // Every host runs every binary: common processes.
        lines.push(
          JSON.stringify({ type: 'process', time: T0 + d * DAY, host: { id: `h${h}`, org: 'o1' }, sha256: sha(s), path: '/usr/bin/app' }),
        );
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** A day of records: mostly plain connections, with every kind of odd value the readers must agree on. */
function day(n: number): string {
  const r = seededRandom(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const hosts: unknown[] = [
    { id: 'h1', org: 'o1' },
    { id: 'h2', org: 'o1' },
    { id: 'h3', org: 'o1', name: 'h3.example' },
    { id: 'h4' },
    { id: 'h5', org: '' },
    { id: 'h6', org: null },
    { id: ' h7 ', org: 'o1' },
    { id: '', org: 'o1' },
    { id: 'h9', org: 'o2' },
    // The same host id in another org is another host.
    { id: 'h1', org: 'o2' },
  ];
  const names: unknown[] = [
    'www.d1.net',
    'api.d2.net',
    'www.d5.net',
    'x.d9.net',
    'www.d19.net',
    ' WWW.D3.NET. ',
    'new.unseen.org',
    'localhost',
    'db.corp',
    '203.0.113.50',
    'single',
    'evil.github.io',
    '-',
    '',
    null,
    undefined,
  ];
  const ips = [
    '203.0.113.10',
    '203.0.113.11',
    '198.51.100.20',
    '10.0.0.5',
    '127.0.0.1',
    '::ffff:203.0.113.12',
    '2001:db8::1',
    ' 203.0.113.13',
    'not-an-ip',
  ];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const time = TODAY + i * 1000;
    const u = r();
    if (u < 0.08) {
      // DNS answers give names to the connections that carry none.
      lines.push(
        JSON.stringify({
          type: 'dns',
          time,
          host: pick(hosts.slice(0, 3)),
          query: pick(['www.d4.net', 'www.d6.net', 'new.unseen.org']),
          answers: [{ ip: pick(ips.slice(0, 3)), ttl: 600 }],
        }),
      );
    } else if (u < 0.1) {
      lines.push(JSON.stringify({ type: 'process', time, host: pick(hosts), sha256: sha(Math.floor(r() * 12)), path: '/usr/bin/app' }));
    } else if (u < 0.11) {
      lines.push(pick(['', '{"type":"connection","time":', '{"type":"connection"}', 'garbage', '   ']));
    } else {
      const s = r();
      lines.push(
        connection({
          time: r() < 0.02 ? new Date(time).toISOString() : time,
          host: pick(hosts),
          sha: s < 0.03 ? null : s < 0.05 ? undefined : s < 0.07 ? sha(3).toUpperCase() : sha(Math.floor(r() * 12)),
          ip: pick(ips),
          port: r() < 0.9 ? 443 : pick([8443, 0, 65535]),
          hostname: pick(names),
          direction: r() < 0.05 ? 'inbound' : r() < 0.05 ? 'outbound' : undefined,
          protocol: r() < 0.05 ? 'udp' : 'tcp',
          injected: r() < 0.03,
          local: r() < 0.1,
          extra: r() < 0.05 ? '"note":{"a":[1,2.5e3,true,null,"x\\"y"]}' : undefined,
        }),
      );
    }
  }
  return lines.join('\n') + '\n';
}

async function score(extra: string[]): Promise<{ alerts: any[]; summary: any; stderr: string }> {
  const summaryPath = join(tmp, `summary-${extra.join('-').replace(/[^a-z0-9]/gi, '')}.json`);
  const r = await rarecon(['score', '--baseline', baseline, '--summary-json', summaryPath, ...extra, today]);
  expect(r.code, r.stderr).toBe(0);
  return { alerts: jsonLines(r.stdout), summary: JSON.parse(readFileSync(summaryPath, 'utf8')), stderr: r.stderr };
}

/** What must not depend on the reader. */
function outcome(s: { alerts: any[]; summary: any }): unknown {
  const { counters, errorsByCode, errorsTotal, alertsTotal, records, hostsLearning } = s.summary;
  return { alerts: s.alerts, counters, errorsByCode, errorsTotal, alertsTotal, records, hostsLearning };
}

beforeAll(async () => {
  writeFileSync(join(tmp, 'history.jsonl'), history());
  writeFileSync(today, day(6000));
  const b = await rarecon(['baseline', 'build', '--unit', 'host', '--out', baseline, join(tmp, 'history.jsonl')]);
  expect(b.code, b.stderr).toBe(0);
}, 120_000);

describe('rarecon score: native line scanner and JavaScript reader agree', () => {
  it('on a day of mixed records, hosts active', async () => {
    const native = await score(['--activation-days', '0']);
    const js = await score(['--activation-days', '0', '--js-reader']);
    expect(js.summary.reader).toBe('JavaScript (--js-reader)');
    // The user sees what the run cost; the summary file carries the same figures.
    const mib = Number(/\n {2}resources: \d+\.\d CPU s, peak resident memory (\d+) MiB\n/.exec(js.stderr)?.[1]);
    expect(mib).toBe(Math.round(js.summary.peakRssBytes / 2 ** 20));
    expect(mib).toBeGreaterThan(20);
    expect(js.summary.cpuMs).toBeGreaterThan(0);
    expect(js.summary.scannedRecords).toBe(0);
    if (addonBuilt || process.env.CI === 'true') {
      expect(native.summary.reader).toBe('native line scanner');
      // Most connections are plain: the scanner reads them, and the odd ones go the JavaScript way.
      expect(native.summary.scannedRecords).toBeGreaterThan(native.summary.counters.connectionsTotal * 0.6);
    } else {
      console.log(`native reader checks skipped: ${native.summary.reader}`);
    }
    expect(outcome(native)).toEqual(outcome(js));
    // The day holds every outcome: alerts, common combinations, several reasons not to score, errors.
    const c = native.summary.counters;
    expect(native.alerts.length).toBeGreaterThan(5);
    expect(c.commonCombosTotal).toBeGreaterThan(100);
    for (const reason of [
      'inbound',
      'internal-address',
      'no-sha256',
      'process-not-common',
      'ip-literal-hostname',
      'internal-hostname',
      'single-label-hostname',
    ]) {
      expect(c.ineligibleByReason[reason], reason).toBeGreaterThan(0);
    }
    expect(native.summary.errorsByCode['invalid-json']).toBeGreaterThan(0);
  });

  it('while hosts are learning, and with exclusions', async () => {
    const config = join(tmp, 'config.yaml');
    writeFileSync(config, 'detect:\n  exclusions:\n    domainSuffixes: [d5.net]\n    ports: [8443]\n');
    const learning = await score([]);
    expect(outcome(learning)).toEqual(outcome(await score(['--js-reader'])));
    expect(Object.keys(learning.summary.counters.learningByReason)).toContain('host-learning');
    const excluded = await score(['--activation-days', '0', '--config', config]);
    expect(outcome(excluded)).toEqual(outcome(await score(['--activation-days', '0', '--config', config, '--js-reader'])));
    expect(excluded.summary.counters.excludedByKind['domain-suffix']).toBeGreaterThan(0);
  });

  it('when the combination is common but the process is not (the scanned path reads the combination first)', async () => {
    // Every process has 40 observers, the combinations 2 to 40: with these thresholds the combination answer
    // alone cannot settle an event, and the scanned path must still find the process not common.
    const strict = join(tmp, 'strict.yaml');
    writeFileSync(strict, 'detect:\n  thresholds:\n    uncommonBelowObservers: 3\n    commonProcessMinObservers: 41\n');
    const native = await score(['--activation-days', '0', '--config', strict]);
    expect(outcome(native)).toEqual(outcome(await score(['--activation-days', '0', '--config', strict, '--js-reader'])));
    expect(native.summary.counters.commonCombosTotal).toBe(0);
    expect(native.summary.counters.ineligibleByReason['process-not-common']).toBeGreaterThan(1000);
    // And where it can: the same outcome as the JavaScript reader, which reads the process first.
    const loose = join(tmp, 'loose.yaml');
    writeFileSync(loose, 'detect:\n  thresholds:\n    uncommonBelowObservers: 3\n    commonProcessMinObservers: 2\n');
    const fast = await score(['--activation-days', '0', '--config', loose]);
    expect(outcome(fast)).toEqual(outcome(await score(['--activation-days', '0', '--config', loose, '--js-reader'])));
    expect(fast.summary.counters.commonCombosTotal).toBeGreaterThan(500);
  });
});
