// The lines of one native scan (native-scan.ts) as the rest of rarecon reads
// them (model/scanned.ts ScannedLines): accessors over the scanner's arrays,
// and the full record parsed on demand.
import type { ConnectionEvent } from '../../../model/records.js';
import type { ScannedLines, ScannedTable } from '../../../model/scanned.js';
import { parseRareconLineFast } from './ndjson-fast.js';
import { FLAG_INBOUND, L_END, L_FLAGS, L_HOST, L_IP, L_NAME, L_ORG, L_PORT, L_SHA, L_START, LINE_STRIDE } from './scanned-slots.js';

/** Scanned lines of one scan() call: line i of the scan is line `firstLine + i` of `file`. */
export class ScannedChunk implements ScannedLines {
  constructor(
    private readonly lines: Int32Array,
    private readonly times: Float64Array,
    readonly table: ScannedTable,
    private readonly bytes: Buffer,
    private readonly file: string,
    private readonly firstLine: number,
  ) {}

  host(i: number): number {
    return this.lines[i * LINE_STRIDE + L_HOST]!;
  }

  org(i: number): number {
    return this.lines[i * LINE_STRIDE + L_ORG]!;
  }

  sha(i: number): number {
    return this.lines[i * LINE_STRIDE + L_SHA]!;
  }

  ip(i: number): number {
    return this.lines[i * LINE_STRIDE + L_IP]!;
  }

  port(i: number): number {
    return this.lines[i * LINE_STRIDE + L_PORT]!;
  }

  name(i: number): number {
    return this.lines[i * LINE_STRIDE + L_NAME]!;
  }

  inbound(i: number): boolean {
    return (this.lines[i * LINE_STRIDE + L_FLAGS]! & FLAG_INBOUND) !== 0;
  }

  time(i: number): number {
    return this.times[i]!;
  }

  record(i: number): ConnectionEvent {
    const o = i * LINE_STRIDE;
    const line = this.firstLine + i;
    const r = parseRareconLineFast(this.bytes, this.lines[o + L_START]!, this.lines[o + L_END]!, { file: this.file, line });
    if (r === null || r.type !== 'connection') {
      throw new Error(`${this.file}:${line}: the native line scanner took a line that the JavaScript reader does not (a rarecon bug)`);
    }
    return r;
  }
}
