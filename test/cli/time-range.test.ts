// A time that names no instant of the years 1970-9999 (DETECTION.md section 6)
// is a `bad-value` line, named with its file and line, in every reader: the
// JavaScript NDJSON reader, the native line scanner, the Sysmon reader and
// `rarecon baseline build`. The lines around it are still scored.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarecon } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-time-range-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SHA = 'ab'.repeat(32);
const T = Date.UTC(2026, 9, 1, 10);

function conn(time: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'connection',
    time,
    host: { id: 'h1', org: 'o1' },
    process: { pid: 10, tid: 11, path: '/usr/bin/curl', sha256: SHA, ...extra },
    protocol: 'tcp',
    remote: { ip: '203.0.113.10', port: 443, hostname: 'www.example.com' },
  });
}

/** Line number -> the time it carries; the good ones come first, so the scanner has a shape to match. */
const BAD_TIMES: Array<[number, unknown]> = [
  [4, 1e21],
  [5, 8640000000000001],
  [6, 253402300800000],
  [7, -1],
  [8, '8640000000000001'],
  [9, '1969-12-31T23:59:59Z'],
  [10, '9999-12-31T23:59:59-01:00'],
  [11, '0001-01-01T00:00:00Z'],
];

/** A Sysmon Event 3 with these time fields. */
function event3(time: Record<string, string>): string {
  return JSON.stringify({
    SourceName: 'Microsoft-Windows-Sysmon',
    EventID: 3,
    Hostname: 'ws1.example.local',
    ...time,
    ProcessGuid: '{1}',
    ProcessId: '10',
    Image: 'C:\\x.exe',
    Protocol: 'tcp',
    Initiated: 'true',
    DestinationIp: '203.0.113.10',
    DestinationPort: '443',
  });
}

/** With a good `@timestamp` beside the `UtcTime`, which must not stand in for it. */
const utcEvent3 = (utc: string): string => event3({ UtcTime: utc, '@timestamp': '2026-10-01T10:00:00.000Z' });

const ndjson = join(tmp, 'times.jsonl');
const sysmon = join(tmp, 'times-sysmon.json');

beforeAll(() => {
  const lines = [conn(T), conn(T + 1000), conn(T + 2000)];
  for (const [, t] of BAD_TIMES) lines.push(conn(t));
  lines.push(conn(T + 3000, { startTime: 1e21 }));
  // The last instant of 9999 is a time like any other.
  lines.push(conn(253402300799999));
  writeFileSync(ndjson, lines.join('\n') + '\n');
  writeFileSync(
    sysmon,
    [utcEvent3('2026-10-01 10:00:00.000'), utcEvent3('1601-01-01 00:00:00.000'), utcEvent3('2026-13-45 10:00:00.000')].join('\n') + '\n',
  );
});

function badValueLines(stderr: string, file: string): number[] {
  return [...stderr.matchAll(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+): bad-value: `, 'gm'))].map((m) =>
    Number(m[1]),
  );
}

describe('an out-of-range time is a bad-value line', () => {
  const expected = [...BAD_TIMES.map(([line]) => line), 12];

  for (const reader of [[], ['--js-reader']]) {
    it(`in rarecon score ${reader.length === 0 ? '(native line scanner)' : '(--js-reader)'}`, async () => {
      const summary = join(tmp, `summary${reader.length}.json`);
      const base = join(tmp, 'base.db');
      const b = await rarecon(['baseline', 'build', '--unit', 'host', '--out', base, ndjson]);
      expect(b.code, b.stderr).toBe(0);
      const r = await rarecon(['score', '--baseline', base, '--summary-json', summary, ...reader, ndjson]);
      expect(r.code, r.stderr).toBe(0);
      expect(badValueLines(r.stderr, ndjson)).toEqual(expected);
      expect(r.stderr).toContain(
        `${ndjson}:4: bad-value: field "time" must be an RFC 3339 time or epoch milliseconds of the years 1970-9999, got number 1e+21`,
      );
      expect(r.stderr).toContain(`${ndjson}:12: bad-value: field "process.startTime" must be`);
      const s = JSON.parse(readFileSync(summary, 'utf8'));
      expect(s.errorsByCode).toEqual({ 'bad-value': 9 });
      // The three good lines and the one dated 9999-12-31 were scored.
      expect(s.counters.connectionsTotal).toBe(4);
    });
  }

  it('in rarecon baseline build', async () => {
    const r = await rarecon(['baseline', 'build', '--unit', 'host', '--out', join(tmp, 'b2.db'), ndjson]);
    expect(r.code, r.stderr).toBe(0);
    expect(badValueLines(r.stderr, ndjson)).toEqual([...expected, 13]);
    expect(r.stderr).toMatch(/errors: bad-value 10/);
    // The line dated 9999 is read, but no baseline file can hold that day: it is named too.
    expect(r.stderr).toContain(
      `${ndjson}:13: bad-value: time 9999-12-31T23:59:59.999Z is after 2149-06-06, the last day a baseline file holds`,
    );
  });

  it('in the Sysmon reader: a UtcTime outside 1970-9999 or not a date, even with a good @timestamp', async () => {
    const base = join(tmp, 'base.db');
    const r = await rarecon(['score', '--baseline', base, sysmon]);
    expect(r.code, r.stderr).toBe(0);
    expect(badValueLines(r.stderr, sysmon)).toEqual([2, 3]);
    expect(r.stderr).toContain(
      `${sysmon}:2: bad-value: Sysmon event 3: UtcTime "1601-01-01 00:00:00.000" is not a time of the years 1970-9999`,
    );
    expect(r.stderr).toMatch(/\(1 connection/);
  });

  it('so is a date that is not on the calendar (30 February, 29 February of 2026, 31 April, hour 24), in every reader', async () => {
    const f = join(tmp, 'calendar.jsonl');
    const off = [
      '2026-02-30T10:00:00Z',
      '2026-02-29T10:00:00Z',
      '2026-04-31T10:00:00Z',
      '2026-10-01T24:00:00Z',
      '2026-10-01 24:00:00+02:00',
    ];
    // 29 February of a leap year is a day like any other.
    writeFileSync(f, [conn(T), conn(T + 1000), conn(T + 2000), ...off.map((t) => conn(t)), conn('2024-02-29T10:00:00Z')].join('\n') + '\n');
    const base = join(tmp, 'base.db');
    for (const reader of [[], ['--js-reader']]) {
      const r = await rarecon(['score', '--baseline', base, ...reader, f]);
      expect(r.code, r.stderr).toBe(0);
      expect(badValueLines(r.stderr, f), reader.join(' ')).toEqual([4, 5, 6, 7, 8]);
      expect(r.stderr).toContain(
        `${f}:4: bad-value: field "time" must be an RFC 3339 time or epoch milliseconds of the years 1970-9999, got "2026-02-30T10:00:00Z"`,
      );
      expect(r.stderr).toMatch(/\(4 connections/);
    }
    const b = await rarecon(['baseline', 'build', '--unit', 'host', '--out', join(tmp, 'b3.db'), f]);
    expect(badValueLines(b.stderr, f)).toEqual([4, 5, 6, 7, 8]);
    // The Sysmon reader's UtcTime, and the @timestamp of an event without one.
    const sys = join(tmp, 'calendar-sysmon.json');
    writeFileSync(
      sys,
      [
        event3({ UtcTime: '2026-10-01 10:00:00.000' }),
        event3({ UtcTime: '2026-02-30 10:00:00.000' }),
        event3({ '@timestamp': '2026-02-30T10:00:00.000Z' }),
      ].join('\n') + '\n',
    );
    const r = await rarecon(['score', '--baseline', base, sys]);
    expect(badValueLines(r.stderr, sys)).toEqual([2, 3]);
  });
});
