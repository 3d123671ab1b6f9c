// Reads event log files (rarecon NDJSON or Sysmon JSON, plain or gzipped)
// into records and located errors. The format is decided per file by its first
// recognisable line. Memory stays bounded: lines are streamed, and the Sysmon
// join keeps only its capped state and a reorder window.
import type { ReaderItem, RecordError, RecordErrorCode, SourceRecord } from '../../model/records.js';
import type { ScannedLines } from '../../model/scanned.js';
import { KIND_CONNECTION, KIND_NUL, L_END, L_KIND, L_START, LINE_STRIDE } from './fast/scanned-slots.js';
import { ScannedChunk } from './fast/scanned-lines.js';
import { isJsonObject } from './field-reader.js';
import { parseRareconLineFast } from './fast/ndjson-fast.js';
import { jsonErrorReason, parseRareconRecord, RARECON_TYPES } from './ndjson-reader.js';
import type { LineScanner } from './fast/native-scan.js';
import {
  DEFAULT_MAX_LINE_BYTES,
  isLineError,
  isLineRegion,
  readLineBatches,
  regionLine,
  regionLines,
  type LineRegion,
  type ReadLinesOptions,
  type TextLine,
} from './read-lines.js';
import { IdTable } from './fast/scanned-table.js';
import { isWindowsEventObject } from './sysmon-event.js';
import { SysmonReader, type LineTally, type SysmonReaderOptions, type SysmonStats } from './sysmon-reader.js';

export type LogFormat = 'rarecon' | 'sysmon';

const FAST_MISSES_TO_GIVE_UP = 64;
const BATCH_ITEMS = 256;
/**
 * A file none of whose first lines is a record of either format (a CSV, a
 * pretty-printed JSON document, random bytes, the baseline file itself) is
 * not read further: its lines are errors, and its name is reported.
 */
export const UNRECOGNISED_LINES_TO_GIVE_UP = 1_000;
const UNRECOGNISED_BYTES_TO_GIVE_UP = 16 * 1024 * 1024;

/** What `rarecon score` and `rarecon baseline build` read, for messages that name them. */
export const FORMATS_READ =
  'rarecon NDJSON (one JSON record a line, "type" connection, dns or process) and Sysmon JSON (one event a line as NXLog or Winlogbeat export it), plain or gzipped';

export interface LogReaderOptions extends ReadLinesOptions {
  /** Options of the Sysmon join (org, reorder window, DNS TTL, bounds). */
  sysmon?: Partial<SysmonReaderOptions>;
}

/**
 * What became of the lines of one file. Every line read is counted once: as
 * a record (by type), joined into records, skipped (by reason), blank, or an
 * error (by code), so `lines` is the sum of them all.
 */
export interface FileStats extends LineTally {
  file: string;
  /**
   * Null until a line was recognised (an empty or unreadable file stays null);
   * 'sysmon' from the first exported Windows event, of any channel.
   */
  format: LogFormat | null;
  lines: number;
  blankLines: number;
  records: Record<SourceRecord['type'], number>;
  errors: Partial<Record<RecordErrorCode, number>>;
  /**
   * Set when the file was not read to its end because none of its first
   * UNRECOGNISED_LINES_TO_GIVE_UP lines (or 16 MiB) was a record of either format.
   */
  abandoned?: true;
}

/**
 * A file that held lines, none of them a record of either format (not blank
 * only, not empty): also a Windows export none of whose events is a Sysmon
 * event (a Security log alone), since no line of it is Sysmon JSON.
 */
export function isUnrecognised(f: FileStats): boolean {
  return f.lines > f.blankLines && (f.format === null || (f.format === 'sysmon' && f.sysmonEvents === 0));
}

export interface LogReaderStats {
  files: FileStats[];
  /** The Sysmon join over all Sysmon files read. */
  sysmon: SysmonStats;
}

/**
 * A connection the native line scanner read: its index in the batch's
 * `scanned` lines. A number, so a batch holds no object for it; told from a
 * record or an error by isScannedLine().
 */
export type ScannedLine = number & { readonly [scannedLineBrand]: true };
declare const scannedLineBrand: unique symbol;

/** A record, an error, or a connection the native line scanner read. */
export type ScanItem = ReaderItem | ScannedLine;

/** Whether the item is a scanned connection (line `item` of the batch's `scanned`) rather than a record or an error. */
export function isScannedLine(item: ScanItem): item is ScannedLine {
  return typeof item === 'number';
}

export interface ScanBatch {
  items: ScanItem[];
  /** The scanned lines the ScannedLine items index; null when there are none. */
  scanned: ScannedLines | null;
  /** The file the batch was read from (a joined Sysmon record may name an earlier one). */
  file: string;
}

/** Reading state of one file. */
interface FileRead {
  file: string;
  st: FileStats;
  /** Lines the fast path gave back in a row: a file in another shape stops trying it. */
  fastMisses: number;
}

function newFileStats(file: string): FileStats {
  return {
    file,
    format: null,
    lines: 0,
    blankLines: 0,
    records: { connection: 0, dns: 0, process: 0 },
    joined: {},
    skipped: {},
    sysmonEvents: 0,
    errors: {},
  };
}

function isBlank(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  // Only a line starting with whitespace can be all whitespace.
  return (c === 32 || c === 9 || c === 13 || c === 0xfeff) && text.trim() === '';
}

function formatOf(o: Record<string, unknown>): LogFormat | null {
  const t = o.type;
  if (typeof t === 'string' && (RARECON_TYPES as readonly string[]).includes(t)) return 'rarecon';
  return isWindowsEventObject(o) ? 'sysmon' : null;
}

/**
 * The records and errors of a list of files, read one after another. Sysmon
 * files share one join, so rotated logs of a host join across files; its
 * reorder window is flushed after the last file. Iterate once.
 */
export class LogReader implements AsyncIterable<ReaderItem> {
  private readonly perFile = new Map<string, FileStats>();
  private readonly sysmon: SysmonReader;
  /** What the scanner's ids stand for, for its current epoch. */
  private table: IdTable | null = null;
  private tableEpoch = -1;
  private readonly readBytes = { total: 0 };

  constructor(
    private readonly files: readonly string[],
    private readonly opts: LogReaderOptions = {},
  ) {
    this.sysmon = new SysmonReader(opts.sysmon);
    for (const f of files) if (!this.perFile.has(f)) this.perFile.set(f, newFileStats(f));
  }

  /** Bytes read from disk so far over all files (before gunzip): the progress line's measure. */
  get bytesRead(): number {
    return this.readBytes.total;
  }

  stats(): LogReaderStats {
    return {
      files: [...this.perFile.values()].map((s) => ({
        ...s,
        records: { ...s.records },
        joined: { ...s.joined },
        skipped: { ...s.skipped },
        errors: { ...s.errors },
      })),
      sysmon: this.sysmon.stats(),
    };
  }

  /** Batches of items (one a chunk read; empty for a chunk of no record), for callers that want to spare an await per item. */
  async *batches(): AsyncGenerator<ReaderItem[], void, undefined> {
    // Without a scanner no item is a scanned line.
    for await (const b of this.scanBatches(null)) yield b.items as ReaderItem[];
  }

  /**
   * Batches in which the connections the native line scanner read are left
   * as ScannedLine indices into `scanned` (see model/scanned.ts); every other line
   * is a record or an error, as from batches(). Each batch must be used up
   * before the next is asked for: the scanner reuses its arrays.
   */
  async *scanBatches(scanner: LineScanner | null): AsyncGenerator<ScanBatch, void, undefined> {
    for (const file of this.files) yield* this.readFile(file, scanner);
    const tail = this.count(this.sysmon.flush());
    if (tail.length > 0) yield { items: tail, scanned: null, file: this.files[this.files.length - 1] ?? '' };
  }

  // Hand-written rather than an async generator: yielding item by item from a
  // generator cost more than the JSON parsing (measured ~2.5 us a line).
  [Symbol.asyncIterator](): AsyncIterator<ReaderItem, undefined> {
    const source = this.batches();
    let batch: ReaderItem[] = [];
    let i = 0;
    const pull = async (): Promise<IteratorResult<ReaderItem, undefined>> => {
      for (;;) {
        const r = await source.next();
        if (r.done === true) return { done: true, value: undefined };
        if (r.value.length === 0) continue;
        batch = r.value;
        i = 1;
        return { done: false, value: r.value[0] as ReaderItem };
      }
    };
    return {
      next: () => (i < batch.length ? Promise.resolve({ done: false, value: batch[i++] as ReaderItem }) : pull()),
      return: async () => {
        await source.return(undefined);
        return { done: true, value: undefined };
      },
    };
  }

  /** Batches of items, to spare an await per line on the hot path. */
  private async *readFile(file: string, scanner: LineScanner | null): AsyncGenerator<ScanBatch, void, undefined> {
    const st = this.perFile.get(file) ?? newFileStats(file);
    this.perFile.set(file, st);
    const f: FileRead = { file, st, fastMisses: 0 };
    const maxLineBytes = this.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    const fileStartBytes = this.readBytes.total;
    const readOpts: ReadLinesOptions = { ...this.opts, readBytes: this.readBytes, ...(scanner === null ? {} : { regions: true }) };
    for await (const lines of readLineBatches(file, readOpts)) {
      if (
        st.format === null &&
        (st.lines - st.blankLines >= UNRECOGNISED_LINES_TO_GIVE_UP ||
          this.readBytes.total - fileStartBytes >= UNRECOGNISED_BYTES_TO_GIVE_UP)
      ) {
        st.abandoned = true;
        return;
      }
      let out: ScanItem[] = [];
      for (let n = 0; n < lines.length; n++) {
        // Small batches die young: a whole 1 MiB chunk of records outlived scavenges and cost GC time.
        if (out.length >= BATCH_ITEMS) {
          yield { items: out, scanned: null, file };
          out = [];
        }
        const item = lines[n]!;
        if (!isLineRegion(item)) {
          this.line(f, item, out);
        } else if (scanner !== null && this.scannable(f)) {
          if (out.length > 0) yield { items: out, scanned: null, file };
          out = [];
          yield* this.scanRegion(f, item, scanner, maxLineBytes);
        } else {
          for (const l of regionLines(file, item, maxLineBytes)) {
            if (out.length >= BATCH_ITEMS) {
              yield { items: out, scanned: null, file };
              out = [];
            }
            this.line(f, l, out);
          }
        }
      }
      // A chunk that became no record (a Sysmon export is mostly joined and skipped lines) still
      // hands control back once, so the caller's progress line moves with the bytes read.
      if (out.length > 0 || lines.length > 0) yield { items: out, scanned: null, file };
    }
  }

  /** The scanner reads only rarecon connections: not for a Sysmon file, nor one whose lines the fast path keeps giving back. */
  private scannable(f: FileRead): boolean {
    return f.st.format !== 'sysmon' && f.fastMisses < FAST_MISSES_TO_GIVE_UP;
  }

  /** A region's lines through the native scanner; what it declines goes the JavaScript way. */
  private *scanRegion(f: FileRead, r: LineRegion, scanner: LineScanner, maxLineBytes: number): Generator<ScanBatch, void, undefined> {
    const { st, file } = f;
    let firstLine = r.firstLine;
    for (let from = r.start; from < r.end;) {
      const scan = scanner.scan(r.bytes, from, r.end, maxLineBytes);
      if (this.table === null || this.tableEpoch !== scanner.epoch) {
        this.table = new IdTable(scanner.strings);
        this.tableEpoch = scanner.epoch;
      }
      const table = this.table;
      const L = scanner.lines;
      const scanned = new ScannedChunk(L, scanner.times, table, r.bytes, file, firstLine);
      let out: ScanItem[] = [];
      for (let i = 0, o = 0; i < scan.count; i++, o += LINE_STRIDE) {
        if (out.length >= BATCH_ITEMS) {
          yield { items: out, scanned, file };
          out = [];
        }
        const kind = L[o + L_KIND]!;
        if (kind === KIND_CONNECTION && table.accepts(L, o)) {
          st.lines++;
          st.format = 'rarecon';
          st.records.connection++;
          f.fastMisses = 0;
          out.push(i as ScannedLine);
          continue;
        }
        const line = regionLine(file, firstLine + i, r.bytes, L[o + L_START]!, L[o + L_END]!, maxLineBytes, kind === KIND_NUL);
        this.line(f, line, out);
      }
      if (out.length > 0) yield { items: out, scanned, file };
      firstLine += scan.count;
      from = scan.next;
    }
  }

  /** One line read the JavaScript way: a record, an error, or nothing for a blank line. */
  private line(f: FileRead, item: TextLine | RecordError, out: ScanItem[]): void {
    const { st, file } = f;
    if (isLineError(item)) {
      if (item.code !== 'read-failed') st.lines++;
      out.push(this.countError(st, item));
      return;
    }
    st.lines++;
    const origin = { file, line: item.line };
    // First, before the line is decoded to text: a blank line is not a plain record, so it is never taken here.
    const tryFast = st.format !== 'sysmon' && f.fastMisses < FAST_MISSES_TO_GIVE_UP;
    if (tryFast) {
      const rec = parseRareconLineFast(item.bytes, item.start, item.end, origin);
      if (rec !== null) {
        f.fastMisses = 0;
        st.format = 'rarecon';
        st.records[rec.type]++;
        out.push(rec);
        return;
      }
    }
    if (isBlank(item.text)) {
      st.blankLines++;
      return;
    }
    if (tryFast) f.fastMisses++;
    let o: unknown;
    try {
      o = JSON.parse(item.text);
    } catch (e) {
      out.push(this.countError(st, lineError('invalid-json', `not JSON: ${jsonErrorReason(e)}`, file, item.line)));
      return;
    }
    if (!isJsonObject(o)) {
      out.push(this.countError(st, lineError('not-an-object', 'a record must be a JSON object', file, item.line)));
      return;
    }
    if (st.format === null) {
      st.format = formatOf(o);
      if (st.format === null) {
        out.push(
          this.countError(
            st,
            lineError('unknown-format', 'neither a rarecon record (type dns/connection/process) nor a Windows event', file, item.line),
          ),
        );
        return;
      }
    }
    if (st.format === 'rarecon') {
      const r = parseRareconRecord(o, origin);
      if (r.type === 'error') this.countError(st, r);
      else st.records[r.type]++;
      out.push(r);
    } else if (isWindowsEventObject(o)) {
      // A joined Sysmon record may carry the origin of an earlier file.
      for (const r of this.count(this.sysmon.push(o, origin, st))) out.push(r);
    } else {
      this.sysmon.countNonSysmon(st);
    }
  }

  private countError(st: FileStats, e: RecordError): RecordError {
    st.errors[e.code] = (st.errors[e.code] ?? 0) + 1;
    return e;
  }

  /** Counts items against the file they came from (a Sysmon record may leave after its file). */
  private count(items: ReaderItem[]): ReaderItem[] {
    for (const item of items) {
      const st = this.perFile.get(item.origin?.file ?? '');
      if (st === undefined) continue;
      if (item.type === 'error') st.errors[item.code] = (st.errors[item.code] ?? 0) + 1;
      else st.records[item.type]++;
    }
    return items;
  }
}

function lineError(code: RecordErrorCode, message: string, file: string, line: number): RecordError {
  return { type: 'error', code, message, origin: { file, line } };
}

export function readLogFiles(files: readonly string[], opts: LogReaderOptions = {}): LogReader {
  return new LogReader(files, opts);
}

export function readLogFile(file: string, opts: LogReaderOptions = {}): LogReader {
  return new LogReader([file], opts);
}
