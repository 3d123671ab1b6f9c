import { mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { isLineError, readLines, type LineItem } from '../../../src/sources/replay/read-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'rarecon-read-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(file: string, maxLineBytes?: number): Promise<LineItem[]> {
  const out: LineItem[] = [];
  for await (const item of readLines(file, maxLineBytes === undefined ? {} : { maxLineBytes })) out.push(item);
  return out;
}

function texts(items: LineItem[]): Array<[number, string]> {
  return items.filter((i) => !isLineError(i)).map((i) => [(i as { line: number }).line, (i as { text: string }).text]);
}

function errors(items: LineItem[]): Array<[number, string]> {
  return items.filter(isLineError).map((e) => [e.origin.line, e.code]);
}

describe('readLines', () => {
  it('numbers lines from 1, strips CRLF and a UTF-8 BOM, keeps a last line without newline', async () => {
    const f = join(dir, 'crlf.ndjson');
    writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\r\n\r\n{"b":"é"}\n{"c":3}')]));
    expect(texts(await collect(f))).toEqual([
      [1, '{"a":1}'],
      [2, ''],
      [3, '{"b":"é"}'],
      [4, '{"c":3}'],
    ]);
  });

  it('reads an all-ASCII file (decoded only when asked) the same way: CRLF stripped, blank and tabbed lines kept', async () => {
    const f = join(dir, 'ascii-crlf.ndjson');
    writeFileSync(f, '{"a":1}\r\n\r\n\t{"b":"x\\u00e9"}\n\r\n{"c":3}\r\n');
    const items = await collect(f);
    expect(texts(items)).toEqual([
      [1, '{"a":1}'],
      [2, ''],
      [3, '\t{"b":"x\\u00e9"}'],
      [4, ''],
      [5, '{"c":3}'],
    ]);
    const third = items[2] as { bytes: Buffer; start: number; end: number };
    expect(third.bytes.toString('utf8', third.start, third.end)).toBe('\t{"b":"x\\u00e9"}');
  });

  it('reads an empty file as no lines', async () => {
    const f = join(dir, 'empty.ndjson');
    writeFileSync(f, '');
    expect(await collect(f)).toEqual([]);
  });

  it('detects gzip by its magic bytes, whatever the file is called', async () => {
    const f = join(dir, 'rotated.log.1');
    writeFileSync(f, gzipSync('one\ntwo\n'));
    expect(texts(await collect(f))).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
  });

  it('keeps lines intact across 1 MiB chunk boundaries', async () => {
    const f = join(dir, 'many.ndjson');
    const lines: string[] = [];
    for (let i = 0, size = 0; size < 3.5 * 1024 * 1024; i++) {
      lines.push(`{"i":${i},"pad":"${'x'.repeat((i * 7919) % 5000)}","u":"ü€"}`);
      size += (lines[i] as string).length + 1;
    }
    writeFileSync(f, lines.join('\n') + '\n');
    const got = texts(await collect(f));
    expect(got.length).toBe(lines.length);
    expect(got.every(([n, t]) => t === lines[n - 1])).toBe(true);
  });

  it('reports a 10 MB line as line-too-long for its line number and goes on', async () => {
    const f = join(dir, 'long.ndjson');
    writeFileSync(f, `{"first":1}\n{"big":"${'a'.repeat(10 * 1024 * 1024)}"}\n{"third":3}\n`);
    const items = await collect(f);
    expect(errors(items)).toEqual([[2, 'line-too-long']]);
    expect(texts(items)).toEqual([
      [1, '{"first":1}'],
      [3, '{"third":3}'],
    ]);
  });

  it('does not buffer an over-long line whole (160 MB line, memory stays flat)', async () => {
    const f = join(dir, 'huge.ndjson');
    const ws = createWriteStream(f);
    const block = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 160; i++) if (!ws.write(block)) await once(ws, 'drain');
    ws.end('\n{"after":1}\n');
    await once(ws, 'finish');
    const base = process.memoryUsage().arrayBuffers;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 1);
    const items = await collect(f);
    clearInterval(timer);
    expect(errors(items)).toEqual([[1, 'line-too-long']]);
    expect(texts(items)).toEqual([[2, '{"after":1}']]);
    // Holding the line would take 160 MB; the reader keeps a chunk or two (plus chunks the GC has not yet freed).
    expect(peak - base).toBeLessThan(96 * 1024 * 1024);
  });

  it('honours a smaller maxLineBytes', async () => {
    const f = join(dir, 'small-limit.ndjson');
    writeFileSync(f, 'short\n' + 'x'.repeat(100) + '\nshort again');
    const items = await collect(f, 50);
    expect(errors(items)).toEqual([[2, 'line-too-long']]);
    expect(texts(items).map(([n]) => n)).toEqual([1, 3]);
  });

  it('reports binary garbage as binary-data but keeps text with one stray bad byte', async () => {
    const f = join(dir, 'binary.ndjson');
    const garbage = Buffer.alloc(600);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 151 + 7) % 256 === 10 ? 0 : (i * 151 + 7) % 256;
    const stray = Buffer.concat([Buffer.from('{"user":"j'), Buffer.from([0xe9]), Buffer.from('r\u00f4me"}')]);
    writeFileSync(f, Buffer.concat([Buffer.from('{"ok":1}\n'), garbage, Buffer.from('\n'), stray, Buffer.from('\n{"ok":2}\n')]));
    const items = await collect(f);
    expect(errors(items)).toEqual([[2, 'binary-data']]);
    expect(texts(items).map(([n]) => n)).toEqual([1, 3, 4]);
    expect(texts(items)[1]?.[1]).toBe('{"user":"j\uFFFDr\u00f4me"}');
  });

  it('keeps what a truncated gzip held and ends with read-failed', async () => {
    const f = join(dir, 'truncated.ndjson.gz');
    const lines = Array.from({ length: 5000 }, (_, i) => `{"i":${i},"v":"${(i * 2654435761) % 1000003}"}`);
    const gz = gzipSync(lines.join('\n') + '\n');
    writeFileSync(f, gz.subarray(0, Math.floor(gz.length * 0.6)));
    const items = await collect(f);
    const got = texts(items);
    expect(got.length).toBeGreaterThan(100);
    expect(got.length).toBeLessThan(5000);
    expect(got.every(([n, t]) => t === lines[n - 1])).toBe(true);
    const last = items[items.length - 1];
    expect(last !== undefined && isLineError(last) && last.code).toBe('read-failed');
    expect(errors(items)).toHaveLength(1);
  });

  it('reads a gzipped stream from a pipe (no seeking), e.g. rarecon score <(cat x.gz)', async () => {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const writer = createWriteStream(fifo);
    writer.end(gzipSync('{"a":1}\n{"b":2}\n'));
    expect(texts(await collect(fifo))).toEqual([
      [1, '{"a":1}'],
      [2, '{"b":2}'],
    ]);
  });

  it('stops reading when the consumer stops early', async () => {
    const f = join(dir, 'early.ndjson.gz');
    writeFileSync(f, gzipSync('x\n'.repeat(300_000)));
    let seen = 0;
    for await (const item of readLines(f)) {
      if (!isLineError(item)) seen++;
      if (seen === 10) break;
    }
    expect(seen).toBe(10);
  });

  it('gives read-failed at line 0 for a missing file or a directory', async () => {
    const missing = await collect(join(dir, 'nope.ndjson'));
    expect(errors(missing)).toEqual([[0, 'read-failed']]);
    expect(isLineError(missing[0] as LineItem) && (missing[0] as { message: string }).message).toMatch(/ENOENT/);
    expect(errors(await collect(dir))).toEqual([[0, 'read-failed']]);
  });
});
