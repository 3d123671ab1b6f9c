// The README's offline example, run as written (its commands, `./rarecon` being the checkout's script)
// on a multi-day fleet log: 30 days of a 12-host fleet's logs, gzipped a file a
// day, then today's log, which holds today's records only. The hosts have been
// in the fleet's logs for 30 days, so their first run must raise the alerts
// (DETECTION.md section 2.4): enrolment comes from the baseline's own history.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, REPO } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-offline-example-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 8, 1, 9);
const CURL = 'c0'.repeat(32);
const HOSTS = Array.from({ length: 12 }, (_, i) => `ws${String(i + 1).padStart(2, '0')}`);

function conn(timeMs: number, host: string, hostname: string, ip = '203.0.113.10', port = 443): string {
  return JSON.stringify({
    type: 'connection',
    time: new Date(timeMs).toISOString(),
    host: { id: host, org: 'acme', name: `${host}.acme.example` },
    process: { pid: 4100, path: '/usr/bin/curl', sha256: CURL, signer: { status: 'unsigned', subject: null, vendor: null } },
    protocol: 'tcp',
    remote: { ip, port, hostname },
  });
}

/** The commands of the README's "Scoring logs offline" block. */
function readmeCommands(): string[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Scoring logs offline'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l.startsWith('./rarecon '));
}

/** Runs one README command in the fleet's folder, `./rarecon` being the checkout's command (the script beside README.md). */
function sh(command: string): { stdout: string; stderr: string } {
  const line = command.replace(/^\.\/rarecon /, `"${join(REPO, 'rarecon')}" `);
  try {
    const stdout = execFileSync('sh', ['-c', `${line} 2>stderr.txt`], { cwd: tmp, encoding: 'utf8' });
    return { stdout, stderr: readFileSync(join(tmp, 'stderr.txt'), 'utf8') };
  } catch (e) {
    throw new Error(`${command} failed: ${readFileSync(join(tmp, 'stderr.txt'), 'utf8')} ${(e as Error).message}`);
  }
}

beforeAll(() => {
  mkdirSync(join(tmp, 'logs'));
  for (let d = 0; d < 30; d++) {
    const lines: string[] = [];
    HOSTS.forEach((h, i) => {
      lines.push(conn(T0 + d * DAY + i * 60_000, h, 'www.popular.example'));
      // Two hosts reach the partner's API now and then: a rare combination.
      if (i < 2 && d % 10 === i) lines.push(conn(T0 + d * DAY + 3_600_000, h, 'api.rare-partner.example'));
    });
    writeFileSync(join(tmp, 'logs', `day-${String(d + 1).padStart(2, '0')}.jsonl.gz`), gzipSync(lines.join('\n') + '\n'));
  }
  const today = T0 + 30 * DAY;
  writeFileSync(
    join(tmp, 'today.jsonl'),
    [
      conn(today, 'ws01', 'www.popular.example'),
      conn(today + 60_000, 'ws07', 'api.rare-partner.example'),
      conn(today + 120_000, 'ws09', 'beacon.never-seen.example', '198.51.100.20', 8443),
      conn(today + 180_000, 'ws09', 'beacon.never-seen.example', '198.51.100.20', 8443),
    ].join('\n') + '\n',
  );
});

describe("the README's offline example on a 30-day fleet log", () => {
  it('is the build, score and ECS commands the README shows', () => {
    expect(readmeCommands()).toEqual([
      './rarecon baseline build --unit host --out base.db logs/*.jsonl.gz',
      './rarecon score --baseline base.db today.jsonl > alerts.jsonl',
      './rarecon score --format ecs --baseline base.db today.jsonl',
    ]);
  });

  it('raises the alerts it should on its first run', () => {
    const [build, score, ecs] = readmeCommands() as [string, string, string];
    expect(sh(build).stderr).toContain('  first day of 12 hosts recorded: `rarecon score` takes it as their enrolment\n');
    const scored = sh(score);
    const alerts = jsonLines(readFileSync(join(tmp, 'alerts.jsonl'), 'utf8'));
    expect(
      alerts.map((a) => [a.device.uid, a.evidences[0].dst_endpoint.domain, a.evidences[0].dst_endpoint.port, a.severity, a.count]),
    ).toEqual([
      ['ws07', 'rare-partner.example', 443, 'Low', 1],
      ['ws09', 'never-seen.example', 8443, 'Medium', 2],
    ]);
    expect(scored.stderr).toContain('  learning: none\n');
    expect(scored.stderr).not.toContain('hosts still learning');
    expect(jsonLines(sh(ecs).stdout).map((a) => a.destination.registered_domain)).toEqual(['rare-partner.example', 'never-seen.example']);
  });
});
