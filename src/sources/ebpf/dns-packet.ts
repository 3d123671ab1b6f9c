// DNS response parsing for the payloads the helper captures (RFC 1035, with
// AAAA from RFC 3596). Only what the daemon needs: the name that was asked
// for, and the addresses it resolved to with their TTL, CNAME chains followed
// back to the question (TTL = the minimum along the chain). Name compression
// is followed with loop protection. A malformed packet is an error value,
// never an exception.

import { formatAddress } from './wire.js';

export const DnsType = Object.freeze({ A: 1, CNAME: 5, AAAA: 28 });
export const DnsClass = Object.freeze({ IN: 1 });

export interface DnsAddressAnswer {
  ip: string;
  /** Seconds: the smallest TTL along the CNAME chain from the question to this record. */
  ttl: number;
}

export interface DnsResponse {
  id: number;
  /** RCODE: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... */
  rcode: number;
  /** TC bit: the server cut the answer (the client will usually retry over TCP). */
  truncatedFlag: boolean;
  /** The question name, lower-case, without the trailing dot. */
  query: string;
  qtype: number;
  /** A and AAAA records reachable from the question, in packet order, duplicates dropped. */
  answers: DnsAddressAnswer[];
  /** Names after the question along the CNAME chain, in order (empty without CNAMEs). */
  cnames: string[];
  /** The packet ended inside a record (a truncated capture); the answers are those before it. */
  partial: boolean;
}

export type DnsErrorCode = 'too-short' | 'not-a-response' | 'no-question' | 'bad-name' | 'name-loop' | 'truncated-record' | 'bad-rdata';

export interface DnsParseError {
  code: DnsErrorCode;
  message: string;
}

export type DnsParseResult = { ok: true; value: DnsResponse } | { ok: false; error: DnsParseError };

export interface DnsParseOptions {
  /**
   * The payload is known to be cut short (RawDns.truncated): keep the records
   * that are whole and mark the result `partial` instead of failing.
   */
  allowTruncated?: boolean;
}

const HEADER_SIZE = 12;
const MAX_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;
/** Compression pointers followed per name: far more than any real name needs. */
const MAX_POINTERS = 64;
/** CNAME hops followed from the question. */
const MAX_CHAIN = 16;

class ParseFailure {
  constructor(
    readonly code: DnsErrorCode,
    readonly message: string,
  ) {}
}

/** Reads a (possibly compressed) name at `offset`. Returns the name and the offset after it in place. */
function readName(p: Uint8Array, offset: number): { name: string; next: number } | ParseFailure {
  const labels: string[] = [];
  let pos = offset;
  let next = -1; // where reading continues after the name (after the first pointer)
  let pointers = 0;
  let length = 0;
  // Every pointer must go strictly backwards from the lowest position read so
  // far: a name can then never revisit bytes, which rules out loops outright.
  let lowest = offset;

  for (;;) {
    if (pos >= p.length) return new ParseFailure('truncated-record', `name at ${offset} runs past the packet`);
    const len = p[pos] ?? 0;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= p.length) return new ParseFailure('truncated-record', `name pointer at ${pos} cut`);
      const target = ((len & 0x3f) << 8) | (p[pos + 1] ?? 0);
      if (next < 0) next = pos + 2;
      if (++pointers > MAX_POINTERS) return new ParseFailure('name-loop', `name at ${offset}: too many pointers`);
      if (target >= lowest) {
        return new ParseFailure('name-loop', `name at ${offset}: pointer to ${target} does not point backwards`);
      }
      lowest = target;
      pos = target;
      continue;
    }
    if (kind !== 0) return new ParseFailure('bad-name', `name at ${offset}: label type 0x${kind.toString(16)}`);
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (len > MAX_LABEL_LENGTH) return new ParseFailure('bad-name', `label of ${len} bytes`);
    if (pos + 1 + len > p.length) return new ParseFailure('truncated-record', `label at ${pos} runs past the packet`);
    length += len + 1;
    if (length > MAX_NAME_LENGTH) return new ParseFailure('bad-name', `name at ${offset} longer than 255 bytes`);
    let label = '';
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = p[i] ?? 0;
      // Lower-case ASCII; escape what would make the text form ambiguous.
      if (c >= 0x41 && c <= 0x5a) label += String.fromCharCode(c + 0x20);
      else if (c === 0x2e || c === 0x5c) label += `\\${String.fromCharCode(c)}`;
      else if (c > 0x20 && c < 0x7f) label += String.fromCharCode(c);
      else label += `\\${c.toString().padStart(3, '0')}`;
    }
    labels.push(label);
    pos += 1 + len;
    if (pos < lowest) lowest = pos;
  }
  return { name: labels.join('.'), next };
}

interface ResourceRecord {
  name: string;
  type: number;
  klass: number;
  ttl: number;
  rdataOffset: number;
  rdataLength: number;
}

function u16(p: Uint8Array, o: number): number {
  return ((p[o] ?? 0) << 8) | (p[o + 1] ?? 0);
}

function u32(p: Uint8Array, o: number): number {
  return (((p[o] ?? 0) << 24) >>> 0) + (((p[o + 1] ?? 0) << 16) | ((p[o + 2] ?? 0) << 8) | (p[o + 3] ?? 0));
}

function readRecord(p: Uint8Array, offset: number): { rr: ResourceRecord; next: number } | ParseFailure {
  const n = readName(p, offset);
  if (n instanceof ParseFailure) return n;
  const o = n.next;
  if (o + 10 > p.length) return new ParseFailure('truncated-record', `record at ${offset} cut in its header`);
  const rdataLength = u16(p, o + 8);
  if (o + 10 + rdataLength > p.length) return new ParseFailure('truncated-record', `record at ${offset} cut in its data`);
  // RFC 2181 section 8: a TTL with the top bit set is treated as zero.
  let ttl = u32(p, o + 4);
  if (ttl > 0x7fffffff) ttl = 0;
  return {
    rr: { name: n.name, type: u16(p, o), klass: u16(p, o + 2), ttl, rdataOffset: o + 10, rdataLength },
    next: o + 10 + rdataLength,
  };
}

/** Parses one DNS response message (no TCP length prefix). */
export function parseDnsResponse(payload: Uint8Array, options: DnsParseOptions = {}): DnsParseResult {
  const fail = (code: DnsErrorCode, message: string): DnsParseResult => ({ ok: false, error: { code, message } });
  const p = payload;
  if (p.length < HEADER_SIZE) return fail('too-short', `${p.length} bytes, a DNS header is 12`);
  const id = u16(p, 0);
  const flags = u16(p, 2);
  if ((flags & 0x8000) === 0) return fail('not-a-response', 'QR bit clear: a query, not a response');
  const qdcount = u16(p, 4);
  const ancount = u16(p, 6);
  if (qdcount === 0) return fail('no-question', 'no question section');

  // Question(s): the first is the name asked for.
  let off = HEADER_SIZE;
  let query = '';
  let qtype = 0;
  for (let i = 0; i < qdcount; i++) {
    const q = readName(p, off);
    if (q instanceof ParseFailure) return fail(q.code, `question: ${q.message}`);
    if (q.next + 4 > p.length) return fail('truncated-record', 'question cut');
    if (i === 0) {
      query = q.name;
      qtype = u16(p, q.next);
    }
    off = q.next + 4;
  }

  // Answers. A cut record ends the section when the capture is known to be short.
  const records: ResourceRecord[] = [];
  let partial = false;
  for (let i = 0; i < ancount; i++) {
    const r = readRecord(p, off);
    if (r instanceof ParseFailure) {
      if (r.code === 'truncated-record' && options.allowTruncated) {
        partial = true;
        break;
      }
      return fail(r.code, `answer ${i}: ${r.message}`);
    }
    records.push(r.rr);
    off = r.next;
  }

  // Follow the CNAME chain from the question; ttl[name] = min TTL to reach it.
  const reachTtl = new Map<string, number>([[query, Number.MAX_SAFE_INTEGER]]);
  const cnames: string[] = [];
  let current = query;
  for (let hop = 0; hop < MAX_CHAIN; hop++) {
    const link = records.find((r) => r.type === DnsType.CNAME && r.klass === DnsClass.IN && r.name === current);
    if (link === undefined) break;
    const target = readName(p, link.rdataOffset);
    if (target instanceof ParseFailure)
      return fail(target.code === 'truncated-record' ? 'bad-rdata' : target.code, `CNAME of ${current}: ${target.message}`);
    if (target.next > link.rdataOffset + link.rdataLength) return fail('bad-rdata', `CNAME of ${current} overruns its data`);
    if (reachTtl.has(target.name)) break; // a CNAME loop: stop where it closes
    reachTtl.set(target.name, Math.min(reachTtl.get(current) ?? 0, link.ttl));
    cnames.push(target.name);
    current = target.name;
  }

  const answers: DnsAddressAnswer[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    if (r.klass !== DnsClass.IN || (r.type !== DnsType.A && r.type !== DnsType.AAAA)) continue;
    const chainTtl = reachTtl.get(r.name);
    if (chainTtl === undefined) continue; // not connected to the question (e.g. injected extras)
    const want = r.type === DnsType.A ? 4 : 16;
    if (r.rdataLength !== want) return fail('bad-rdata', `${r.type === DnsType.A ? 'A' : 'AAAA'} record of ${r.rdataLength} bytes`);
    const ip = formatAddress(want === 4 ? 4 : 6, p.subarray(r.rdataOffset, r.rdataOffset + want));
    if (seen.has(ip)) continue;
    seen.add(ip);
    answers.push({ ip, ttl: Math.min(chainTtl, r.ttl) });
  }

  return {
    ok: true,
    value: { id, rcode: flags & 0x000f, truncatedFlag: (flags & 0x0200) !== 0, query, qtype, answers, cnames, partial },
  };
}

export interface DnsParserStats {
  parsedTotal: number;
  /** Malformed payloads by error code. */
  errorsTotal: Record<DnsErrorCode, number>;
}

/** parseDnsResponse with counters, for a source that wants to report what it could not read. */
export class DnsResponseParser {
  private parsed = 0;
  private readonly errors: Record<DnsErrorCode, number> = {
    'too-short': 0,
    'not-a-response': 0,
    'no-question': 0,
    'bad-name': 0,
    'name-loop': 0,
    'truncated-record': 0,
    'bad-rdata': 0,
  };

  parse(payload: Uint8Array, options: DnsParseOptions = {}): DnsParseResult {
    const r = parseDnsResponse(payload, options);
    if (r.ok) this.parsed++;
    else this.errors[r.error.code]++;
    return r;
  }

  stats(): DnsParserStats {
    return { parsedTotal: this.parsed, errorsTotal: { ...this.errors } };
  }
}
