// Streams the lines of a log file, plain or gzipped, with bounded memory.
// Chunks are split by hand: `readline` costs ~7% more and cannot cap a line's
// size, and one 10 MB line must not be buffered whole.
import { isAscii } from 'node:buffer';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { pipeline, Readable } from 'node:stream';
import type { RecordError } from '../../model/records.js';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
// A chunk's lines are all decoded before the first is parsed: 1 MiB of them
// (~2,300 lines) outlived young-generation collections and were promoted, which
// grew the old space (peak RSS of a 1M-event score run 238-242 MiB at 1 MiB,
// 201-209 MiB at 64 KiB, 205 at 256 KiB; reading alone a little slower at 64 KiB).
const CHUNK_BYTES = 256 * 1024;

export interface ReadLinesOptions {
  /** A longer line is reported as `line-too-long` and skipped. */
  maxLineBytes?: number;
  /**
   * Hand the complete lines of an all-ASCII chunk over as one LineRegion, for
   * the native line scanner to split and read (see log-reader.ts). Chunks
   * are then read into reused buffers: a batch's items are valid until the
   * batch after the next is read.
   */
  regions?: boolean;
  /** Bytes read from disk (before gunzip) are added here as they are read: the progress line's measure. */
  readBytes?: { total: number };
}

export interface TextLine {
  readonly line: number;
  /** The line decoded as UTF-8 (done on first use for lines of plain ASCII). */
  readonly text: string;
  /** The line's bytes are bytes[start, end) (valid until the next batch is read): the NDJSON fast path reads them. */
  readonly bytes: Buffer;
  readonly start: number;
  readonly end: number;
}

/**
 * A line of a chunk that is all ASCII without NUL: it cannot be binary data, so
 * its text is decoded only when asked for. The NDJSON fast path reads the bytes
 * alone, and decoding every line cost ~0.2 us of ~8 us a scored event.
 */
class AsciiLine implements TextLine {
  private decoded: string | null = null;

  constructor(
    readonly line: number,
    readonly bytes: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  get text(): string {
    return (this.decoded ??= (this.bytes as Buffer & { latin1Slice(s: number, e: number): string }).latin1Slice(this.start, this.end));
  }
}

/** Whole lines bytes[start, end) of an all-ASCII chunk, left unsplit (`regions` option); `end` is just after a newline. */
export interface LineRegion {
  readonly type: 'region';
  readonly bytes: Buffer;
  readonly start: number;
  readonly end: number;
  /** Line number of the region's first line. */
  readonly firstLine: number;
}

export type LineItem = TextLine | RecordError | LineRegion;

export function isLineError(item: LineItem): item is RecordError {
  return (item as RecordError).type === 'error';
}

export function isLineRegion(item: LineItem): item is LineRegion {
  return (item as LineRegion).type === 'region';
}

/**
 * A line of a region as the splitter would have given it: `bytes[start, end)`
 * without its newline or a trailing CR; `hasNul` when the line holds a NUL.
 */
export function regionLine(
  file: string,
  line: number,
  bytes: Buffer,
  start: number,
  end: number,
  maxLineBytes: number,
  hasNul: boolean,
): TextLine | RecordError {
  // The splitter's test counts a stripped CR.
  const rawEnd = bytes[end] === 13 ? end + 1 : end;
  if (rawEnd - start > maxLineBytes) return lineError(file, line, 'line-too-long', `line longer than ${maxLineBytes} bytes, skipped`);
  if (hasNul) return decodeLine(file, line, bytes, start, end, true);
  return new AsciiLine(line, bytes, start, end);
}

/** The lines of a region split in JavaScript, for a file the native scanner does not read. */
export function regionLines(file: string, r: LineRegion, maxLineBytes: number): (TextLine | RecordError)[] {
  const out: (TextLine | RecordError)[] = [];
  let nextNul = r.bytes.indexOf(0, r.start);
  let line = r.firstLine;
  for (let start = r.start; start < r.end; line++) {
    const nl = r.bytes.indexOf(10, start);
    while (nextNul !== -1 && nextNul < start) nextNul = r.bytes.indexOf(0, start);
    const end = nl > start && r.bytes[nl - 1] === 13 ? nl - 1 : nl;
    out.push(regionLine(file, line, r.bytes, start, end, maxLineBytes, nextNul !== -1 && nextNul < nl));
    start = nl + 1;
  }
  return out;
}

function lineError(file: string, line: number, code: RecordError['code'], message: string): RecordError {
  return { type: 'error', code, message, origin: { file, line } };
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as NodeJS.ErrnoException).code;
  return code !== undefined && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
}

const REPLACEMENT = '\uFFFD';

/**
 * Binary garbage rather than text with a stray bad byte: NULs, control
 * characters and undecodable bytes make up a tenth of the line or more.
 */
function looksBinary(text: string): boolean {
  let bad = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 0xfffd) bad++;
  }
  return bad > 0 && bad * 10 >= text.length;
}

/** Splits byte chunks into lines; one instance per file. */
class LineSplitter {
  private lineNo = 1;
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** The current line already exceeded the limit: drop bytes until its newline. */
  private skipping = false;
  /** The chunk being split has no byte >= 0x80. */
  private asciiChunk = false;

  constructor(
    private readonly file: string,
    private readonly maxLineBytes: number,
    private readonly regions: boolean,
  ) {}

  get currentLine(): number {
    return this.lineNo;
  }

  /** True while an unterminated line is pending. */
  get hasPartialLine(): boolean {
    return this.carryBytes > 0 || this.skipping;
  }

  push(chunk: Buffer, out: LineItem[]): void {
    let start = 0;
    let nextNul = chunk.indexOf(0);
    // One native check a chunk (~1 ns a line): ASCII lines skip the UTF-8 decode and the binary-data test.
    this.asciiChunk = isAscii(chunk);
    for (;;) {
      if (this.regions && this.asciiChunk && !this.skipping && this.carryBytes === 0) {
        start = this.region(chunk, start, out);
      }
      const nl = chunk.indexOf(10, start);
      if (nl === -1) {
        this.keepPartial(chunk, start);
        return;
      }
      if (this.skipping) {
        out.push(this.tooLong());
        this.skipping = false;
      } else if (this.carryBytes > 0) {
        const tail = chunk.subarray(start, nl);
        if (this.carryBytes + tail.length > this.maxLineBytes) {
          out.push(this.tooLong());
        } else {
          const whole = Buffer.concat([...this.carry, tail]);
          out.push(this.decode(whole, 0, whole.length, whole.indexOf(0) !== -1));
        }
        this.carry = [];
        this.carryBytes = 0;
      } else if (nl - start > this.maxLineBytes) {
        out.push(this.tooLong());
      } else {
        while (nextNul !== -1 && nextNul < start) nextNul = chunk.indexOf(0, start);
        const hasNul = nextNul !== -1 && nextNul < nl;
        if (this.asciiChunk && !hasNul) {
          out.push(new AsciiLine(this.lineNo, chunk, start, nl > start && chunk[nl - 1] === 13 ? nl - 1 : nl));
        } else {
          out.push(this.decode(chunk, start, nl, hasNul));
        }
      }
      this.lineNo++;
      start = nl + 1;
    }
  }

  /** The complete lines from `start` as one region; returns where the unterminated rest begins. */
  private region(chunk: Buffer, start: number, out: LineItem[]): number {
    const last = chunk.lastIndexOf(10);
    if (last < start) return start;
    out.push({ type: 'region', bytes: chunk, start, end: last + 1, firstLine: this.lineNo });
    for (let nl = chunk.indexOf(10, start); nl !== -1 && nl <= last; nl = chunk.indexOf(10, nl + 1)) this.lineNo++;
    return last + 1;
  }

  /** End of input: the last line, when it has no newline. */
  end(out: LineItem[]): void {
    if (this.skipping) {
      out.push(this.tooLong());
    } else if (this.carryBytes > 0) {
      const whole = Buffer.concat(this.carry);
      out.push(this.decode(whole, 0, whole.length, whole.indexOf(0) !== -1));
    } else {
      return;
    }
    this.carry = [];
    this.carryBytes = 0;
    this.skipping = false;
    this.lineNo++;
  }

  private keepPartial(chunk: Buffer, start: number): void {
    if (this.skipping || start >= chunk.length) return;
    const restBytes = chunk.length - start;
    if (this.carryBytes + restBytes > this.maxLineBytes) {
      this.carry = [];
      this.carryBytes = 0;
      this.skipping = true;
      return;
    }
    // A copy, so the carry does not pin the whole 1 MiB chunk.
    this.carry.push(Buffer.from(chunk.subarray(start)));
    this.carryBytes += restBytes;
  }

  private tooLong(): RecordError {
    return lineError(this.file, this.lineNo, 'line-too-long', `line longer than ${this.maxLineBytes} bytes, skipped`);
  }

  private decode(buf: Buffer, start: number, end: number, hasNul: boolean): TextLine | RecordError {
    if (end > start && buf[end - 1] === 13) end--;
    return decodeLine(this.file, this.lineNo, buf, start, end, hasNul);
  }
}

/** A line decoded as UTF-8 (after a first-line BOM), or a binary-data error. */
function decodeLine(file: string, line: number, buf: Buffer, start: number, end: number, hasNul: boolean): TextLine | RecordError {
  if (line === 1 && end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) {
    start += 3;
  }
  const text = buf.toString('utf8', start, end);
  if ((hasNul || text.includes(REPLACEMENT)) && looksBinary(text)) {
    return lineError(file, line, 'binary-data', 'binary data (NUL bytes or invalid UTF-8), not a text line');
  }
  return { line, text, bytes: buf, start, end };
}

/**
 * The bytes of `file`, gunzipped when it starts with the gzip magic bytes (the
 * name does not matter: rotated logs are often gzipped without `.gz`). Peeks
 * at the stream instead of seeking, so a pipe such as `<(zcat x)` works too.
 *
 * With `reuse`, plain bytes are read into two buffers taken in turn, so a
 * chunk is valid until the one after the next is read. A new buffer a chunk
 * (as a read stream gives) is garbage outside the heap that V8 collects only
 * once ~64 MiB of it piled up (39 MiB of it late in `rarecon score` of the 5M bench events).
 */
async function* fileBytes(
  file: string,
  state: { gzip: boolean },
  counter: { total: number } | undefined,
  reuse: boolean,
): AsyncGenerator<Buffer, void, undefined> {
  const fh = await open(file, 'r');
  const pool = reuse ? [Buffer.allocUnsafeSlow(CHUNK_BYTES), Buffer.allocUnsafeSlow(CHUNK_BYTES)] : null;
  let turn = 0;
  /** The next bytes read, null at the end; in a pooled buffer unless `fresh`. */
  const next = async (fresh: boolean): Promise<Buffer | null> => {
    const buf = fresh || pool === null ? Buffer.allocUnsafeSlow(CHUNK_BYTES) : pool[turn++ & 1]!;
    const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, null);
    if (bytesRead === 0) return null;
    if (counter !== undefined) counter.total += bytesRead;
    return buf.subarray(0, bytesRead);
  };
  try {
    let head: Buffer = Buffer.alloc(0);
    while (head.length < 2) {
      const r = await next(head.length > 0);
      if (r === null) break;
      head = head.length === 0 ? r : Buffer.concat([head, r]);
    }
    if (head.length < 2 || head[0] !== 0x1f || head[1] !== 0x8b) {
      if (head.length > 0) yield head;
      for (let r = await next(false); r !== null; r = await next(false)) yield r;
      return;
    }
    state.gzip = true;
    // gunzip reads ahead of its output: its input is read into buffers of its own.
    const rest = async function* (): AsyncGenerator<Buffer, void, undefined> {
      yield Buffer.from(head);
      for (let r = await next(true); r !== null; r = await next(true)) yield r;
    };
    // Errors of either stream surface through the iteration below; the callback only ends the pipeline.
    const gunzip = pipeline(Readable.from(rest()), createGunzip({ chunkSize: CHUNK_BYTES }), () => undefined);
    for await (const chunk of gunzip) yield chunk as Buffer;
  } finally {
    await fh.close();
  }
}

/**
 * The lines of `file` in batches (one batch a chunk), for callers that want
 * to avoid an await per line. Never throws: a file that cannot be read gives
 * a `read-failed` error (line 0 when nothing could be read at all).
 */
export async function* readLineBatches(file: string, opts: ReadLinesOptions = {}): AsyncGenerator<LineItem[], void, undefined> {
  const splitter = new LineSplitter(file, opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, opts.regions === true);
  const state = { gzip: false };
  try {
    for await (const chunk of fileBytes(file, state, opts.readBytes, opts.regions === true)) {
      const out: LineItem[] = [];
      splitter.push(chunk, out);
      if (out.length > 0) yield out;
    }
  } catch (e) {
    const linesRead = splitter.currentLine - 1;
    if (linesRead === 0 && !splitter.hasPartialLine && !state.gzip) {
      yield [lineError(file, 0, 'read-failed', `cannot read ${file}: ${errorText(e)}`)];
      return;
    }
    // What was read stays read; the unterminated tail of a broken stream is
    // dropped since it is almost surely cut mid-record.
    const line = splitter.hasPartialLine ? splitter.currentLine : linesRead;
    const what = state.gzip ? 'gzip data truncated or corrupt' : 'read failed';
    yield [lineError(file, line, 'read-failed', `${what} after line ${linesRead}: ${errorText(e)}`)];
    return;
  }
  const out: LineItem[] = [];
  splitter.end(out);
  if (out.length > 0) yield out;
}

/** The lines of `file`, one item a line (see `readLineBatches`). */
export async function* readLines(file: string, opts: ReadLinesOptions = {}): AsyncGenerator<LineItem, void, undefined> {
  for await (const batch of readLineBatches(file, opts)) {
    for (const item of batch) yield item;
  }
}
