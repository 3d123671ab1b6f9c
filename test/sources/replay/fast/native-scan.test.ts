// The native line scanner may take (KIND_CONNECTION) only lines the JavaScript
// fast path reads as connections, with the same values once the caller has
// checked and normalised each id; it splits lines exactly as read-lines.ts does.
import { describe, expect, it } from 'vitest';
import type { ConnectionEvent } from '../../../../src/model/records.js';
import { isBlank } from '../../../../src/sources/replay/field-reader.js';
import { normaliseIp } from '../../../../src/model/address.js';
import { parseRareconLineFast } from '../../../../src/sources/replay/fast/ndjson-fast.js';
import { DEFAULT_ORG } from '../../../../src/sources/replay/ndjson-reader.js';
import { loadLineScanner, type LineScanner } from '../../../../src/sources/replay/fast/native-scan.js';
import {
  FLAG_INBOUND,
  FLAG_INJECTED,
  FLAG_UDP,
  KIND_CONNECTION,
  KIND_DECLINED,
  KIND_NUL,
  KIND_TOO_LONG,
  L_END,
  L_FLAGS,
  L_HOST,
  L_IP,
  L_KIND,
  L_LOCAL_IP,
  L_NAME,
  L_ORG,
  L_PORT,
  L_SHA,
  L_START,
  LINE_STRIDE,
} from '../../../../src/sources/replay/fast/scanned-slots.js';

const loaded = loadLineScanner();
const origin = { file: 'f.jsonl', line: 1 };
const MAX_LINE = 1024 * 1024;

if (!loaded.ok) {
  if (process.env.CI === 'true') {
    it('loads the native line scanner (CI builds it)', () => {
      expect.fail(loaded.reason);
    });
  } else {
    console.log(`native-scan tests skipped: ${loaded.reason}`);
  }
}

const SHAS = ['ab'.repeat(32), '0123456789abcdef'.repeat(4), 'f'.repeat(64)];

/** A small deterministic generator (mulberry32: an LCG's low bits repeat too soon for nested picks). */
function rng(seed: number): (k: number) => number {
  let x = seed;
  return (k) => {
    x = (x + 0x6d2b79f5) | 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % k;
  };
}

/** Lines in the shape bench/score-data.ts writes. */
function plainLine(e: number): string {
  return (
    `{"type":"connection","time":${1790841780000 + e},"host":{"id":"host-${e % 37}","org":"bench"},"process":{"pid":${1000 + (e % 5000)},` +
    `"tid":${1000 + (e % 5000)},"path":"/usr/bin/app${e % 50}","sha256":"${SHAS[e % 3]}","signer":{"status":"valid","subject":"Debian","vendor":"Debian"},` +
    `"injection":{"injected":false,"indicators":[]},"cmdline":"app --sync","user":"svc"},"protocol":"tcp",` +
    `"remote":{"ip":"203.0.113.${e % 250}","port":${443 + (e % 3)},"hostname":"api.r${e % 11}-shop${e % 10}.com"}}`
  );
}

function shuffle<T>(a: T[], rnd: (k: number) => number): T[] {
  for (let j = a.length - 1; j > 0; j--) {
    const k = rnd(j + 1);
    [a[j], a[k]] = [a[k]!, a[j]!];
  }
  return a;
}

/** An object with its keys in a random order. */
function obj(members: Record<string, unknown>, rnd: (k: number) => number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of shuffle(Object.keys(members), rnd)) out[k] = members[k];
  return out;
}

/**
 * Varied connection lines: optional, null and unknown fields, keys in any
 * order, whitespace; all in the plain shape (no escapes in extracted values,
 * integer times, lower-case sha256), so the scanner must take each of them
 * the fast path reads as a connection.
 */
function variedLine(i: number, rnd: (k: number) => number): string {
  const pick = <T>(...xs: T[]): T => xs[rnd(xs.length)]!;
  /** One of `good` mostly, one of `bad` (what the fast path refuses) once in 40. */
  const vary = <T>(good: T[], bad: T[]): T => (rnd(40) === 0 ? bad[rnd(bad.length)]! : good[rnd(good.length)]!);
  const ABSENT: unknown = Symbol('absent');
  const put = (o: Record<string, unknown>, k: string, v: unknown): void => {
    if (v !== ABSENT) o[k] = v;
  };
  const host: Record<string, unknown> = { id: vary<unknown>([`h${i % 7}`, 'host-1', ' spaced '], ['', '   ', null]) };
  put(host, 'org', pick(ABSENT, null, 'acme', '', '  ', ' acme '));
  put(host, 'name', pick(ABSENT, null, `n${i}.example`, 'n \\ "q"'));
  if (rnd(4) === 0) host.extra = { deep: [1, [2, [3]], { x: null }] };
  const proc: Record<string, unknown> = {};
  put(proc, 'pid', vary<unknown>([1, 0, 4294967295, 1234], [4294967296, null, ABSENT, 'x']));
  put(proc, 'tid', pick(ABSENT, null, 7, 4294967295));
  put(proc, 'startTime', pick(ABSENT, null, 1790841000000, 0));
  put(proc, 'path', pick(ABSENT, null, '/usr/bin/x', 'C:\\Windows\\x.exe'));
  put(proc, 'sha256', pick(ABSENT, null, ...SHAS));
  put(
    proc,
    'signer',
    pick(
      ABSENT,
      null,
      {},
      { status: 'valid', subject: 'S', vendor: 'V' },
      { status: null },
      { status: 'unsigned', subject: null, vendor: null },
    ),
  );
  put(
    proc,
    'injection',
    pick(
      ABSENT,
      null,
      {},
      { injected: false, indicators: [] },
      { injected: true, indicators: [] },
      { indicators: ['memfd-exe:x'] },
      { injected: false, indicators: ['a'] },
      { injected: null, indicators: null },
    ),
  );
  put(proc, 'cmdline', pick(ABSENT, null, 'x --a "q"', 'tab\there'));
  put(proc, 'user', pick(ABSENT, null, 'svc'));
  put(proc, 'parent', pick(ABSENT, null, {}, { pid: 1, path: '/sbin/init', cmdline: 'init' }, { pid: null }));
  if (rnd(40) === 0)
    proc[pick('signer', 'injection', 'parent')] = pick({ status: 'bogus' }, { injected: 'yes', indicators: [1] }, { pid: -1 }, []);
  put(proc, 'unusualLibraries', vary<unknown>([ABSENT, null, [], ['/tmp/x.so']], [[null], 'x']));
  if (rnd(5) === 0) proc.unknown = { a: [true, false, null, -1.5e-3, 'x'] };
  const remote: Record<string, unknown> = {};
  put(
    remote,
    'ip',
    vary<unknown>(
      ['203.0.113.5', '203.0.113.5', '2001:DB8::1', '[2001:db8::1]', '::ffff:1.2.3.4', ' 198.51.100.7 '],
      ['not-an-ip', '', null, ABSENT],
    ),
  );
  put(remote, 'port', vary<unknown>([443, 0, 65535, 53], [65536, null, ABSENT, '443']));
  put(remote, 'hostname', pick(ABSENT, null, 'api.example.com', ' API.Example.com ', '', '  '));
  const top: Record<string, unknown> = {
    type: vary(['connection'], ['dns', 'process']),
    time: pick(1790841780000 + i, 0, 999999999999999),
    host,
    process: proc,
    protocol: pick('tcp', 'udp'),
    remote: rnd(40) === 0 ? null : obj(remote, rnd),
  };
  put(top, 'direction', vary<unknown>([ABSENT, null, 'outbound', 'inbound'], ['sideways']));
  put(top, 'local', pick(ABSENT, null, { ip: '10.0.0.2', port: 50000 }, { ip: '::1', port: 1, hostname: 'me' }));
  if (rnd(40) === 0) top.local = pick({ ip: 'bad', port: 1 }, { port: 1 }, {});
  if (rnd(4) === 0) top.agent = { version: '1.2', tags: ['a', 'b'], n: 12345678901234567890 };
  if (rnd(8) === 0) top.query = pick(null, 'q.example');
  if (rnd(8) === 0) top.path = pick(null, '/x');
  if (rnd(8) === 0) top.sha256 = pick(null, SHAS[0]);
  const o = obj({ ...top, host: obj(host, rnd), process: obj(proc, rnd) }, rnd);
  const text = JSON.stringify(o, null, pick(0, 0, 1, 2));
  return text.replace(/\n/g, pick(' ', '\t', '\r', ''));
}

/** Lines the fast path reads but the scanner declines by design, and lines neither reads. */
const EDGE_LINES: string[] = (() => {
  const base = plainLine(1);
  const sub = (from: string, to: string): string => {
    expect(base.includes(from)).toBe(true);
    return base.replace(from, to);
  };
  return [
    base,
    ` \t${base}\t `,
    sub('"host-1"', '"host\\u002d1"'),
    sub('"bench"', '"ben\\"ch"'),
    sub(SHAS[1]!, SHAS[1]!.toUpperCase()),
    sub(SHAS[1]!, ` ${SHAS[1]!}`),
    sub('"api.r1-shop1.com"', '"api.r1-shop1.com\\/"'),
    sub('"203.0.113.1"', '"203.0.113.\\u0031"'),
    sub('"time":1790841780001', '"time":"2026-10-01T10:00:00Z"'),
    sub('"time":1790841780001', '"time":1790841780001.0'),
    sub('"time":1790841780001', '"time":1.790841780001e12'),
    sub('"time":1790841780001', '"time":-0'),
    sub('"time":1790841780001', '"time":1234567890123456'),
    sub('"time":1790841780001', '"time":123456789012345'),
    sub('"time":1790841780001', '"time":01'),
    sub('"time":1790841780001', '"time":null'),
    sub('"port":444', '"port":444.0'),
    sub('"port":444', '"port":-0'),
    sub('"port":444', '"port":4.44e2'),
    sub('"pid":1001', '"pid":1001.0'),
    sub('"pid":1001', '"pid":-1'),
    sub('"user":"svc"', '"user":"svc","startTime":"2026-10-01T10:00:00Z"'),
    sub('"user":"svc"', '"user":"svc","startTime":1.5'),
    sub('"user":"svc"', '"user":"svc","parent":{"pid":1.0}'),
    sub('"type":"connection",', '"type":"connection","answers":[],'),
    sub('"type":"connection",', '"type":"connection","type":"connection",'),
    sub('"host":{', '"host":{"id":"x",'),
    sub('"type":', '"ty\\u0070e":'),
    sub('"type":"connection"', '"type":"conn\\u0065ction"'),
    sub('"protocol":"tcp"', '"protocol":"TCP"'),
    sub('"protocol":"tcp"', '"protocol":null'),
    sub('"user":"svc"', '"user":"sv\u00e9"'),
    sub('"user":"svc"', '"user":"svc","x":"\\ud800"'),
    sub('"user":"svc"', '"user":"svc","x":"\\x"'),
    sub('"user":"svc"', '"user":"svc","x":"\\u12"'),
    sub('"user":"svc"', '"user":"svc","x":"a\u0001b"'),
    sub('"user":"svc"', '"user":"svc","\\u0078":1'),
    sub('"user":"svc"', '"user":"svc","x":{"\\u0078":1,"x":2}'),
    sub('"user":"svc"', '"user":"svc","x":[1,2,]'),
    sub('"user":"svc"', '"user":"svc","x":01'),
    sub('"user":"svc"', '"user":"svc","x":1.'),
    sub('"user":"svc"', '"user":"svc","x":-'),
    sub('"user":"svc"', '"user":"svc","x":1e+'),
    sub('"user":"svc"', '"user":"svc","x":truex'),
    sub('"user":"svc"', '"user":"svc","x":nul'),
    sub('"user":"svc"', `"user":"svc","x":${'['.repeat(33)}${']'.repeat(33)}`),
    sub('"user":"svc"', `"user":"svc","x":${'['.repeat(33)}1${']'.repeat(33)}`),
    sub('"user":"svc"', `"user":"svc","x":${'['.repeat(32)}1${']'.repeat(32)}`),
    sub('"user":"svc"', `"user":"svc","x":${'{"a":'.repeat(33)}1${'}'.repeat(33)}`),
    sub('"user":"svc"', `"user":"svc","x":${'{"a":'.repeat(34)}{}${'}'.repeat(34)}`),
    sub('"remote":{', '"local":null,"remote":{'),
    sub('"remote":{', '"local":{"ip":"::1","port":9,"hostname":"a\\"b"},"remote":{'),
    sub('"remote":{', '"direction":"inbound","remote":{'),
    `${base} x`,
    `${base}}`,
    `${base},`,
    '{}',
    'null',
    '[]',
    '',
    '   ',
    '{"type":"dns","time":1,"host":{"id":"h"},"query":"a.b","answers":[{"ip":"1.2.3.4","ttl":3}]}',
    `{"type":"process","time":1,"host":{"id":"h"},"sha256":"${SHAS[0]!}","path":"/x"}`,
  ];
})();

interface Verdict {
  kind: number;
  /** The fast path reads the line as a connection. */
  jsConnection: boolean;
}

/** Lines joined by '\n' into one buffer, scanned in as many calls as it takes. */
function scanAll(scanner: LineScanner, texts: string[], maxLine = MAX_LINE): { bytes: Buffer; rows: Int32Array; times: Float64Array } {
  const bytes = Buffer.from(texts.map((t) => `${t}\n`).join(''), 'utf8');
  const rows = new Int32Array(texts.length * LINE_STRIDE);
  const times = new Float64Array(texts.length);
  let n = 0;
  for (let from = 0; from < bytes.length;) {
    const r = scanner.scan(bytes, from, bytes.length, maxLine);
    expect(r.count).toBeGreaterThan(0);
    rows.set(scanner.lines.subarray(0, r.count * LINE_STRIDE), n * LINE_STRIDE);
    times.set(scanner.times.subarray(0, r.count), n);
    n += r.count;
    from = r.next;
  }
  expect(n).toBe(texts.length);
  return { bytes, rows, times };
}

/**
 * Checks every line of `texts` against the fast path: a line the scanner takes
 * must be read by it as a connection with the same values, unless one of the
 * per-id checks the caller makes (host.id not blank, addresses that
 * normaliseIp reads) fails, in which case the fast path must refuse it too.
 */
function differential(scanner: LineScanner, texts: string[]): Verdict[] {
  const { bytes, rows, times } = scanAll(scanner, texts);
  const S = scanner.strings;
  return texts.map((text, i) => {
    const o = i * LINE_STRIDE;
    const start = rows[o + L_START]!;
    const end = rows[o + L_END]!;
    const kind = rows[o + L_KIND]!;
    if (kind === KIND_NUL) {
      expect(text.includes('\u0000')).toBe(true);
      return { kind, jsConnection: false };
    }
    expect(text.includes('\u0000'), text).toBe(false);
    expect(kind === KIND_DECLINED || kind === KIND_CONNECTION).toBe(true);
    const rec = parseRareconLineFast(bytes, start, end, origin);
    const jsConnection = rec !== null && rec.type === 'connection';
    if (kind !== KIND_CONNECTION) return { kind, jsConnection };
    const host = S[rows[o + L_HOST]!]!;
    const ip = S[rows[o + L_IP]!]!;
    const localId = rows[o + L_LOCAL_IP]!;
    const idsOk = !isBlank(host) && !isBlank(ip) && normaliseIp(ip) !== null && (localId === -1 || normaliseIp(S[localId]!) !== null);
    if (!idsOk) {
      expect(rec, text).toBeNull();
      return { kind, jsConnection };
    }
    expect(jsConnection, text).toBe(true);
    const c = rec as ConnectionEvent;
    expect(host).toBe(c.host.id);
    const orgId = rows[o + L_ORG]!;
    expect(orgId === -1 || S[orgId]!.trim() === '' ? DEFAULT_ORG : S[orgId]).toBe(c.host.org);
    const shaId = rows[o + L_SHA]!;
    expect(shaId === -1 ? null : S[shaId]).toBe(c.process.sha256);
    expect(normaliseIp(ip)).toBe(c.remote.ip);
    expect(rows[o + L_PORT]).toBe(c.remote.port);
    const nameId = rows[o + L_NAME]!;
    const name = nameId === -1 ? null : S[nameId]!.trim();
    expect(name === '' ? null : name).toBe(c.remote.hostname);
    const flags = rows[o + L_FLAGS]!;
    expect((flags & FLAG_UDP) !== 0).toBe(c.protocol === 'udp');
    expect((flags & FLAG_INBOUND) !== 0).toBe(c.direction === 'inbound');
    expect((flags & FLAG_INJECTED) !== 0).toBe(c.process.injection.injected);
    expect(localId === -1 ? null : normaliseIp(S[localId]!)).toBe(c.local === null ? null : c.local.ip);
    expect(times[i]).toBe(c.timeMs);
    return { kind, jsConnection };
  });
}

const MUTATIONS = ['"', '\\', '}', ']', ',', ':', '0', '-', '.', 'e', ' ', 'x', '\u0000'];

function mutations(line: string): string[] {
  const out: string[] = [];
  for (let p = 0; p < line.length; p++) {
    out.push(line.slice(0, p) + line.slice(p + 1));
    out.push(line.slice(0, p));
    for (const m of MUTATIONS) if (line[p] !== m) out.push(line.slice(0, p) + m + line.slice(p + 1));
  }
  return out;
}

describe.skipIf(!loaded.ok)('native line scanner', () => {
  const scanner = (): LineScanner => {
    if (!loaded.ok) throw new Error(loaded.reason);
    return loaded.scanner;
  };

  it('takes every line of the plain shape, with the fast path values', () => {
    const texts = Array.from({ length: 5000 }, (_, e) => plainLine(e));
    const v = differential(scanner(), texts);
    expect(v.every((x) => x.kind === KIND_CONNECTION && x.jsConnection)).toBe(true);
  });

  it('takes every varied connection line the fast path reads, and only those', () => {
    const rnd = rng(99);
    const texts = Array.from({ length: 10_000 }, (_, i) => variedLine(i, rnd));
    const v = differential(scanner(), texts);
    const js = v.filter((x) => x.jsConnection).length;
    const taken = v.filter((x) => x.kind === KIND_CONNECTION).length;
    // The corpus is in the shape the scanner reads: it declines none the fast path takes.
    expect(v.filter((x) => x.jsConnection && x.kind !== KIND_CONNECTION)).toEqual([]);
    expect(js).toBeGreaterThan(500);
    expect(taken).toBeGreaterThanOrEqual(js);
    console.log(`varied: ${js} read by the fast path as connections, ${taken} taken (the rest fail the per-id checks)`);
  });

  it('agrees on edge cases, declining what it is not sure of', () => {
    const v = differential(scanner(), EDGE_LINES);
    const kinds = v.map((x) => x.kind);
    expect(kinds[0]).toBe(KIND_CONNECTION);
    expect(kinds[1]).toBe(KIND_CONNECTION);
    // The fast path reads an escaped host id; the scanner leaves it to it.
    expect(v[2]).toEqual({ kind: KIND_DECLINED, jsConnection: true });
    const accepted = EDGE_LINES.filter((_, i) => kinds[i] === KIND_CONNECTION);
    expect(accepted.length).toBeGreaterThan(5);
  });

  it('never takes a line the fast path refuses, under byte deletions, replacements and truncations', () => {
    const rnd = rng(7);
    const bases = [
      plainLine(3),
      variedLine(1, rnd),
      '{"type":"connection","time":5,"host":{"id":"h","org":null,"name":"n"},"process":{"pid":1,"tid":null,"startTime":7,"sha256":null,' +
        '"signer":null,"injection":{"indicators":["x"]},"parent":{"pid":2,"path":"/p"},"unusualLibraries":["a"]},"protocol":"udp",' +
        '"direction":"inbound","remote":{"ip":"::1","port":53,"hostname":" n "},"local":{"ip":"10.0.0.1","port":5353},"x":[{"y":-1.5E+3}]}',
      ' { "type" : "connection" , "time" : 0 , "host" : { "id" : "a" } , "process" : { "pid" : 0 } , "protocol" : "tcp" , "remote" : { "port" : 0 , "ip" : "1.2.3.4" } } ',
    ];
    let taken = 0;
    let jsOnly = 0;
    for (const base of bases) {
      // Each mutation right after its base: the scanner has just learnt the base's shape, so a mutation that
      // keeps the bytes outside the values is read by shape matching, and its values must be checked as the parser would.
      const texts = mutations(base).flatMap((m) => [base, m]);
      const v = differential(scanner(), texts);
      taken += v.filter((x, i) => i % 2 === 1 && x.kind === KIND_CONNECTION).length;
      jsOnly += v.filter((x, i) => i % 2 === 1 && x.jsConnection && x.kind !== KIND_CONNECTION).length;
    }
    expect(taken).toBeGreaterThan(1000);
    // Declining more than the fast path is allowed; report how much.
    console.log(`mutations: ${taken} taken, ${jsOnly} read by the fast path only`);
  });

  it('checks the values of a line read by its shape as the parser does (bounds, grammar, escapes)', () => {
    const line = (time: string, pid: string, sha: string, port: string, name: string, cmd = 'app --sync'): string =>
      `{"type":"connection","time":${time},"host":{"id":"h1","org":"o"},"process":{"pid":${pid},"sha256":"${sha}","cmdline":"${cmd}"},` +
      `"protocol":"tcp","remote":{"ip":"203.0.113.5","port":${port},"hostname":"${name}"}}`;
    const base = line('1790841780000', '7', SHAS[0]!, '443', 'api.example.com');
    const variants = [
      line('253402300799999', '7', SHAS[0]!, '443', 'api.example.com'),
      line('253402300800000', '7', SHAS[0]!, '443', 'api.example.com'),
      line('999999999999999', '7', SHAS[0]!, '443', 'api.example.com'),
      line('1000000000000000', '7', SHAS[0]!, '443', 'api.example.com'),
      line('0', '0', SHAS[1]!, '0', 'a'),
      line('01', '7', SHAS[0]!, '443', 'api.example.com'),
      line('1790841780000', '4294967295', SHAS[0]!, '65535', 'api.example.com'),
      line('1790841780000', '4294967296', SHAS[0]!, '443', 'api.example.com'),
      line('1790841780000', '7', SHAS[0]!, '65536', 'api.example.com'),
      line('1790841780000', '7', SHAS[0]!, '0443', 'api.example.com'),
      line('1790841780000', '7', SHAS[0]!.toUpperCase(), '443', 'api.example.com'),
      line('1790841780000', '7', SHAS[0]!.slice(1), '443', 'api.example.com'),
      line('1790841780000', '7', SHAS[0]!, '443', 'api\\u0041.example.com'),
      line('1790841780000', '7', SHAS[0]!, '443', 'api.example.com', 'say \\"hi\\"'),
      line('1790841780000', '7', SHAS[0]!, '443', 'caf\u00e9.example.com'),
      line('1790841780000', '7', SHAS[0]!, '443', 'tab\there'),
      line('1790841780000', '7', SHAS[0]!, '443', ''),
    ];
    const v = differential(
      scanner(),
      variants.flatMap((x) => [base, x]),
    );
    const kinds = v.filter((_, i) => i % 2 === 1).map((x) => x.kind);
    expect(kinds).toEqual([
      KIND_CONNECTION, // 9999-12-31T23:59:59.999Z, the last instant a time may name
      KIND_DECLINED, // a millisecond later: JavaScript makes it a bad-value line
      KIND_DECLINED, // 15 digits, year 33658
      KIND_DECLINED, // 16 digits
      KIND_CONNECTION,
      KIND_DECLINED, // a leading zero is no JSON
      KIND_CONNECTION, // the largest pid and port
      KIND_DECLINED,
      KIND_DECLINED,
      KIND_DECLINED,
      KIND_DECLINED, // an upper-case sha256 is left to JavaScript
      KIND_DECLINED,
      KIND_DECLINED, // an escape in an extracted value
      KIND_CONNECTION, // an escape elsewhere: the parser takes it
      KIND_DECLINED, // a byte >= 0x80
      KIND_DECLINED, // a raw tab in a string is no JSON
      KIND_CONNECTION,
    ]);
  });

  it('splits lines as read-lines.ts does', () => {
    const s = scanner();
    const plain = plainLine(0);
    const text = `${plain}\r\n\n   \r\n${'x'.repeat(100)}\n${'y'.repeat(99)}\r\n${'z'.repeat(100)}\r\nab\u0000c\n\r\n${plain}\r\r\n`;
    const bytes = Buffer.from(text, 'latin1');
    const r = s.scan(bytes, 0, bytes.length, 100);
    expect(r.count).toBe(9);
    expect(r.next).toBe(bytes.length);
    const row = (i: number): number[] => Array.from(s.lines.subarray(i * LINE_STRIDE, i * LINE_STRIDE + 3));
    let p = 0;
    const expectLine = (i: number, len: number, kind: number, eol: number): void => {
      expect(row(i)).toEqual([p, p + len, kind]);
      p += len + eol;
    };
    // Too long counts the bytes before the newline, a CR included (plain is longer than 100).
    expectLine(0, plain.length, KIND_TOO_LONG, 2);
    expectLine(1, 0, KIND_DECLINED, 1);
    expectLine(2, 3, KIND_DECLINED, 2);
    expectLine(3, 100, KIND_DECLINED, 1);
    expectLine(4, 99, KIND_DECLINED, 2);
    expectLine(5, 100, KIND_TOO_LONG, 2);
    expectLine(6, 4, KIND_NUL, 1);
    expectLine(7, 0, KIND_DECLINED, 2);
    expect(p).toBe(bytes.length - plain.length - 3);
    const big = s.scan(bytes, p, bytes.length, MAX_LINE);
    expect(big.count).toBe(1);
    // Only one CR is stripped: the other is whitespace inside the line, which the fast path skips.
    expect(row(0)).toEqual([p, p + plain.length + 1, KIND_CONNECTION]);
    expect(parseRareconLineFast(bytes, p, p + plain.length + 1, origin)).not.toBeNull();
    expect(() => s.scan(bytes, 0, bytes.length - 1, MAX_LINE)).toThrow(/newline/);
    expect(s.scan(bytes, bytes.length, bytes.length, MAX_LINE).count).toBe(0);
  });

  it('stops when its arrays are full and goes on from next', () => {
    const s = scanner();
    const n = s.times.length + 123;
    const texts = Array.from({ length: n }, (_, e) => (e % 10 === 0 ? '' : plainLine(e)));
    const bytes = Buffer.from(texts.map((t) => `${t}\n`).join(''), 'latin1');
    // The result object is reused by every scan: copy what is kept.
    const first = { ...s.scan(bytes, 0, bytes.length, MAX_LINE) };
    expect(first.count).toBe(s.times.length);
    const lastEnd = s.lines[(first.count - 1) * LINE_STRIDE + L_END]!;
    expect(first.next).toBe(lastEnd + 1);
    const second = s.scan(bytes, first.next, bytes.length, MAX_LINE);
    expect(second.count).toBe(123);
    expect(second.next).toBe(bytes.length);
    expect(s.lines[L_START]).toBe(first.next);
  });

  it('interns strings: one id per distinct value, decoded once; reset starts again', () => {
    const s = scanner();
    s.reset();
    const epoch = s.epoch;
    expect(s.strings.length).toBe(0);
    const dns = '{"type":"dns","time":1,"host":{"id":"never"},"query":"a.b","answers":[]}';
    const line = (host: string, ip: string): string =>
      `{"type":"connection","time":1,"host":{"id":"${host}"},"process":{"pid":1},"protocol":"tcp","remote":{"ip":"${ip}","port":1}}`;
    const bytes = Buffer.from(
      [line('h1', '1.2.3.4'), dns, line('h2', '1.2.3.4'), line('h1', 'h2')].map((t) => `${t}\n`).join(''),
      'latin1',
    );
    const r = s.scan(bytes, 0, bytes.length, MAX_LINE);
    expect(r.count).toBe(4);
    const L = s.lines;
    const id = (i: number, f: number): number => L[i * LINE_STRIDE + f]!;
    expect(id(1, L_KIND)).toBe(KIND_DECLINED);
    expect([id(0, L_HOST), id(0, L_IP), id(2, L_HOST), id(2, L_IP), id(3, L_HOST), id(3, L_IP)]).toEqual([0, 1, 2, 1, 0, 2]);
    expect([id(0, L_ORG), id(0, L_SHA), id(0, L_NAME), id(0, L_LOCAL_IP)]).toEqual([-1, -1, -1, -1]);
    // The declined line's host took no id.
    expect(s.strings).toEqual(['h1', '1.2.3.4', 'h2']);
    expect(s.heldBytes).toBeGreaterThan(0);
    s.reset();
    expect(s.epoch).toBe(epoch + 1);
    expect(s.strings.length).toBe(0);
    s.scan(bytes, 0, bytes.length, MAX_LINE);
    expect(id(2, L_HOST)).toBe(2);
    expect(s.strings).toEqual(['h1', '1.2.3.4', 'h2']);
  });
});
