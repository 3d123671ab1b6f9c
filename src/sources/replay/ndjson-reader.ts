// rarecon's own event log (DETECTION.md section 10): one record a line, read
// into the records every source yields, and written back by `toRareconRecord`.
import {
  NO_INJECTION,
  UNKNOWN_SIGNER,
  type ConnectionEvent,
  type DnsAnswer,
  type HostRef,
  type Injection,
  type Origin,
  type ParentInfo,
  type ProcessInfo,
  type ProcessRun,
  type RecordError,
  type Signer,
  type SourceRecord,
} from '../../model/records.js';
import { FieldReader, isJsonObject, type JsonObject } from './field-reader.js';

export const DEFAULT_ORG = 'default';
/** TTL given to a `dns` answer that states none. */
export const DEFAULT_DNS_TTL_SECONDS = 300;
export const RARECON_TYPES = ['dns', 'connection', 'process'] as const;

const SIGNER_STATUSES = ['valid', 'invalid', 'unsigned', 'unknown'] as const;
const PROTOCOLS = ['tcp', 'udp'] as const;
const DIRECTIONS = ['outbound', 'inbound'] as const;
const MAX_PID = 2 ** 32 - 1;

function recordError(code: RecordError['code'], message: string, origin: Origin): RecordError {
  return { type: 'error', code, message, origin };
}

/** The reason JSON.parse gave, kept short: it may quote the input. */
export function jsonErrorReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.length > 100 ? msg.slice(0, 100) + '...' : msg;
}

function readHost(f: FieldReader, o: JsonObject): HostRef | undefined {
  const h = f.object(o, 'host', 'host', true);
  if (h === undefined) return undefined;
  const id = f.string(h, 'id', 'host.id', true);
  const org = f.string(h, 'org', 'host.org', false);
  const name = f.string(h, 'name', 'host.name', false);
  if (id === undefined) return undefined;
  const host: HostRef = { id, org: org === undefined || org.trim() === '' ? DEFAULT_ORG : org };
  if (name !== undefined) host.name = name;
  return host;
}

function readDns(f: FieldReader, o: JsonObject, timeMs: number, host: HostRef, origin: Origin): DnsAnswer | undefined {
  const query = f.string(o, 'query', 'query', true);
  const list = f.array(o, 'answers', 'answers', true);
  if (query === undefined || list === undefined) return undefined;
  const answers: DnsAnswer['answers'] = [];
  for (let i = 0; i < list.length; i++) {
    const a = list[i];
    const path = `answers[${i}]`;
    if (!isJsonObject(a)) return f.badValue(path, 'an object {ip, ttl}', a);
    const ip = f.ip(a, 'ip', `${path}.ip`, true);
    const ttl = f.nonNegative(a, 'ttl', `${path}.ttl`, false);
    if (ip === undefined || f.problem !== null) return undefined;
    answers.push({ ip, ttl: ttl ?? DEFAULT_DNS_TTL_SECONDS });
  }
  return { type: 'dns', timeMs, host, query, answers, origin };
}

function readSigner(f: FieldReader, p: JsonObject): Signer {
  const s = f.object(p, 'signer', 'process.signer', false);
  if (s === undefined) return { status: UNKNOWN_SIGNER.status, subject: null, vendor: null };
  return {
    status: f.oneOf(s, 'status', 'process.signer.status', false, SIGNER_STATUSES) ?? 'unknown',
    subject: f.nullableString(s, 'subject', 'process.signer.subject'),
    vendor: f.nullableString(s, 'vendor', 'process.signer.vendor'),
  };
}

function readInjection(f: FieldReader, p: JsonObject): Injection {
  const j = f.object(p, 'injection', 'process.injection', false);
  if (j === undefined) return { injected: NO_INJECTION.injected, indicators: [] };
  const indicators = f.stringArray(j, 'indicators', 'process.injection.indicators') ?? [];
  // Indicators alone mean injected: a writer that forgot the flag still raises the variation.
  const injected = f.boolean(j, 'injected', 'process.injection.injected') ?? indicators.length > 0;
  return { injected, indicators: [...indicators] };
}

function readParent(f: FieldReader, p: JsonObject): ParentInfo | null {
  const q = f.object(p, 'parent', 'process.parent', false);
  if (q === undefined) return null;
  return {
    pid: f.integer(q, 'pid', 'process.parent.pid', false, 0, MAX_PID) ?? null,
    path: f.nullableString(q, 'path', 'process.parent.path'),
    cmdline: f.nullableString(q, 'cmdline', 'process.parent.cmdline'),
  };
}

function readProcess(f: FieldReader, o: JsonObject): ProcessInfo | undefined {
  const p = f.object(o, 'process', 'process', true);
  if (p === undefined) return undefined;
  const pid = f.integer(p, 'pid', 'process.pid', true, 0, MAX_PID);
  const info: ProcessInfo = {
    pid: pid ?? 0,
    tid: f.integer(p, 'tid', 'process.tid', false, 0, MAX_PID) ?? null,
    startTimeMs: f.time(p, 'startTime', 'process.startTime', false) ?? null,
    path: f.nullableString(p, 'path', 'process.path'),
    sha256: f.sha256(p, 'sha256', 'process.sha256', false) ?? null,
    signer: readSigner(f, p),
    injection: readInjection(f, p),
    cmdline: f.nullableString(p, 'cmdline', 'process.cmdline'),
    user: f.nullableString(p, 'user', 'process.user'),
    parent: readParent(f, p),
    unusualLibraries: [...(f.stringArray(p, 'unusualLibraries', 'process.unusualLibraries') ?? [])],
  };
  return pid === undefined ? undefined : info;
}

function readConnection(f: FieldReader, o: JsonObject, timeMs: number, host: HostRef, origin: Origin): ConnectionEvent | undefined {
  const process = readProcess(f, o);
  const protocol = f.oneOf(o, 'protocol', 'protocol', true, PROTOCOLS);
  const direction = f.oneOf(o, 'direction', 'direction', false, DIRECTIONS) ?? 'outbound';
  const r = f.object(o, 'remote', 'remote', true);
  const ip = r && f.ip(r, 'ip', 'remote.ip', true);
  const port = r && f.integer(r, 'port', 'remote.port', true, 0, 65535);
  const hostname = r && f.string(r, 'hostname', 'remote.hostname', false);
  const l = f.object(o, 'local', 'local', false);
  const localIp = l && f.ip(l, 'ip', 'local.ip', true);
  const localPort = l && f.integer(l, 'port', 'local.port', true, 0, 65535);
  if (process === undefined || protocol === undefined || ip === undefined || port === undefined || f.problem !== null) return undefined;
  return {
    type: 'connection',
    timeMs,
    host,
    process,
    protocol,
    direction,
    remote: { ip, port, hostname: hostname === undefined || hostname.trim() === '' ? null : hostname.trim() },
    local: localIp !== undefined && localPort !== undefined ? { ip: localIp, port: localPort } : null,
    origin,
    // Set by the enrich stage (connection-names.ts); a slot from the start, so naming a record does not reshape it.
    name: undefined,
  };
}

function readProcessRun(f: FieldReader, o: JsonObject, timeMs: number, host: HostRef, origin: Origin): ProcessRun | undefined {
  const sha256 = f.sha256(o, 'sha256', 'sha256', true);
  const path = f.nullableString(o, 'path', 'path');
  if (sha256 === undefined) return undefined;
  return { type: 'process', timeMs, host, sha256, path, origin };
}

/**
 * One section-10 record from a parsed object or a line of text. Unknown fields
 * are ignored; the first missing or bad field makes the whole line an error.
 */
export function parseRareconRecord(input: unknown, origin: Origin): SourceRecord | RecordError {
  let o: unknown = input;
  if (typeof input === 'string') {
    try {
      o = JSON.parse(input);
    } catch (e) {
      return recordError('invalid-json', `not JSON: ${jsonErrorReason(e)}`, origin);
    }
  }
  if (!isJsonObject(o)) return recordError('not-an-object', 'a record must be a JSON object', origin);
  const f = new FieldReader();
  const type = f.oneOf(o, 'type', 'type', true, RARECON_TYPES);
  const timeMs = f.time(o, 'time', 'time', true);
  const host = readHost(f, o);
  let rec: SourceRecord | undefined;
  if (type !== undefined && timeMs !== undefined && host !== undefined && f.problem === null) {
    if (type === 'dns') rec = readDns(f, o, timeMs, host, origin);
    else if (type === 'connection') rec = readConnection(f, o, timeMs, host, origin);
    else rec = readProcessRun(f, o, timeMs, host, origin);
  }
  if (rec !== undefined && f.problem === null) return rec;
  const p = f.problem ?? { code: 'bad-value' as const, message: 'record could not be read' };
  return recordError(p.code, p.message, origin);
}
