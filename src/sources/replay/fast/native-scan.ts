// The native line scanner (native-events/line-scan/line_scan.c): splits a chunk
// of NDJSON into lines and, for each plain `connection` record, extracts what
// scoring needs as ids of interned strings and numbers, at a fraction of the
// cost of parsing the line in JavaScript. It declines what it is not sure of
// (KIND_DECLINED): those lines take the JavaScript path as before.
//
// Strings come back raw, as written: the caller checks and normalises each id
// once (host.id not blank, normaliseIp of addresses, org and hostname trimmed)
// and sends a line whose ids fail those checks the JavaScript way too.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_OFFLINE_MEMORY } from '../../../config/defaults.js';
import { layoutMismatch, LINE_STRIDE, MAX_NEW_PER_LINE } from './scanned-slots.js';

export interface LineScan {
  /** Lines found by the last scan(): their fields are lines[i * LINE_STRIDE + L_...] (scanned-slots.ts), times[i]. */
  count: number;
  /** Offset just after the '\n' of the last line scanned: scan again from here while it is < to. */
  next: number;
}

/** The addon's exports (line_scan.c NAPI_MODULE_INIT). */
interface LineScanAddon {
  create(): object;
  scan(
    handle: object,
    bytes: Buffer,
    from: number,
    to: number,
    maxLineBytes: number,
    lines: Int32Array,
    times: Float64Array,
    news: Int32Array,
    info: Float64Array,
  ): void;
  size(handle: object): number;
  heldBytes(handle: object): number;
  reset(handle: object): void;
  /** line_scan.h's layout: scanned-slots.ts checks it against its own. */
  layout: unknown;
}

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

const MAX_LINES_PER_SCAN = 4096;
/**
 * Past these the ids are dropped, so inputs with endless distinct values cannot grow memory without bound.
 * Every cache keyed by ids (the id table's, the detector's, the build's) grows with them: at 1M ids and
 * 64 MiB a 1M-line fleet day of 352k alerts to random names peaked at 305 MiB. The bench inputs and a
 * 2,000-host fleet hold ~110k distinct values, so they never reach these and lose no speed.
 */
const MAX_IDS = DEFAULT_OFFLINE_MEMORY.scannerMaxIds;
const MAX_HELD_BYTES = DEFAULT_OFFLINE_MEMORY.scannerMaxHeldBytes;

export class LineScanner {
  readonly lines = new Int32Array(MAX_LINES_PER_SCAN * LINE_STRIDE);
  readonly times = new Float64Array(MAX_LINES_PER_SCAN);
  /** id -> string, decoded once when the id is first reported. */
  readonly strings: string[] = [];
  /** Bumped by reset(): caches keyed by ids of an older epoch must be dropped. */
  epoch = 0;

  /** (id, start, end) of each string the last scan met first. */
  private readonly news = new Int32Array(MAX_LINES_PER_SCAN * MAX_NEW_PER_LINE * 3);
  /** Lines, next offset and new strings of the last scan, written by the addon. */
  private readonly info = new Float64Array(3);
  /** One result object reused by every scan: scans run per chunk on the hot path. */
  private readonly result: LineScan = { count: 0, next: 0 };
  private readonly handle: object;

  constructor(private readonly addon: LineScanAddon) {
    this.handle = addon.create();
  }

  /** Scans complete lines of bytes[from, to); `to` must be just after a '\n'. Fills lines/times from index 0; stops early when the arrays are full. */
  scan(bytes: Buffer, from: number, to: number, maxLineBytes: number): LineScan {
    if (this.strings.length > MAX_IDS || this.heldBytes > MAX_HELD_BYTES) this.reset();
    const info = this.info;
    this.addon.scan(this.handle, bytes, from, to, maxLineBytes, this.lines, this.times, this.news, info);
    const fresh = info[2]!;
    if (fresh > 0) {
      const news = this.news;
      const strings = this.strings;
      const b = bytes as Latin1Buffer;
      // The scanner refuses bytes >= 0x80 in strings, so latin1 is the UTF-8 decoding.
      for (let k = 0; k < fresh * 3; k += 3) strings[news[k]!] = b.latin1Slice(news[k + 1]!, news[k + 2]!);
    }
    this.result.count = info[0]!;
    this.result.next = info[1]!;
    return this.result;
  }

  /** Drops every id (bounds memory on inputs with very many distinct values); strings.length becomes 0 and epoch++. */
  reset(): void {
    this.addon.reset(this.handle);
    this.strings.length = 0;
    this.epoch++;
  }

  /** Bytes the native intern table holds. */
  get heldBytes(): number {
    return this.addon.heldBytes(this.handle);
  }
}

/** native-events/build/line_scan.node of the checkout: the nearest directory up from here with a package.json. */
function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'native-events', 'build', 'line_scan.node');
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** Why `m` is not the addon this version reads (functions missing, or a layout not scanned-slots.ts's), or null when it is. */
function addonProblem(m: unknown): string | null {
  const a = m as Partial<LineScanAddon> | null;
  if (
    a === null ||
    typeof a !== 'object' ||
    typeof a.create !== 'function' ||
    typeof a.scan !== 'function' ||
    typeof a.size !== 'function' ||
    typeof a.heldBytes !== 'function' ||
    typeof a.reset !== 'function'
  )
    return 'functions missing';
  return layoutMismatch(a.layout);
}

/** The native scanner, or null with the reason when the addon was not built or cannot load (the JS path is used then). */
export function loadLineScanner(): { ok: true; scanner: LineScanner } | { ok: false; reason: string } {
  const path = addonPath();
  if (path === null) return { ok: false, reason: 'no package.json above native-scan.js to find native-events/build from' };
  if (!existsSync(path)) return { ok: false, reason: `${path} not built (make -C native-events line-scan)` };
  try {
    const addon: unknown = createRequire(import.meta.url)(path);
    const problem = addonProblem(addon);
    if (problem !== null) return { ok: false, reason: `${path} is not the line scanner this version expects (${problem}; rebuild it)` };
    return { ok: true, scanner: new LineScanner(addon as LineScanAddon) };
  } catch (e) {
    return { ok: false, reason: `cannot load ${path}: ${e instanceof Error ? e.message : String(e)}` };
  }
}
