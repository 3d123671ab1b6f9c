// Bad input through the `rarecon` command, as a user meets it: each bad line is
// reported on stderr as `file:line: code: message`, counted in the summary, and
// the rest of the file is still scored (an alert from a good line after the bad
// one is still printed). Files that cannot be used at all stop the run with exit 1
// and a message naming them.
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { jsonLines, rarecon, REPO, type CliResult } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-cli-bad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fixtures = join(REPO, 'test', 'fixtures', 'cli');

const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const WINDOW_END = Date.UTC(2026, 9, 2);
const VERY_RARE = 'Globally uncommon and very rare root-domain port combination by a common process (sha256)';

/** A connection that alerts (very rare, Medium) against the baseline below: the port tells which line it was. */
function alerting(port: number, time = '2026-10-01T10:00:05Z'): string {
  return JSON.stringify({
    type: 'connection',
    time,
    host: { id: 'h1', org: 'o1' },
    process: { pid: 2, path: '/usr/bin/curl', sha256: SHA },
    protocol: 'tcp',
    remote: { ip: '203.0.113.10', port, hostname: 'c2.example.com' },
  });
}

/** What JSON.parse of this node says about `text` (the CLI runs on the same node binary). */
function jsonReason(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    expect(msg.length).toBeLessThanOrEqual(100); // longer reasons are cut by the reader
    return msg;
  }
  throw new Error(`${text} is valid JSON`);
}

/** A fixed pseudo-random byte stream, so a failure can be reproduced. */
function bytes(n: number, seed: number, pick: (x: number) => number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = pick(s >>> 24);
  }
  return b;
}

function file(name: string, content: string | Buffer): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

let baseline: string;

beforeAll(() => {
  // A fleet in which SHA is common (12 hosts) and no combination was ever seen: every
  // eligible connection of it alerts as very rare.
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (let h = 0; h < 12; h++) {
    for (const back of [1, 30])
      b.add({ observer: `o1/h${h}`, dayMs: WINDOW_END - back * DAY_MS, sha256: SHA, rootDomain: null, port: null });
  }
  baseline = join(tmp, 'base.db');
  const w = b.write(baseline, { version: 1, builtAtMs: WINDOW_END, windowEndMs: WINDOW_END });
  if (!w.ok) throw new Error(w.error);
});

function score(inputs: string[], ...extra: string[]): Promise<CliResult> {
  return rarecon(['score', '--activation-days', '0', '--baseline', baseline, ...extra, ...inputs]);
}

/** The ports of the alerts printed, in order, with their counts. */
function alertPorts(r: CliResult): Array<[number, number]> {
  return jsonLines(r.stdout).map((a) => [a.evidences[0].dst_endpoint.port, a.count]);
}

/** The `file:line: code: message` lines on stderr (the summary lines start with 'rarecon score' or spaces). */
function errorLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => /^\S.*:\d+: [a-z-]+: /.test(l));
}

describe('bad lines are reported with file, line, code and message, and the rest is scored', () => {
  it('truncated JSON', async () => {
    const cut = '{"type":"dns","time":"2026-10-01T10:00:00Z","host":{"id":"h1"},"query":"ok.exa';
    const lastCut = alerting(444).slice(0, 60);
    // Line 1 was cut mid-record; line 3 is a record cut by the end of the file (no newline).
    const f = file('truncated.ndjson', `${cut}\n${alerting(8443)}\n${lastCut}`);
    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      `${f}:1: invalid-json: not JSON: ${jsonReason(cut)}`,
      `${f}:3: invalid-json: not JSON: ${jsonReason(lastCut)}`,
    ]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(jsonLines(r.stdout)[0]).toMatchObject({
      severity: 'Medium',
      finding_info: { title: VERY_RARE },
      evidences: [{ dst_endpoint: { hostname: 'c2.example.com' } }],
    });
    expect(r.stderr).toContain('rarecon score: 3 lines read from 1 file in ');
    expect(r.stderr).toMatch(
      / s: 1 record \(1 connection, 0 DNS answers, 0 process runs\), 0 joined into them, 0 skipped, 0 blank, 2 errors\n/,
    );
    expect(r.stderr).toContain('  errors: 2 (invalid-json 2)\n');
    expect(r.code).toBe(0);
  });

  it('binary garbage: NUL bytes, and bytes that are not UTF-8', async () => {
    const nuls = bytes(4096, 7, (x) => (x === 10 ? 0 : x)); // no newline inside, many NULs and control bytes
    const notUtf8 = bytes(4096, 8, (x) => 0x80 | (x & 0x3f)); // continuation bytes only
    const f = file('binary.ndjson', Buffer.concat([nuls, Buffer.from('\n'), notUtf8, Buffer.from(`\n${alerting(8443)}\n`)]));
    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      `${f}:1: binary-data: binary data (NUL bytes or invalid UTF-8), not a text line`,
      `${f}:2: binary-data: binary data (NUL bytes or invalid UTF-8), not a text line`,
    ]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(r.stderr).toContain('  errors: 2 (binary-data 2)\n');
    expect(r.code).toBe(0);
  });

  it('a 10 MB line, and the line numbers after it stay right', async () => {
    const huge = JSON.stringify({
      type: 'dns',
      time: '2026-10-01T10:00:00Z',
      host: { id: 'h1' },
      query: 'x'.repeat(10 * 1024 * 1024),
      answers: [],
    });
    const bad = '{"type":"dns"';
    const f = file('long-line.ndjson', `${alerting(8443)}\n${huge}\n${alerting(9443)}\n${bad}\n${alerting(10443)}\n`);
    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      `${f}:2: line-too-long: line longer than 1048576 bytes, skipped`,
      `${f}:4: invalid-json: not JSON: ${jsonReason(bad)}`,
    ]);
    expect(alertPorts(r)).toEqual([
      [8443, 1],
      [9443, 1],
      [10443, 1],
    ]);
    expect(r.stderr).toContain('  errors: 2 (line-too-long 1, invalid-json 1)\n');
    expect(r.code).toBe(0);
  });

  it('the same 10 MB line inside a .gz', async () => {
    const huge = `{"pad":"${'y'.repeat(10 * 1024 * 1024)}"}`;
    const f = file('long-line.ndjson.gz', gzipSync(`${huge}\n${alerting(8443)}\n`));
    const r = await score([f]);
    expect(errorLines(r)).toEqual([`${f}:1: line-too-long: line longer than 1048576 bytes, skipped`]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(r.code).toBe(0);
  });

  it('wrong types: a port "abc", a time that is an object', async () => {
    const portAbc = alerting(1).replace('"port":1', '"port":"abc"');
    const timeObject = JSON.stringify({ type: 'process', time: { at: 'now' }, host: { id: 'h1' }, sha256: SHA });
    const f = file('types.ndjson', `${portAbc}\n${timeObject}\n${alerting(8443)}\n`);
    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      // Ports may come as strings of digits ("443"), so "abc" is a bad value rather than a wrong type.
      `${f}:1: bad-value: field "remote.port" must be an integer 0..65535, got "abc"`,
      `${f}:2: wrong-type: field "time" must be an RFC 3339 string or epoch milliseconds, got an object`,
    ]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(r.stderr).toContain('  errors: 2 (bad-value 1, wrong-type 1)\n');
    expect(r.code).toBe(0);
  });

  it('a missing required field', async () => {
    const noProtocol = alerting(1).replace('"protocol":"tcp",', '');
    const noIp = alerting(2).replace('"ip":"203.0.113.10",', '');
    const noHost = alerting(3).replace('"host":{"id":"h1","org":"o1"},', '');
    // The replacements took: each line lacks its field.
    expect(noProtocol).not.toContain('"protocol"');
    expect(noIp).not.toContain('"ip"');
    expect(noHost).not.toContain('"host"');
    const f = file('missing.ndjson', `${noProtocol}\n${noIp}\n${noHost}\n${alerting(8443)}\n`);
    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      `${f}:1: missing-field: missing field "protocol"`,
      `${f}:2: missing-field: missing field "remote.ip"`,
      `${f}:3: missing-field: missing field "host"`,
    ]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(r.stderr).toContain('  errors: 3 (missing-field 3)\n');
    expect(r.code).toBe(0);
  });

  it('shows the first --max-error-lines errors and counts the rest', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => `{"type":"dns","n":${i}`);
    const f = file('many-bad.ndjson', `${lines.join('\n')}\n${alerting(8443)}\n`);
    const r = await score([f]);
    expect(errorLines(r)).toHaveLength(50);
    expect(errorLines(r)[49]).toMatch(new RegExp(`^${f.replace(/[.]/g, '\\.')}:50: invalid-json: `));
    expect(r.stderr).toContain('... 10 more errors not shown\n');
    expect(r.stderr).toContain('  errors: 60 (invalid-json 60)\n');
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    const few = await score([f], '--max-error-lines', '2');
    expect(errorLines(few)).toHaveLength(2);
    expect(few.stderr).toContain('... 58 more errors not shown\n');
  });
});

describe('empty and unusable inputs', () => {
  it('an empty file: scored, no error, zero records, a note, exit 0 (also under --strict)', async () => {
    const f = file('empty.ndjson', '');
    const blank = file('blank.ndjson', '\n  \n');
    for (const extra of [[], ['--strict']]) {
      const r = await score([f], ...extra);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        /^rarecon score: 0 lines read from 1 file in \d+\.\d s: 0 records \(0 connections, 0 DNS answers, 0 process runs\), 0 joined into them, 0 skipped, 0 blank, 0 errors\n/,
      );
      expect(r.stderr).toContain('  errors: 0 (none)\n');
      expect(r.stderr).toContain(`  note: ${f} is empty: nothing in it to score\n`);
      expect(r.code).toBe(0);
    }
    const r = await score([blank, f]);
    expect(r.stderr).toContain(
      `  note: ${blank} is empty (2 blank lines): nothing in it to score\n  note: ${f} is empty: nothing in it to score\n`,
    );
    expect(r.code).toBe(0);
  });

  describe('an input of which no line is rarecon NDJSON or Sysmon JSON: exit 1 naming the formats read', () => {
    const formats =
      'rarecon reads rarecon NDJSON (one JSON record a line, "type" connection, dns or process) and Sysmon JSON (one event a line as NXLog or Winlogbeat export it), plain or gzipped';
    const cases: Array<[string, () => string, string]> = [
      ['a CSV file', () => file('events.csv', 'time,host,ip,port\n2026-10-01T10:00:00Z,h1,203.0.113.10,443\n'), '2 lines (invalid-json 2)'],
      [
        'a pretty-printed JSON document',
        () => file('doc.json', JSON.stringify({ type: 'connection', time: '2026-10-01T10:00:00Z', host: { id: 'h1' } }, null, 2) + '\n'),
        '7 lines (invalid-json 7)',
      ],
      [
        'random bytes',
        () =>
          file(
            'random.bin',
            bytes(4096, 9, (x) => x),
          ),
        'lines (binary-data',
      ],
      ['JSON objects of neither format', () => file('other.ndjson', '{"a":1}\n{"b":2}\n'), '2 lines (unknown-format 2)'],
      [
        'a Windows export without a Sysmon event (a Security log)',
        () => {
          const logon = {
            SourceName: 'Microsoft-Windows-Security-Auditing',
            Channel: 'Security',
            EventID: 4624,
            Hostname: 'WS1.corp.example',
          };
          return file('security.json', `${JSON.stringify(logon)}\n${JSON.stringify({ ...logon, EventID: 4634 })}\n`);
        },
        '2 lines (skipped: channel Security 2; no Sysmon event)',
      ],
      ['the baseline .db itself', () => baseline, 'lines ('],
    ];
    for (const [what, make, detail] of cases) {
      it(what, async () => {
        const f = make();
        const good = file(`good-beside-${what.length}.ndjson`, `${alerting(8443)}\n`);
        const r = await score([good, f]);
        expect(r.code, r.stderr).toBe(1);
        // The other input is still scored and its alert printed; the summary comes before the message.
        expect(alertPorts(r)).toEqual([[8443, 1]]);
        expect(r.stderr).toContain(`\nrarecon: no line of this input is a record rarecon reads:\n  ${f}: `);
        expect(r.stderr).toContain(detail);
        expect(r.stderr).toContain(formats);
        expect(r.stderr).not.toContain('internal error');
      });
    }

    it('stops reading such a file after its first 1,000 lines', async () => {
      const f = file('big.csv', 'a,b,c\n'.repeat(50_000));
      const r = await score([f]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`  ${f.replace(/[.]/g, '\\.')}: [\\d,]+ lines \\(invalid-json [\\d,]+\\); not read past its first [\\d,]+ lines\\n`),
      );
      const lines = Number(/: ([\d,]+) lines \(invalid-json/.exec(r.stderr)?.[1]?.replace(/,/g, ''));
      expect(lines).toBeGreaterThanOrEqual(1000);
      expect(lines).toBeLessThan(50_000);
    });
  });

  it('a missing input file: exit 1 naming it, and nothing of the other inputs is scored', async () => {
    const good = file('good.ndjson', `${alerting(8443)}\n`);
    const missing = join(tmp, 'no-such-log.ndjson');
    const r = await score([good, missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rarecon: cannot read input:\n  ${missing}: no such file\n`);
    expect(r.stdout).toBe('');
  });

  it('a folder given as input: exit 1 naming it', async () => {
    const r = await score([tmp]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rarecon: cannot read input:\n  ${tmp}: is a directory\n`);
  });

  it('a named pipe is read like a file (as `<(zcat log.gz)` gives)', async () => {
    const fifo = join(tmp, 'pipe.ndjson');
    execFileSync('mkfifo', [fifo]);
    // The writer's open blocks until rarecon opens the pipe to read it.
    const writer = createWriteStream(fifo);
    writer.end(`${alerting(8443)}\n{"type":\n`);
    const r = await score([fifo]);
    expect(errorLines(r)).toEqual([`${fifo}:2: invalid-json: not JSON: ${jsonReason('{"type":')}`]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    expect(r.code).toBe(0);
  });

  it('a truncated .gz: the records before the cut are scored, then a read-failed error', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      alerting(8443, new Date(Date.UTC(2026, 9, 1, 10) + i * 1000).toISOString()).replace(
        '"pid":2',
        `"pid":2,"cmdline":"run ${'abcdefghij'.repeat(i % 20)}"`,
      ),
    );
    const whole = gzipSync(lines.join('\n') + '\n');
    const cut = whole.subarray(0, Math.floor(whole.length / 2));
    const f = file('cut.ndjson.gz', cut);
    // What a gunzip that stops at the cut gets out of it: this many complete lines.
    const readable = gunzipSync(cut, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    const complete = readable.toString('utf8').split('\n').length - 1;
    expect(complete).toBeGreaterThan(100);
    expect(complete).toBeLessThan(3000);

    const r = await score([f]);
    expect(errorLines(r)).toEqual([
      `${f}:${complete + 1}: read-failed: gzip data truncated or corrupt after line ${complete}: unexpected end of file (Z_BUF_ERROR)`,
    ]);
    const n = complete.toLocaleString('en-US');
    expect(r.stderr).toMatch(
      new RegExp(`^rarecon score: ${n} lines read from 1 file in \\d+\\.\\d s: ${n} records \\(${n} connections,`, 'm'),
    );
    expect(r.stderr).toContain('  errors: 1 (read-failed 1)\n');
    // Every record before the cut counted: one alert (same combination), seen that many times.
    expect(alertPorts(r)).toEqual([[8443, complete]]);
    expect(r.code).toBe(0);
    const strict = await score([f], '--strict');
    expect(strict.code).toBe(2);
  });
});

describe('--strict', () => {
  it('exit 2 when a line was bad, alerts still printed; exit 0 when none was', async () => {
    const bad = file('strict-bad.ndjson', `{"type":\n${alerting(8443)}\n`);
    const good = file('strict-good.ndjson', `${alerting(8443)}\n`);
    const r = await score([bad], '--strict');
    expect(r.code).toBe(2);
    expect(errorLines(r)).toEqual([`${bad}:1: invalid-json: not JSON: ${jsonReason('{"type":')}`]);
    expect(alertPorts(r)).toEqual([[8443, 1]]);
    const ok = await score([good], '--strict');
    expect(ok.code).toBe(0);
    expect(alertPorts(ok)).toEqual([[8443, 1]]);
    // Without --strict the bad file is exit 0.
    expect((await score([bad])).code).toBe(0);
  });
});

describe('unusable baseline files: exit 1 naming the file, nothing scored', () => {
  const input = (): string => file('one-alert.ndjson', `${alerting(8443)}\n`);

  it('garbage bytes', async () => {
    const bad = file(
      'garbage.db',
      bytes(64 * 1024, 3, (x) => x),
    );
    const r = await rarecon(['score', '--baseline', bad, input()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rarecon: baseline ${bad}: not a SQLite file (bad header)\n`);
    expect(r.stdout).toBe('');
  });

  it('a text file, and an empty file', async () => {
    const text = file('text.db', 'this is not a baseline\n');
    const empty = file('empty.db', '');
    expect((await rarecon(['score', '--baseline', text, input()])).stderr).toBe(
      `rarecon: baseline ${text}: not a SQLite file (bad header)\n`,
    );
    const r = await rarecon(['score', '--baseline', empty, input()]);
    expect(r.stderr).toBe(`rarecon: baseline ${empty}: file is empty\n`);
    expect(r.code).toBe(1);
  });

  it('a missing baseline file', async () => {
    const missing = join(tmp, 'no-such-baseline.db');
    const r = await rarecon(['score', '--baseline', missing, input()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rarecon: baseline ${missing}: file does not exist\n`);
  });

  it('a truncated baseline: cut mid-page, and cut at a page boundary', async () => {
    // Big enough for many pages: 3000 combinations.
    const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
    for (let i = 0; i < 3000; i++)
      b.add({ observer: `o1/h${i % 12}`, dayMs: WINDOW_END - DAY_MS, sha256: SHA, rootDomain: `d${i}.example`, port: 443 });
    const full = join(tmp, 'full.db');
    const w = b.write(full, { version: 1, builtAtMs: WINDOW_END, windowEndMs: WINDOW_END });
    if (!w.ok) throw new Error(w.error);
    const size = statSync(full).size;
    const pageSize = readFileSync(full).readUInt16BE(16);
    const pages = size / pageSize;
    expect(pages).toBeGreaterThan(4);

    const midPage = file('cut-mid-page.db', readFileSync(full));
    truncateSync(midPage, size - 1000);
    const r1 = await rarecon(['score', '--baseline', midPage, input()]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toBe(
      `rarecon: baseline ${midPage}: size ${size - 1000} bytes is not a whole number of ${pageSize}-byte pages (truncated or damaged)\n`,
    );
    expect(r1.stdout).toBe('');

    const atPage = file('cut-at-page.db', readFileSync(full));
    truncateSync(atPage, 2 * pageSize);
    const r2 = await rarecon(['score', '--baseline', atPage, input()]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe(`rarecon: baseline ${atPage}: file holds 2 of its ${pages} pages (truncated)\n`);
    expect(r2.stdout).toBe('');
  });
});

describe('bad usage: exit 1 with the usage', () => {
  it('an unknown command', async () => {
    const r = await rarecon(['frobnicate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rarecon: unknown command "frobnicate"\n/);
    expect(r.stderr).toContain('usage: rarecon <command> [options]');
    expect(r.stderr).toContain('  score ');
    expect(r.stdout).toBe('');
  });

  it('no command at all: the usage on stderr', async () => {
    const r = await rarecon([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('usage: rarecon <command> [options]');
    expect(r.stdout).toBe('');
  });

  it('an unknown option of score, of baseline build and of validate', async () => {
    const good = file('usage.ndjson', `${alerting(8443)}\n`);
    const s = await rarecon(['score', '--bogus', '--baseline', baseline, good]);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/^rarecon: unknown option '--bogus'\nusage: rarecon score --baseline FILE /);
    expect(s.stdout).toBe('');

    const b = await rarecon(['baseline', 'build', '--unit', 'host', '--bogus', '--out', join(tmp, 'x.db'), good]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^rarecon: unknown option '--bogus'\nusage: rarecon baseline build --unit org\|host\|day /);
    expect(existsSync(join(tmp, 'x.db'))).toBe(false);

    const v = await rarecon(['validate', '--bogus']);
    expect(v.code).toBe(1);
    expect(v.stderr).toBe(
      "rarecon: unknown option '--bogus'\nusage: rarecon validate [--config FILE | FILE]\n'rarecon validate --help' lists the options and their defaults.\n",
    );
  });

  it('an option without its value, and a bad value', async () => {
    const good = file('usage.ndjson', `${alerting(8443)}\n`);
    const r = await rarecon(['score', good, '--baseline']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rarecon: option '--baseline <value>' argument missing\nusage: rarecon score /);
    const f = await rarecon(['score', '--format', 'xml', '--baseline', baseline, good]);
    expect(f.code).toBe(1);
    expect(f.stderr).toBe('rarecon: --format must be ocsf or ecs, not "xml"\n');
    expect((await rarecon(['score', good])).stderr).toBe('rarecon: --baseline FILE is required\n');
    expect((await rarecon(['score', '--baseline', baseline])).stderr).toBe('rarecon: no input files given\n');
    const unknownBaselineCmd = await rarecon(['baseline', 'frob']);
    expect(unknownBaselineCmd.code).toBe(1);
    expect(unknownBaselineCmd.stderr).toMatch(/^rarecon: unknown baseline command "frob"\nusage: rarecon baseline build /);
  });
});

describe('rarecon validate', () => {
  it('a bad config: every problem with its line, exit 1', async () => {
    const cfg = join(fixtures, 'bad-config.yaml');
    const r = await rarecon(['validate', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        `${cfg}:3: detect.activationDays: must be at least 0, got -3`,
        `${cfg}:5: detect.thresholds.rareMaxObservers: expected a number, got string "three"`,
        `${cfg}:6: detect.internalNetworks[1]: "300.1.0.0/16" is not an IP network`,
        `${cfg}:8: detect.exclusions.ports[1]: must be at most 65535, got 70000`,
        `${cfg}:9: detect.exclusions.sha256[0]: expected 64 hex digits, got "abc"`,
        `${cfg}:10: detect.colour: unknown setting (known here: activationDays, trainingDays, minBaselineDays, dedupWindowMs, maxAlertsPerHostPerDay, thresholds, knownVendors, internalNetworks, internalDomains, exclusions, dnsGraceMs, dnsCacheMaxEntries, reverseDnsNames, processAccessIgnore, processAccessParentMs)`,
        `${cfg}:11: alertFormat: expected one of ocsf, ecs, got "xml"`,
        `7 problems in ${cfg}`,
        '',
      ].join('\n'),
    );
  });

  it('a good config: valid, exit 0', async () => {
    const cfg = join(fixtures, 'good-config.yaml');
    const r = await rarecon(['validate', '--config', cfg]);
    expect(r.stdout).toBe(`${cfg}: valid\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('a YAML syntax error names its line; a missing config file names the file', async () => {
    const broken = file('broken.yaml', 'detect:\n  activationDays: 7\n  knownVendors: [Microsoft\n');
    const r = await rarecon(['validate', '--config', broken]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${broken.replace(/[.]/g, '\\.')}:[34]: \\(syntax\\): `));
    const missing = join(tmp, 'no-such-config.yaml');
    const m = await rarecon(['validate', '--config', missing]);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(`${missing}: (file): cannot read: ENOENT`);
  });

  it('score refuses a bad config the same way, exit 1, before reading anything', async () => {
    const cfg = join(fixtures, 'bad-config.yaml');
    const r = await rarecon(['score', '--config', cfg, '--baseline', baseline, file('cfg.ndjson', `${alerting(8443)}\n`)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^rarecon: bad config:\n/);
    expect(r.stderr).toContain(`${cfg}:11: alertFormat: expected one of ocsf, ecs, got "xml"`);
  });

  it('a store setting the baseline store cannot use is a bad config, not a crash', async () => {
    const cfg = join(fixtures, 'lookup-cache-zero.yaml');
    const r = await rarecon(['score', '--config', cfg, '--baseline', baseline, file('cfg.ndjson', `${alerting(8443)}\n`)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^rarecon: bad config:/);
    expect(r.stderr).toContain('lookupCacheEntries');
    expect(r.stderr).not.toContain('internal error');
  });
});

describe('rarecon baseline build with nothing to learn', () => {
  it('no sightings: exit 1, a clear message, no file written', async () => {
    const out = join(tmp, 'nothing.db');
    const dnsOnly = file(
      'dns-only.ndjson',
      `${JSON.stringify({ type: 'dns', time: '2026-10-01T10:00:00Z', host: { id: 'h1' }, query: 'a.example.com', answers: [{ ip: '203.0.113.10', ttl: 60 }] })}\n`,
    );
    const empty = file('empty-history.ndjson', '');
    const badOnly = file('bad-history.ndjson', '{"type":\n');
    for (const input of [dnsOnly, empty]) {
      const r = await rarecon(['baseline', 'build', '--unit', 'host', '--out', out, input]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'rarecon: the inputs hold no sightings (no process runs or connections with a sha256): no baseline written\n',
      );
      expect(existsSync(out)).toBe(false);
    }
    // A file of which no line is a record is named, as in score.
    const r = await rarecon(['baseline', 'build', '--unit', 'host', '--out', out, badOnly]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: no line of this input is a record rarecon reads:\n  ${badOnly}: 1 line (invalid-json 1)\n`);
    expect(r.stderr).toContain('no baseline written\n');
    expect(existsSync(out)).toBe(false);
  });

  it('bad lines are reported as in score, the first 50 shown', async () => {
    const lines = Array.from({ length: 55 }, (_, i) => `{"type":"process","n":${i}`);
    const run = JSON.stringify({ type: 'process', time: '2026-10-01T10:00:00Z', host: { id: 'h1' }, sha256: SHA });
    const f = file('bad-history-many.ndjson', `${lines.join('\n')}\n${run}\n`);
    const out = join(tmp, 'some.db');
    const r = await rarecon(['baseline', 'build', '--unit', 'host', '--out', out, f]);
    expect(r.code).toBe(0);
    expect(errorLines(r)).toHaveLength(50);
    expect(errorLines(r)[0]).toBe(`${f}:1: invalid-json: not JSON: ${jsonReason(lines[0]!)}`);
    expect(r.stderr).toContain('... 5 more errors not shown\n');
    expect(r.stderr).toContain(
      `rarecon baseline build: 56 lines read from 1 file (1 records, 0 joined into them, 0 skipped, 0 blank, 55 errors); 1 records, 1 sightings -> ${out}\n`,
    );
    expect(r.stderr).toContain('errors: invalid-json 55\n');
  });
});
