// `rarecon baseline build` learns the same baseline, and says the same about
// its input, whether the native line scanner reads the connections (the
// default) or every line is parsed in JavaScript (--js-reader): weeks of mixed
// records, odd values, DNS-named connections and bad lines included.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarecon, REPO } from '../support/cli.js';
import { seededRandom } from '../support/rng.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 8, 1, 9);
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-build-reader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const input = join(tmp, 'fleet.jsonl');
const addonBuilt = existsSync(join(REPO, 'native-events', 'build', 'line_scan.node'));

const sha = (i: number): string => (i.toString(16).padStart(2, '0') + 'cd').repeat(16);

function lines(n: number): string {
  const r = seededRandom(11);
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
    { id: 'h1', org: 'o2' },
    { id: 'h9', org: 'o2' },
  ];
  const names: unknown[] = [
    'www.d1.net',
    'api.d2.net',
    ' WWW.D3.NET. ',
    'new.unseen.org',
    'evil.github.io',
    'localhost',
    'db.corp',
    '203.0.113.50',
    'single',
    '-',
    '',
    '   ',
    null,
    undefined,
  ];
  const ips = ['203.0.113.10', '203.0.113.11', '198.51.100.20', '10.0.0.5', '127.0.0.1', '::ffff:203.0.113.12', '2001:db8::1', 'nope'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    // 20 days, the odd record out of order or far in the future.
    const time = T0 + Math.floor((i / n) * 20 * DAY);
    const u = r();
    if (u < 0.06) {
      out.push(
        JSON.stringify({
          type: 'dns',
          time,
          host: pick(hosts.slice(0, 3)),
          query: pick(['www.d4.net', 'www.d6.net', 'x.d1.net']),
          answers: [{ ip: pick(ips.slice(0, 3)), ttl: 600 }],
        }),
      );
    } else if (u < 0.09) {
      out.push(JSON.stringify({ type: 'process', time, host: pick(hosts), sha256: sha(Math.floor(r() * 12)), path: '/usr/bin/app' }));
    } else if (u < 0.1) {
      out.push(pick(['', '{"type":"connection","time":', '{"type":"connection"}', 'garbage', '   ']));
    } else {
      const s = r();
      const process: Record<string, unknown> = { pid: 4000, tid: 4001, path: '/usr/bin/app' };
      if (s >= 0.03) process.sha256 = s < 0.05 ? null : s < 0.07 ? sha(3).toUpperCase() : sha(Math.floor(r() * 12));
      const remote: Record<string, unknown> = { ip: pick(ips), port: r() < 0.8 ? 443 : pick([8443, 0, 65535]) };
      const name = pick(names);
      if (name !== undefined) remote.hostname = name;
      const t = r() < 0.003 ? Date.UTC(2150, 0, 1) : r() < 0.02 ? new Date(time).toISOString() : time;
      const rec: Record<string, unknown> = { type: 'connection', time: t, host: pick(hosts), process, protocol: 'tcp', remote };
      if (r() < 0.05) rec.direction = pick(['inbound', 'outbound']);
      out.push(JSON.stringify(rec));
    }
  }
  return out.join('\n') + '\n';
}

/** Every row of every table but the build time. */
function contents(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>;
    const out: Record<string, unknown[]> = {};
    for (const { name } of tables) {
      const rows = db.prepare(`SELECT * FROM "${name}"`).raw().all() as unknown[][];
      out[name] = name === 'meta' ? rows.filter((row) => row[0] !== 'builtAtMs') : rows;
    }
    return out;
  } finally {
    db.close();
  }
}

async function build(unit: string, extra: string[]): Promise<{ stderr: string; rows: Record<string, unknown[]> }> {
  const out = join(tmp, `${unit}${extra.join('')}.db`);
  const r = await rarecon(['baseline', 'build', '--unit', unit, '--version', '7', '--out', out, ...extra, input]);
  expect(r.code, r.stderr).toBe(0);
  return { stderr: r.stderr.replaceAll(out, 'OUT'), rows: contents(out) };
}

beforeAll(() => {
  writeFileSync(input, lines(8000));
});

describe('rarecon baseline build: native line scanner and JavaScript reader agree', () => {
  for (const unit of ['host', 'org', 'day']) {
    it(`with --unit ${unit}`, async () => {
      const native = await build(unit, []);
      const js = await build(unit, ['--js-reader']);
      expect(js.stderr).toContain('\n  reader: JavaScript (--js-reader)\n');
      if (addonBuilt || process.env.CI === 'true') {
        expect(native.stderr).toMatch(/\n {2}reader: native line scanner, which read [\d,]+ of the records\n/);
      } else {
        console.log('native reader checks skipped: the line scanner is not built');
      }
      // The same bad lines (file and line), the same counts, the same baseline.
      const said = (s: string): string => s.replace(/\n {2}reader: .*\n/, '\n');
      expect(said(native.stderr)).toEqual(said(js.stderr));
      expect(native.stderr).toMatch(/fleet\.jsonl:\d+: invalid-json: /);
      expect(native.stderr).toMatch(/fleet\.jsonl:\d+: bad-value: time 2150-01-01T00:00:00\.000Z is after /);
      expect(native.rows).toEqual(js.rows);
      expect((native.rows.combo ?? []).length).toBeGreaterThan(3);
    });
  }
});
