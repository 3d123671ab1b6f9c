// Reads event log files (rarecon NDJSON or Sysmon JSON, plain or gzipped)
// into records and located errors. The format is decided per file by its first
// recognisable line. Memory stays bounded: lines are streamed, and the Sysmon
// join keeps only its capped state and a reorder window.
import type { ReaderItem, RecordError, RecordErrorCode, SourceRecord } from '../../model/records.js';
import { isJsonObject } from './field-reader.js';
import { parseRareconLineFast } from './ndjson-fast.js';
import { jsonErrorReason, parseRareconRecord, RARECON_TYPES } from './ndjson-reader.js';
import { readLineBatches, isLineError, type ReadLinesOptions } from './read-lines.js';
import { isWindowsEventObject } from './sysmon-event.js';
import { SysmonReader, type SysmonReaderOptions, type SysmonStats } from './sysmon-reader.js';

export type LogFormat = 'rarecon' | 'sysmon';

const FAST_MISSES_TO_GIVE_UP = 64;
const BATCH_ITEMS = 256;

export interface LogReaderOptions extends ReadLinesOptions {
  /** Options of the Sysmon join (org, reorder window, DNS TTL, bounds). */
  sysmon?: Partial<SysmonReaderOptions>;
}

export interface FileStats {
  file: string;
  /** Null until a line was recognised (an empty or unreadable file stays null). */
  format: LogFormat | null;
  lines: number;
  blankLines: number;
  records: Record<SourceRecord['type'], number>;
  errors: Partial<Record<RecordErrorCode, number>>;
}

export interface LogReaderStats {
  files: FileStats[];
  /** The Sysmon join over all Sysmon files read. */
  sysmon: SysmonStats;
}

function newFileStats(file: string): FileStats {
  return { file, format: null, lines: 0, blankLines: 0, records: { connection: 0, dns: 0, process: 0 }, errors: {} };
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

  constructor(
    private readonly files: readonly string[],
    private readonly opts: LogReaderOptions = {},
  ) {
    this.sysmon = new SysmonReader(opts.sysmon);
    for (const f of files) if (!this.perFile.has(f)) this.perFile.set(f, newFileStats(f));
  }

  stats(): LogReaderStats {
    return {
      files: [...this.perFile.values()].map((s) => ({ ...s, records: { ...s.records }, errors: { ...s.errors } })),
      sysmon: this.sysmon.stats(),
    };
  }

  /** Batches of items (one a chunk read), for callers that want to spare an await per item. */
  async *batches(): AsyncGenerator<ReaderItem[], void, undefined> {
    for (const file of this.files) yield* this.readFile(file);
    const tail = this.count(this.sysmon.flush());
    if (tail.length > 0) yield tail;
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
  private async *readFile(file: string): AsyncGenerator<ReaderItem[], void, undefined> {
    const st = this.perFile.get(file) ?? newFileStats(file);
    this.perFile.set(file, st);
    // Lines the fast path gave back in a row: a file in another shape stops trying it.
    let fastMisses = 0;
    for await (const lines of readLineBatches(file, this.opts)) {
      let out: ReaderItem[] = [];
      for (let n = 0; n < lines.length; n++) {
        // Small batches die young: a whole 1 MiB chunk of records outlived scavenges and cost GC time.
        if (out.length >= BATCH_ITEMS) {
          yield out;
          out = [];
        }
        const item = lines[n]!;
        if (isLineError(item)) {
          if (item.code !== 'read-failed') st.lines++;
          out.push(this.countError(st, item));
          continue;
        }
        st.lines++;
        const origin = { file, line: item.line };
        // First, before the line is decoded to text: a blank line is not a plain record, so it is never taken here.
        const tryFast = st.format !== 'sysmon' && fastMisses < FAST_MISSES_TO_GIVE_UP;
        if (tryFast) {
          const rec = parseRareconLineFast(item.bytes, item.start, item.end, origin);
          if (rec !== null) {
            fastMisses = 0;
            st.format = 'rarecon';
            st.records[rec.type]++;
            out.push(rec);
            continue;
          }
        }
        if (isBlank(item.text)) {
          st.blankLines++;
          continue;
        }
        if (tryFast) fastMisses++;
        let o: unknown;
        try {
          o = JSON.parse(item.text);
        } catch (e) {
          out.push(this.countError(st, lineError('invalid-json', `not JSON: ${jsonErrorReason(e)}`, file, item.line)));
          continue;
        }
        if (!isJsonObject(o)) {
          out.push(this.countError(st, lineError('not-an-object', 'a record must be a JSON object', file, item.line)));
          continue;
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
            continue;
          }
        }
        if (st.format === 'rarecon') {
          const r = parseRareconRecord(o, origin);
          if (r.type === 'error') this.countError(st, r);
          else st.records[r.type]++;
          out.push(r);
        } else if (isWindowsEventObject(o)) {
          // A joined Sysmon record may carry the origin of an earlier file.
          for (const r of this.count(this.sysmon.push(o, origin))) out.push(r);
        } else {
          this.sysmon.countNonSysmon();
        }
      }
      if (out.length > 0) yield out;
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
