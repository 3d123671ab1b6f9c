// The records every source yields (eBPF helper, /proc polling, log replay).
// They are plain data: no methods, no I/O, so they cross process and file
// boundaries unchanged. Times are epoch milliseconds.
import type { ConnectionName } from './connection-name.js';

export interface HostRef {
  id: string;
  /** From enrolment; `default` when a log does not say. */
  org: string;
  name?: string | undefined;
}

export type SignerStatus = 'valid' | 'invalid' | 'unsigned' | 'unknown';

export interface Signer {
  status: SignerStatus;
  subject: string | null;
  vendor: string | null;
}

export const UNKNOWN_SIGNER: Signer = Object.freeze({ status: 'unknown', subject: null, vendor: null });

export interface Injection {
  injected: boolean;
  /** Short codes with detail, e.g. `anon-exec-frame:0x7f12...`, `sysmon-create-remote-thread:wuauclt.exe`. */
  indicators: string[];
}

export const NO_INJECTION: Injection = Object.freeze({ injected: false, indicators: [] as string[] }) as Injection;

export interface ParentInfo {
  pid: number | null;
  path: string | null;
  cmdline: string | null;
}

export interface ProcessInfo {
  pid: number;
  /** The log's own process id where it has one (Sysmon's ProcessGuid); rendered as OCSF `process.uid`, ECS `process.entity_id`. */
  uid?: string | null | undefined;
  tid: number | null;
  /** pid + start time identify a process across pid reuse. */
  startTimeMs: number | null;
  path: string | null;
  /** Lower-case hex sha256 of the mapped image, null when it could not be read. */
  sha256: string | null;
  signer: Signer;
  injection: Injection;
  cmdline: string | null;
  user: string | null;
  parent: ParentInfo | null;
  /** Libraries the process loaded from unusual places (investigation field). */
  unusualLibraries: string[];
}

export type Protocol = 'tcp' | 'udp';

/** Where a record came from, for error messages and evidence. */
export interface Origin {
  file: string;
  line: number;
}

export interface ConnectionEvent {
  type: 'connection';
  timeMs: number;
  host: HostRef;
  process: ProcessInfo;
  protocol: Protocol;
  /** Outbound unless a source knows better (Sysmon `Initiated: false`). */
  direction: 'outbound' | 'inbound';
  remote: {
    ip: string;
    port: number;
    hostname: string | null;
    /**
     * `hostname` is a reverse-DNS (PTR) name of the address, not the name the
     * process asked for (Sysmon Event 3 `DestinationHostname` when no DNS
     * answer named the address). Absent for the other sources.
     */
    reverseDns?: true;
  };
  local: { ip: string; port: number } | null;
  origin?: Origin | undefined;
  /**
   * The name behind the remote address and its root domain, set once by the
   * enrich stage (enrich/connection-names.ts) before detection; not part of
   * the record as written (toRareconRecord leaves it out).
   */
  name?: ConnectionName | undefined;
}

export interface DnsAnswer {
  type: 'dns';
  timeMs: number;
  host: HostRef;
  /** The name that was asked for (CNAME chains already followed back to it). */
  query: string;
  answers: Array<{ ip: string; ttl: number }>;
  origin?: Origin | undefined;
}

/** A process run seen without (or before) a connection; feeds process prevalence. */
export interface ProcessRun {
  type: 'process';
  timeMs: number;
  host: HostRef;
  sha256: string;
  path: string | null;
  origin?: Origin | undefined;
}

export type SourceRecord = ConnectionEvent | DnsAnswer | ProcessRun;

/** A line or frame that could not be turned into a record. Counted by code, never fatal. */
export interface RecordError {
  type: 'error';
  code: RecordErrorCode;
  message: string;
  origin: Origin;
}

export type RecordErrorCode =
  | 'invalid-json'
  | 'not-an-object'
  | 'missing-field'
  | 'wrong-type'
  | 'bad-value'
  | 'line-too-long'
  | 'binary-data'
  | 'unknown-format'
  | 'read-failed';

export type ReaderItem = SourceRecord | RecordError;

/** 9999-12-31T23:59:59.999Z, the last instant a record's time may name (DETECTION.md section 6). */
export const MAX_EVENT_TIME_MS = 253_402_300_799_999;

/**
 * Whether epoch milliseconds name a real instant of the years 1970-9999. A time
 * outside them (1e21, 8640000000000001, a year-0001 date) makes its record a
 * `bad-value` error in every reader, so no later stage meets a date it cannot print.
 */
export function isEventTimeMs(ms: number): boolean {
  return ms >= 0 && ms <= MAX_EVENT_TIME_MS;
}

export function processKey(p: Pick<ProcessInfo, 'pid' | 'startTimeMs'>, host: HostRef): string {
  return `${host.org}/${host.id}/${p.pid}/${p.startTimeMs ?? ''}`;
}
