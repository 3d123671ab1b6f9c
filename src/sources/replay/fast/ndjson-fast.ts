// A fast path for rarecon NDJSON lines (DETECTION.md section 10): checks the
// JSON and builds the record in one pass over the line's bytes, without
// JSON.parse's intermediate objects or FieldReader (JSON.parse alone cost
// ~2.7 us of a 455-byte line here, more than everything else in scoring).
//
// It accepts only lines in the plain shape writers emit (ASCII, exact
// lower-case enums, numbers as JSON numbers, each known key once) and returns
// null for anything else, every bad line included: the caller then takes the
// generic path (JSON.parse + parseRareconRecord), which gives the located
// error. For a line it accepts, the record equals the generic path's, field by
// field and in the same key order. Unknown fields are checked and ignored, as
// the generic path ignores them. Values of 13 to 256 bytes are interned (one
// string per distinct value, see byte-interner.ts), shorter ones copied,
// longer ones strings of their own. The reader decodes a line to UTF-8 text
// only for lines this path gives back.
import {
  NO_INJECTION,
  type ConnectionEvent,
  type DnsAnswer,
  type HostRef,
  type Origin,
  type ParentInfo,
  type ProcessInfo,
  type Signer,
  type SourceRecord,
} from '../../../model/records.js';
import { isBlank, lowerHex64, timeFromNumber, timeFromString } from '../field-reader.js';
import { normaliseIp } from '../../../model/address.js';
import { BAIL, CLOSE_BRACE, CLOSE_BRACKET, JsonBytes, keyTable, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';
import { DEFAULT_DNS_TTL_SECONDS, DEFAULT_ORG } from '../ndjson-reader.js';

const MAX_PID = 2 ** 32 - 1;
/**
 * A known key that is missing or null (the generic reader treats both as absent).
 * Tests compare with the literal `undefined`: against this constant, V8 made a
 * runtime call for each compare (Node 20, measured).
 */
const ABSENT = undefined;

const cur = new JsonBytes();

/** Marks key `k` seen; a known key twice takes the generic path (JSON.parse keeps the last). */
function seen(mask: number, k: number): number {
  const bit = 1 << k;
  if ((mask & bit) !== 0) throw BAIL;
  return mask | bit;
}

/** `{` of an object that may be null: null (consumed) for null, else whether it has members. */
function openObject(): boolean | null {
  if (cur.isNull()) return null;
  cur.expect(OPEN_BRACE);
  if (cur.next() !== CLOSE_BRACE) return true;
  cur.i++;
  return false;
}

function nullableString(): string | undefined {
  return cur.isNull() ? ABSENT : cur.string();
}

function integer(min: number, max: number): number {
  const n = cur.number();
  if (!Number.isInteger(n) || n < min || n > max) throw BAIL;
  return n;
}

function nullableInteger(min: number, max: number): number | undefined {
  return cur.isNull() ? ABSENT : integer(min, max);
}

/** Epoch milliseconds from a number or an RFC 3339 / digits string, as FieldReader.time reads them. */
function time(): number {
  if (cur.next() === QUOTE) {
    const ms = timeFromString(cur.string());
    if (!Number.isFinite(ms)) throw BAIL;
    return ms;
  }
  const ms = timeFromNumber(cur.number());
  if (!Number.isFinite(ms)) throw BAIL;
  return ms;
}

function nullableStrings(): string[] | undefined {
  if (cur.isNull()) return ABSENT;
  cur.expect(OPEN_BRACKET);
  const out: string[] = [];
  if (cur.next() === CLOSE_BRACKET) {
    cur.i++;
    return out;
  }
  do out.push(cur.string());
  while (cur.more(CLOSE_BRACKET));
  return out;
}

/** A sha256 as FieldReader.sha256 reads it: 64 hex digits, lower-cased. */
function sha256(): string {
  const hex = cur.hex64();
  if (hex !== null) return hex;
  const other = lowerHex64(cur.string());
  if (other === null) throw BAIL;
  return other;
}

function requiredText(s: string | undefined): string {
  if (s === undefined || isBlank(s)) throw BAIL;
  return s;
}

function ip(s: string | undefined): string {
  const n = normaliseIp(requiredText(s));
  if (n === null) throw BAIL;
  return n;
}

const HOST_KEYS = keyTable(['id', 'org', 'name']);

function readHost(): HostRef {
  const members = openObject();
  if (members === null) throw BAIL;
  let mask = 0;
  let id: string | undefined;
  let org: string | undefined;
  let name: string | undefined;
  if (members) {
    do {
      const k = cur.key(HOST_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      if (k === 0) id = nullableString();
      else if (k === 1) org = nullableString();
      else name = nullableString();
    } while (cur.more(CLOSE_BRACE));
  }
  const host: HostRef = { id: requiredText(id), org: org === undefined || org.trim() === '' ? DEFAULT_ORG : org };
  if (name !== undefined) host.name = name;
  return host;
}

const SIGNER_STATUSES = ['valid', 'invalid', 'unsigned', 'unknown'] as const;
const SIGNER_STATUS_BYTES = keyTable(SIGNER_STATUSES);
const SIGNER_KEYS = keyTable(['status', 'subject', 'vendor']);

function readSigner(): Signer {
  const members = openObject();
  let mask = 0;
  let status: Signer['status'] | undefined;
  let subject: string | undefined;
  let vendor: string | undefined;
  if (members === true) {
    do {
      const k = cur.key(SIGNER_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      if (k === 0) status = cur.isNull() ? ABSENT : SIGNER_STATUSES[cur.choice(SIGNER_STATUS_BYTES)];
      else if (k === 1) subject = nullableString();
      else vendor = nullableString();
    } while (cur.more(CLOSE_BRACE));
  }
  return { status: status ?? 'unknown', subject: subject ?? null, vendor: vendor ?? null };
}

const INJECTION_KEYS = keyTable(['injected', 'indicators']);

function readInjection(): ProcessInfo['injection'] {
  const members = openObject();
  if (members === null) return { injected: NO_INJECTION.injected, indicators: [] };
  let mask = 0;
  let injected: boolean | undefined;
  let indicators: string[] | undefined;
  if (members) {
    do {
      const k = cur.key(INJECTION_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      if (k === 0) injected = cur.isNull() ? ABSENT : cur.boolean();
      else indicators = nullableStrings();
    } while (cur.more(CLOSE_BRACE));
  }
  const list = indicators ?? [];
  // Indicators alone mean injected, as the generic reader has it.
  return { injected: injected ?? list.length > 0, indicators: list };
}

const PARENT_KEYS = keyTable(['pid', 'path', 'cmdline']);

function readParent(): ParentInfo | null {
  const members = openObject();
  if (members === null) return null;
  let mask = 0;
  let pid: number | undefined;
  let path: string | undefined;
  let cmdline: string | undefined;
  if (members) {
    do {
      const k = cur.key(PARENT_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      if (k === 0) pid = nullableInteger(0, MAX_PID);
      else if (k === 1) path = nullableString();
      else cmdline = nullableString();
    } while (cur.more(CLOSE_BRACE));
  }
  return { pid: pid ?? null, path: path ?? null, cmdline: cmdline ?? null };
}

const PROCESS_KEYS = keyTable([
  'pid',
  'tid',
  'startTime',
  'path',
  'sha256',
  'signer',
  'injection',
  'cmdline',
  'user',
  'parent',
  'unusualLibraries',
]);

function readProcess(): ProcessInfo {
  const members = openObject();
  if (members === null) throw BAIL;
  let mask = 0;
  let pid: number | undefined;
  let tid: number | undefined;
  let startTimeMs: number | undefined;
  let path: string | undefined;
  let sha: string | undefined;
  let signer: Signer | undefined;
  let injection: ProcessInfo['injection'] | undefined;
  let cmdline: string | undefined;
  let user: string | undefined;
  let parent: ParentInfo | null = null;
  let libraries: string[] | undefined;
  if (members) {
    do {
      const k = cur.key(PROCESS_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      switch (k) {
        case 0:
          pid = nullableInteger(0, MAX_PID);
          break;
        case 1:
          tid = nullableInteger(0, MAX_PID);
          break;
        case 2:
          startTimeMs = cur.isNull() ? ABSENT : time();
          break;
        case 3:
          path = nullableString();
          break;
        case 4:
          sha = cur.isNull() ? ABSENT : sha256();
          break;
        case 5:
          signer = readSigner();
          break;
        case 6:
          injection = readInjection();
          break;
        case 7:
          cmdline = nullableString();
          break;
        case 8:
          user = nullableString();
          break;
        case 9:
          parent = readParent();
          break;
        default:
          libraries = nullableStrings();
      }
    } while (cur.more(CLOSE_BRACE));
  }
  if (pid === undefined) throw BAIL;
  return {
    pid,
    tid: tid ?? null,
    startTimeMs: startTimeMs ?? null,
    path: path ?? null,
    sha256: sha ?? null,
    signer: signer ?? { status: 'unknown', subject: null, vendor: null },
    injection: injection ?? { injected: NO_INJECTION.injected, indicators: [] },
    cmdline: cmdline ?? null,
    user: user ?? null,
    parent,
    unusualLibraries: libraries ?? [],
  };
}

const ENDPOINT_KEYS = keyTable(['ip', 'port', 'hostname']);

interface Endpoint {
  ip: string;
  port: number;
  hostname: string | undefined;
}

/** remote {ip, port, hostname} or local {ip, port} (where a hostname is just an unknown field); null for null. */
function readEndpoint(): Endpoint | null {
  const members = openObject();
  if (members === null) return null;
  let mask = 0;
  let address: string | undefined;
  let port: number | undefined;
  let hostname: string | undefined;
  if (members) {
    do {
      const k = cur.key(ENDPOINT_KEYS);
      if (k < 0) {
        cur.skip();
        continue;
      }
      mask = seen(mask, k);
      if (k === 0) address = nullableString();
      else if (k === 1) port = nullableInteger(0, 65_535);
      else hostname = nullableString();
    } while (cur.more(CLOSE_BRACE));
  }
  if (port === undefined) throw BAIL;
  return { ip: ip(address), port, hostname };
}

const ANSWER_KEYS = keyTable(['ip', 'ttl']);

function readAnswers(): DnsAnswer['answers'] {
  cur.expect(OPEN_BRACKET);
  const out: DnsAnswer['answers'] = [];
  if (cur.next() === CLOSE_BRACKET) {
    cur.i++;
    return out;
  }
  do {
    const members = openObject();
    if (members === null) throw BAIL;
    let mask = 0;
    let address: string | undefined;
    let ttl: number | undefined;
    if (members) {
      do {
        const k = cur.key(ANSWER_KEYS);
        if (k < 0) {
          cur.skip();
          continue;
        }
        mask = seen(mask, k);
        if (k === 0) address = nullableString();
        else ttl = cur.isNull() ? ABSENT : cur.number();
      } while (cur.more(CLOSE_BRACE));
    }
    if (ttl !== undefined && !(Number.isFinite(ttl) && ttl >= 0)) throw BAIL;
    out.push({ ip: ip(address), ttl: ttl ?? DEFAULT_DNS_TTL_SECONDS });
  } while (cur.more(CLOSE_BRACKET));
  return out;
}

const RECORD_TYPES = ['dns', 'connection', 'process'] as const;
const RECORD_TYPE_BYTES = keyTable(RECORD_TYPES);
const PROTOCOLS = ['tcp', 'udp'] as const;
const PROTOCOL_BYTES = keyTable(PROTOCOLS);
const DIRECTIONS = ['outbound', 'inbound'] as const;
const DIRECTION_BYTES = keyTable(DIRECTIONS);
const TOP_KEYS = keyTable([
  'type',
  'time',
  'host',
  'process',
  'protocol',
  'direction',
  'remote',
  'local',
  'query',
  'answers',
  'sha256',
  'path',
]);

/**
 * The record of one rarecon NDJSON line given as bytes[start, end), or null
 * when the line is not in the plain shape this path reads (bad lines
 * included): parse it generically then.
 */
export function parseRareconLineFast(bytes: Buffer, start: number, end: number, origin: Origin): SourceRecord | null {
  cur.reset(bytes, start, end);
  try {
    return readRecord(origin);
  } catch (e) {
    if (e === BAIL) return null;
    throw e;
  }
}

function readRecord(origin: Origin): SourceRecord {
  const members = openObject();
  if (members !== true) throw BAIL;
  let mask = 0;
  let type: (typeof RECORD_TYPES)[number] | undefined;
  let timeMs: number | undefined;
  let host: HostRef | undefined;
  let process: ProcessInfo | undefined;
  let protocol: ConnectionEvent['protocol'] | undefined;
  let direction: ConnectionEvent['direction'] | undefined;
  let remote: Endpoint | null = null;
  let local: Endpoint | null = null;
  let query: string | undefined;
  let answers: DnsAnswer['answers'] | undefined;
  let sha: string | undefined;
  let path: string | undefined;
  do {
    const k = cur.key(TOP_KEYS);
    if (k < 0) {
      cur.skip();
      continue;
    }
    mask = seen(mask, k);
    switch (k) {
      case 0:
        type = RECORD_TYPES[cur.choice(RECORD_TYPE_BYTES)];
        break;
      case 1:
        timeMs = time();
        break;
      case 2:
        host = readHost();
        break;
      case 3:
        process = readProcess();
        break;
      case 4:
        protocol = PROTOCOLS[cur.choice(PROTOCOL_BYTES)];
        break;
      case 5:
        direction = cur.isNull() ? ABSENT : DIRECTIONS[cur.choice(DIRECTION_BYTES)];
        break;
      case 6:
        remote = readEndpoint();
        break;
      case 7:
        local = readEndpoint();
        break;
      case 8:
        query = nullableString();
        break;
      case 9:
        answers = readAnswers();
        break;
      case 10:
        sha = cur.isNull() ? ABSENT : sha256();
        break;
      default:
        path = nullableString();
    }
  } while (cur.more(CLOSE_BRACE));
  if (!cur.atEnd() || type === undefined || timeMs === undefined || host === undefined) throw BAIL;
  switch (type) {
    case 'connection': {
      if (process === undefined || protocol === undefined || remote === null) throw BAIL;
      const hostname = remote.hostname?.trim();
      return {
        type: 'connection',
        timeMs,
        host,
        process,
        protocol,
        direction: direction ?? 'outbound',
        remote: { ip: remote.ip, port: remote.port, hostname: hostname === undefined || hostname === '' ? null : hostname },
        local: local !== null ? { ip: local.ip, port: local.port } : null,
        origin,
        // Set by the enrich stage (connection-names.ts); a slot from the start, so naming a record does not reshape it.
        name: undefined,
      };
    }
    case 'dns':
      if (answers === undefined) throw BAIL;
      return { type: 'dns', timeMs, host, query: requiredText(query), answers, origin };
    case 'process':
      if (sha === undefined) throw BAIL;
      return { type: 'process', timeMs, host, sha256: sha, path: path ?? null, origin };
  }
}
