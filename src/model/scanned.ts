// Connections read by the native line scanner (native-events/line-scan): the
// fields scoring needs as ids of interned strings and numbers in typed arrays,
// so the common case is scored without building a record. Anything more (an
// alert, a name that comes from DNS, exclusions) asks for the full record.
import type { ConnectionEvent } from './records.js';

/** Int32 slots per scanned line. */
export const LINE_STRIDE = 12;
export const L_START = 0;
export const L_END = 1;
export const L_KIND = 2;
/** host.id */
export const L_HOST = 3;
/** host.org; -1 when absent or null. */
export const L_ORG = 4;
/** process.sha256 (lower-case hex); -1 when absent or null. */
export const L_SHA = 5;
/** remote.ip as written. */
export const L_IP = 6;
export const L_PORT = 7;
/** remote.hostname as written; -1 when absent or null. */
export const L_NAME = 8;
export const L_FLAGS = 9;
/** local.ip as written; -1 without a local endpoint. */
export const L_LOCAL_IP = 10;

export const KIND_DECLINED = 0;
export const KIND_CONNECTION = 1;
export const KIND_TOO_LONG = 2;
export const KIND_NUL = 3;

export const FLAG_UDP = 1;
export const FLAG_INBOUND = 2;
export const FLAG_INJECTED = 4;

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

/** A run of scanned lines: line i's fields are lines[i * LINE_STRIDE + L_...] and times[i]. */
export interface ScannedLines {
  readonly lines: Int32Array;
  readonly times: Float64Array;
  readonly table: ScannedTable;
  /** The full record of scanned line i, parsed in JavaScript. */
  record(i: number): ConnectionEvent;
}
