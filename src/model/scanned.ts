// Connections read by the native line scanner (native-events/line-scan): the
// fields scoring needs as ids of interned strings and numbers, so the common
// case is scored without building a record. Anything more (an alert, a name
// that comes from DNS, exclusions) asks for the full record. Where the fields
// sit in the scanner's arrays is the reader's business
// (sources/replay/fast/scanned-slots.ts): the rest of rarecon reads them
// through ScannedLines.
import type { ConnectionEvent } from './records.js';

/**
 * The strings behind the ids of one scanner epoch, with what the record
 * reader would make of them, worked out once per id. A new table replaces it
 * when the scanner drops its ids.
 */
export interface ScannedTable {
  /** The string of an id as written. */
  text(id: number): string;
  /** A remote or local address as the record has it (normalised); null when it is not an address. */
  ip(id: number): string | null;
  /** A remote hostname as the record has it: trimmed, null when blank. */
  hostname(id: number): string | null;
  /** host.org as the record has it ('default' for -1 or blank). */
  org(id: number): string;
}

/**
 * A run of scanned lines, line i's fields read one by one. Ids are of
 * `table`; -1 where the record has none. One implementation
 * (sources/replay/fast/scanned-lines.ts), so calls stay monomorphic.
 */
export interface ScannedLines {
  readonly table: ScannedTable;
  /** host.id */
  host(i: number): number;
  /** host.org; -1 when absent or null. */
  org(i: number): number;
  /** process.sha256 (lower-case hex); -1 when absent or null. */
  sha(i: number): number;
  /** remote.ip as written. */
  ip(i: number): number;
  /** remote.port */
  port(i: number): number;
  /** remote.hostname as written; -1 when absent or null. */
  name(i: number): number;
  /** The connection is inbound (`direction`). */
  inbound(i: number): boolean;
  /** The record's time, epoch milliseconds. */
  time(i: number): number;
  /** The full record of line i, parsed in JavaScript. */
  record(i: number): ConnectionEvent;
}
