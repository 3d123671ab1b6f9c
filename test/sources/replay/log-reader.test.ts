import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConnectionEvent, ReaderItem, RecordError } from '../../../src/model/records.js';
import { readLogFile, readLogFiles, type LogReader } from '../../../src/sources/replay/log-reader.js';

const ndjson = (name: string): string => fileURLToPath(new URL(`../../fixtures/ndjson/${name}`, import.meta.url));
const sysmon = (name: string): string => fileURLToPath(new URL(`../../fixtures/sysmon/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rarecon-log-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function drain(reader: LogReader): Promise<ReaderItem[]> {
  const items: ReaderItem[] = [];
  for await (const item of reader) items.push(item);
  return items;
}

/** `file:line code` as the CLI prints them. */
function located(items: ReaderItem[]): string[] {
  return items
    .filter((i): i is RecordError => i.type === 'error')
    .map((e) => `${e.origin.file.split('/').pop()}:${e.origin.line} ${e.code}`);
}

const GOOD_LINE = '{"type":"process","time":"2026-10-01T10:00:00Z","host":{"id":"h1"},"sha256":"' + 'ab'.repeat(32) + '"}';

describe('readLogFile on rarecon NDJSON', () => {
  it('reads every good line, skips a blank one, tolerates CRLF', async () => {
    const reader = readLogFile(ndjson('good.ndjson'));
    const items = await drain(reader);
    expect(items.map((i) => i.type)).toEqual(['dns', 'connection', 'connection', 'process', 'process']);
    expect(items.map((i) => i.origin?.line)).toEqual([1, 2, 4, 5, 6]);
    expect(reader.stats().files).toEqual([
      {
        file: ndjson('good.ndjson'),
        format: 'rarecon',
        lines: 6,
        blankLines: 1,
        records: { connection: 2, dns: 1, process: 2 },
        joined: {},
        skipped: {},
        sysmonEvents: 0,
        errors: {},
      },
    ]);
  });

  it('reports each bad line with its line number and keeps the good ones', async () => {
    const reader = readLogFile(ndjson('bad-lines.ndjson'));
    const items = await drain(reader);
    expect(located(items)).toEqual([
      'bad-lines.ndjson:2 invalid-json',
      'bad-lines.ndjson:3 bad-value',
      'bad-lines.ndjson:4 missing-field',
      'bad-lines.ndjson:5 bad-value',
      'bad-lines.ndjson:6 wrong-type',
      'bad-lines.ndjson:7 bad-value',
      'bad-lines.ndjson:8 bad-value',
      'bad-lines.ndjson:9 not-an-object',
      'bad-lines.ndjson:10 bad-value',
    ]);
    const messages = items.filter((i): i is RecordError => i.type === 'error').map((e) => e.message);
    expect(messages[0]).toMatch(/^not JSON: /);
    expect(messages[1]).toMatch(/remote\.port/);
    expect(messages[2]).toMatch(/remote\.ip/);
    expect(messages[4]).toMatch(/"host" must be an object/);
    expect(items.filter((i) => i.type !== 'error').map((i) => i.origin?.line)).toEqual([1, 11]);
    expect(reader.stats().files[0]?.errors).toEqual({
      'invalid-json': 1,
      'bad-value': 5,
      'missing-field': 1,
      'wrong-type': 1,
      'not-an-object': 1,
    });
  });

  it('survives binary garbage and a 10 MB line in the middle of a file', async () => {
    const f = join(dir, 'hostile.ndjson');
    const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => [0, 0xff, 0xfe, 0x01, 0x9c][i % 5] as number));
    writeFileSync(
      f,
      Buffer.concat([
        Buffer.from(GOOD_LINE + '\n'),
        garbage,
        Buffer.from('\n{"type":"dns","blob":"' + 'z'.repeat(10 * 1024 * 1024) + '"}\n'),
        Buffer.from(GOOD_LINE + '\r\n'),
      ]),
    );
    const items = await drain(readLogFile(f));
    expect(located(items)).toEqual(['hostile.ndjson:2 binary-data', 'hostile.ndjson:3 line-too-long']);
    expect(items.filter((i) => i.type === 'process').map((i) => i.origin?.line)).toEqual([1, 4]);
  });

  it('keeps the records before the cut of a truncated .gz and reports read-failed', async () => {
    const f = join(dir, 'cut.ndjson.gz');
    const body = Array.from({ length: 3000 }, (_, i) =>
      GOOD_LINE.replace('10:00:00', `10:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}`),
    ).join('\n');
    const gz = gzipSync(body + '\n');
    writeFileSync(f, gz.subarray(0, gz.length - 200));
    const reader = readLogFile(f);
    const items = await drain(reader);
    const records = items.filter((i) => i.type === 'process');
    expect(records.length).toBeGreaterThan(1000);
    expect(records.every((r, idx) => r.origin?.line === idx + 1)).toBe(true);
    expect(located(items)).toEqual([`cut.ndjson.gz:${records.length + 1} read-failed`]);
    expect(reader.stats().files[0]?.errors).toEqual({ 'read-failed': 1 });
  });

  it('reads an empty file as nothing, and a missing file as one read-failed at line 0', async () => {
    const empty = join(dir, 'empty.ndjson');
    writeFileSync(empty, '');
    const reader = readLogFiles([empty, join(dir, 'missing.ndjson')]);
    const items = await drain(reader);
    expect(located(items)).toEqual(['missing.ndjson:0 read-failed']);
    expect(reader.stats().files.map((s) => [s.format, s.lines])).toEqual([
      [null, 0],
      [null, 0],
    ]);
  });

  it('reports lines of an unrecognised format until one is recognised', async () => {
    const f = join(dir, 'other.ndjson');
    writeFileSync(f, '{"msg":"hello"}\n{"level":"info"}\n' + GOOD_LINE + '\n');
    const items = await drain(readLogFile(f));
    expect(located(items)).toEqual(['other.ndjson:1 unknown-format', 'other.ndjson:2 unknown-format']);
    expect(items.filter((i) => i.type === 'process')).toHaveLength(1);
  });
});

describe('readLogFiles across formats', () => {
  it('reads rarecon NDJSON and a gzipped Sysmon export in one pass, with stats per file', async () => {
    const plain = join(dir, 'sysmon-plain.json');
    // The Winlogbeat fixture again, gzipped under a name without .gz.
    writeFileSync(plain, gzipSync(readFileSync(sysmon('winlogbeat-wuauclt-notepad.ndjson'))));
    const reader = readLogFiles([ndjson('good.ndjson'), sysmon('covenant_lolbin_wuauclt_createremotethread.json.gz'), plain], {
      sysmon: { org: 'acme' },
    });
    const items = await drain(reader);
    const st = reader.stats();
    expect(st.files.map((s) => [s.format, s.lines, s.records])).toEqual([
      ['rarecon', 6, { connection: 2, dns: 1, process: 2 }],
      ['sysmon', 1326, { connection: 25, dns: 2, process: 4 }],
      ['sysmon', 9, { connection: 2, dns: 2, process: 1 }],
    ]);
    expect(st.sysmon.connections).toBe(27);
    const fromPlain = items.filter((i): i is ConnectionEvent => i.type === 'connection' && i.origin?.file === plain);
    expect(fromPlain.map((c) => c.host.org)).toEqual(['acme', 'acme']);
    expect(located(items)).toEqual([]);
  });
});
