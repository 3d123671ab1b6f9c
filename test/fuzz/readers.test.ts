// Fuzz: the log readers on seeded hostile input (hostile-lines.ts). Every line
// is counted (a record, an error or a blank line, never lost, never two), the
// JavaScript reader and the native line scanner give the same records and
// errors in the same order, what the scanner reads of a line (host, org,
// sha256, addresses, port, name, direction, time) is what the record says, and
// the byte-level fast parser agrees with the reference parser line by line.
// RARECON_FUZZ_SEED / RARECON_FUZZ_LINES pick another input or a longer run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReaderItem } from '../../src/model/records.js';
import type { ScannedLines } from '../../src/model/scanned.js';
import { isScannedLine, readLogFile, type LogReaderStats } from '../../src/sources/replay/log-reader.js';
import { parseRareconLineFast } from '../../src/sources/replay/fast/ndjson-fast.js';
import { loadLineScanner, type LineScanner } from '../../src/sources/replay/fast/native-scan.js';
import { parseRareconRecord } from '../../src/sources/replay/ndjson-reader.js';
import { fuzzSettings, hostileNdjson, hostileSysmon, Rng } from './hostile-lines.js';

const { seed, lines } = fuzzSettings(20_000);
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-fuzz-readers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sysmonFile = join(tmp, 'hostile-sysmon.json');

beforeAll(() => {
  writeFileSync(sysmonFile, hostileSysmon(new Rng(seed + 2), Math.ceil(lines / 4)));
});

interface Read {
  items: ReaderItem[];
  stats: LogReaderStats;
  scannedLines: number;
}

/** Every item of a file, the scanned ones as the record the scanner's line stands for, checked field by field. */
async function readAll(file: string, scanner: LineScanner | null): Promise<Read> {
  const reader = readLogFile(file);
  const items: ReaderItem[] = [];
  let scannedLines = 0;
  for await (const b of reader.scanBatches(scanner)) {
    for (const item of b.items) {
      if (!isScannedLine(item)) {
        items.push(item);
        continue;
      }
      scannedLines++;
      const rec = b.scanned!.record(item);
      expectScannedFieldsOf(b.scanned!, item, rec);
      items.push(rec);
    }
  }
  return { items, stats: reader.stats(), scannedLines };
}

/** What scoring reads from the scanner's arrays must be what the record holds. */
function expectScannedFieldsOf(s: ScannedLines, i: number, rec: ReturnType<ScannedLines['record']>): void {
  const t = s.table;
  const at = `${rec.origin?.file}:${rec.origin?.line} (seed ${seed})`;
  expect(
    {
      time: s.time(i),
      host: t.text(s.host(i)),
      org: t.org(s.org(i)),
      sha256: s.sha(i) < 0 ? null : t.text(s.sha(i)),
      ip: t.ip(s.ip(i)),
      port: s.port(i),
      hostname: s.name(i) < 0 ? null : t.hostname(s.name(i)),
      inbound: s.inbound(i),
    },
    at,
  ).toEqual({
    time: rec.timeMs,
    host: rec.host.id,
    org: rec.host.org,
    sha256: rec.process.sha256,
    ip: rec.remote.ip,
    port: rec.remote.port,
    hostname: rec.remote.hostname,
    inbound: rec.direction === 'inbound',
  });
}

function lineCount(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n + (b.length > 0 && b[b.length - 1] !== 10 ? 1 : 0);
}

const addon = loadLineScanner();

// All-ASCII chunks are the ones the native scanner reads; raw bytes (invalid UTF-8, a BOM) go the JavaScript way.
describe.each([
  { kind: 'all-ASCII', ascii: true, n: lines, seedOf: seed },
  { kind: 'raw-byte', ascii: false, n: Math.ceil(lines / 2), seedOf: seed + 1 },
])('fuzz: the readers on $n hostile $kind NDJSON lines (seed $seedOf)', ({ ascii, n, seedOf }) => {
  const ndjsonFile = join(tmp, `hostile-${ascii ? 'ascii' : 'bytes'}.ndjson`);
  let ndjsonBytes: Buffer;
  let js: Read;
  beforeAll(async () => {
    ndjsonBytes = hostileNdjson(new Rng(seedOf), n, { ascii });
    writeFileSync(ndjsonFile, ndjsonBytes);
    js = await readAll(ndjsonFile, null);
  });

  it('counts every line once: a record, an error or a blank line', () => {
    const f = js.stats.files[0]!;
    const records = f.records.connection + f.records.dns + f.records.process;
    const errors = Object.values(f.errors).reduce((a, b) => a + b, 0);
    expect(f.lines).toBe(lineCount(ndjsonBytes));
    expect(records + errors + f.blankLines).toBe(f.lines);
    expect(js.items.length).toBe(records + errors);
    // The input is hostile enough to exercise every path: plenty of both, and the errors named and located.
    expect(records).toBeGreaterThan(n * 0.4);
    expect(errors).toBeGreaterThan(n * 0.2);
    for (const e of js.items) if (e.type === 'error') expect(e.origin.line).toBeGreaterThan(0);
  });

  it('gives each line what the reference parser (JSON.parse, field by field) gives', () => {
    const text = ndjsonBytes.toString('latin1');
    const starts = [0];
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    let fastTaken = 0;
    for (const item of js.items) {
      if (item.type === 'error') continue;
      const line = item.origin!.line;
      const start = starts[line - 1]!;
      const end = starts[line]! - 1;
      const reference = parseRareconRecord(ndjsonBytes.subarray(start, end).toString('utf8'), { file: ndjsonFile, line });
      expect(reference, `line ${line} (seed ${seedOf})`).toEqual(item);
      const fast = parseRareconLineFast(ndjsonBytes, start, end, { file: ndjsonFile, line });
      if (fast !== null) {
        fastTaken++;
        expect(fast, `line ${line} (seed ${seedOf})`).toEqual(item);
      }
    }
    expect(fastTaken).toBeGreaterThan(0);
  });

  it.runIf(addon.ok)('reads the same records and errors with the native line scanner', async () => {
    if (!addon.ok) return;
    const native = await readAll(ndjsonFile, addon.scanner);
    // The scanner reads ASCII chunks only: of a raw-byte file, whatever chunk happens to be all ASCII.
    if (ascii) expect(native.scannedLines).toBeGreaterThan(n * 0.1);
    expect(native.stats).toEqual(js.stats);
    expect(native.items.length).toBe(js.items.length);
    for (let i = 0; i < js.items.length; i++) expect(native.items[i], `item ${i} (seed ${seedOf})`).toEqual(js.items[i]);
  });
});

describe(`fuzz: the Sysmon reader on hostile events (seed ${seed + 2})`, () => {
  it('reads every line without a throw, and the same way with or without the native scanner', async () => {
    const js = await readAll(sysmonFile, null);
    const f = js.stats.files[0]!;
    expect(f.format).toBe('sysmon');
    expect(f.lines).toBe(Math.ceil(lines / 4));
    expect(f.records.connection).toBeGreaterThan(0);
    for (const item of js.items) if (item.type === 'error') expect(item.message).not.toBe('');
    if (addon.ok) {
      const native = await readAll(sysmonFile, addon.scanner);
      expect(native.items).toEqual(js.items);
      expect(native.stats).toEqual(js.stats);
    }
  });
});
