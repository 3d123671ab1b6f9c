// Reverse-DNS (PTR) names (DETECTION.md section 2.2): a Sysmon connection named
// only by Event 3's DestinationHostname is not eligible by default
// (`reverse-dns-name`, counted) and teaches the baseline nothing;
// `detect.reverseDnsNames: true` scores and learns it, and the alert says where
// the name came from.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rarecon } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-reverse-dns-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SHA = 'ab'.repeat(32);
const PTR = 'a23-47-31-208.deploy.static.akamaitechnologies.com';
const DAY = 86_400_000;

function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/** One host's Sysmon events at `t`: its app starts, looks up www.example.org, and connects there and to a PTR-only address. */
function hostDay(host: string, t: number, guid: string): string[] {
  const ev = (id: number, at: number, f: Record<string, unknown>) =>
    JSON.stringify({ SourceName: 'Microsoft-Windows-Sysmon', EventID: id, Hostname: host, UtcTime: utc(at), ...f });
  const proc = { ProcessGuid: guid, ProcessId: '900', Image: 'C:\\Program Files\\App\\app.exe' };
  const out = (at: number, ip: string, name: string) =>
    ev(3, at, { ...proc, Protocol: 'tcp', Initiated: 'true', DestinationIp: ip, DestinationPort: '443', DestinationHostname: name });
  return [
    ev(1, t, { ...proc, Hashes: `SHA256=${SHA}` }),
    ev(22, t + 100, { ...proc, QueryName: 'www.example.org', QueryStatus: '0', QueryResults: '::ffff:198.51.100.9;' }),
    out(t + 200, '198.51.100.9', '-'),
    out(t + 300, '203.0.113.7', PTR),
  ];
}

const config = join(tmp, 'ptr.yaml');
const history = join(tmp, 'history.json');
const today = join(tmp, 'today.json');
const T0 = Date.UTC(2026, 8, 1, 9);

beforeAll(() => {
  writeFileSync(config, 'detect:\n  reverseDnsNames: true\n');
  const lines: string[] = [];
  // 30 days of 12 hosts: the app is common; neither combination is in the history (other ports).
  for (let d = 0; d < 30; d++)
    for (let h = 0; h < 12; h++) {
      const day = hostDay(`ws${h}.corp.example`, T0 + d * DAY + h * 1000, `{${d}-${h}}`);
      lines.push(...day.map((l) => l.replace('"DestinationPort":"443"', '"DestinationPort":"8080"')));
    }
  writeFileSync(history, lines.join('\n') + '\n');
  writeFileSync(today, hostDay('ws3.corp.example', T0 + 30 * DAY, '{today}').join('\n') + '\n');
});

describe('reverse-DNS names', () => {
  it('baseline build learns no combination from a PTR name by default, and does with detect.reverseDnsNames', async () => {
    const plain = await rarecon(['baseline', 'build', '--unit', 'host', '--out', join(tmp, 'plain.db'), history]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toContain('  1 processes, 1 combinations\n');
    expect(plain.stderr).toContain(
      '  360 connections named only by reverse DNS taught no combination (detect.reverseDnsNames: true learns them)\n',
    );
    const opted = await rarecon(['baseline', 'build', '--unit', 'host', '--config', config, '--out', join(tmp, 'ptr.db'), history]);
    expect(opted.stderr).toContain('  1 processes, 2 combinations\n');
    expect(opted.stderr).not.toContain('reverse DNS');
  });

  it('score: the PTR-named connection is not eligible (reverse-dns-name), the DNS-named one alerts', async () => {
    const summary = join(tmp, 'summary.json');
    const r = await rarecon(['score', '--baseline', join(tmp, 'plain.db'), '--summary-json', summary, today]);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).map((a) => a.evidences[0].dst_endpoint.hostname)).toEqual(['www.example.org']);
    expect(r.stderr).toContain('  not eligible: reverse-dns-name 1\n');
    expect(JSON.parse(readFileSync(summary, 'utf8')).counters.ineligibleByReason).toEqual({ 'reverse-dns-name': 1 });
  });

  it('with detect.reverseDnsNames: true it is scored, and the alert says the name came from reverse DNS', async () => {
    const r = await rarecon(['score', '--baseline', join(tmp, 'plain.db'), '--config', config, today]);
    expect(r.code, r.stderr).toBe(0);
    const alerts = jsonLines(r.stdout);
    const ptr = alerts.find((a) => a.evidences[0].dst_endpoint.hostname === PTR)!;
    expect(ptr.evidences[0].dst_endpoint.domain).toBe('akamaitechnologies.com');
    expect(ptr.message).toMatch(/; the name came from reverse DNS \(a PTR name\), not from a DNS answer the process asked for$/);
    expect(ptr.metadata.labels).toEqual(['very-rare', 'hostname-from-reverse-dns']);
    const named = alerts.find((a) => a.evidences[0].dst_endpoint.hostname === 'www.example.org')!;
    expect(named.message).not.toContain('reverse DNS');
    expect(named.metadata.labels).toEqual(['very-rare']);
    const ecs = jsonLines(
      (await rarecon(['score', '--format', 'ecs', '--baseline', join(tmp, 'plain.db'), '--config', config, today])).stdout,
    );
    expect(ecs.map((a) => [a.destination.domain, a.rarecon.hostname_source])).toEqual([
      ['www.example.org', undefined],
      [PTR, 'reverse-dns'],
    ]);
  });
});
