// Seeded hostile input for the fuzz suite: rarecon NDJSON records and Sysmon
// events, each valid at first and then bent the way a broken exporter, a
// truncated copy or an attacker bends them (out-of-range times, wrong types,
// odd addresses and names, control bytes, invalid UTF-8, cut lines, nesting).
// The same seed gives the same bytes, so a failure is reproduced by its seed.

/** A small, fast, seeded generator (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** The seed and size of a run: `RARECON_FUZZ_SEED` and `RARECON_FUZZ_LINES` override the CI defaults. */
export function fuzzSettings(defaultLines: number): { seed: number; lines: number } {
  const seed = Number(process.env.RARECON_FUZZ_SEED ?? 15);
  const lines = Number(process.env.RARECON_FUZZ_LINES ?? defaultLines);
  if (!Number.isInteger(seed) || !Number.isInteger(lines) || lines < 1)
    throw new Error('RARECON_FUZZ_SEED and RARECON_FUZZ_LINES take whole numbers');
  return { seed, lines };
}

const T0 = Date.UTC(2026, 8, 1, 9);
const SHAS = ['a'.repeat(64), 'b'.repeat(64), '0123456789abcdef'.repeat(4), 'C'.repeat(64)];

/** Times as a log may write them: the Date range's edges and beyond, odd texts and types. */
const TIMES: readonly unknown[] = [
  1e21,
  8_640_000_000_000_001,
  8.64e15,
  8.64e15 - 1,
  -8.64e15,
  -1,
  0,
  0.5,
  1.5e12,
  253_402_300_799_999,
  253_402_300_800_000,
  Number.MAX_SAFE_INTEGER,
  2 ** 53 + 1,
  1e308,
  5e-324,
  '1e21',
  '8640000000000001',
  '9999999999999999',
  '99999999999999999',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '+275760-09-13T00:00:00.000Z',
  '2026-02-30T00:00:00Z',
  '2026-09-01T09:00:00+99:99',
  '2026-09-01 09:00:00.123456789z',
  '2026-09-01T25:61:61Z',
  ' 1790000000000 ',
  'NaN',
  'Infinity',
  '',
  null,
  true,
  [],
  {},
];

const STRINGS: readonly unknown[] = [
  '',
  ' ',
  '\t\r',
  '\u0000',
  '\u0000abc',
  '\ud800',
  '\udfff\ud800',
  '\u2028\u2029',
  '\u202e' + 'evil',
  'e\u0301',
  '\ufeff',
  '"]\\',
  '<script>&amp;',
  '%s%n%x',
  '../../../../etc/passwd',
  'C:\\Windows\\System32\\svchost.exe',
  '😀'.repeat(50),
  'x'.repeat(5000),
  'ÿ'.repeat(300),
  12,
  -0,
  1.7976931348623157e308,
  false,
  null,
  [],
  ['a', 1, null],
  { a: 1 },
];

const NUMBERS: readonly unknown[] = [
  0,
  -1,
  1,
  65535,
  65536,
  4_194_304,
  4_194_305,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  1e21,
  0.5,
  -0,
  '443',
  ' 8443 ',
  '0x1bb',
  '1e3',
  null,
  true,
  'abc',
];

const IPS: readonly unknown[] = [
  '203.0.113.9',
  '198.51.100.7',
  '::ffff:203.0.113.9',
  '::FFFF:CB00:7109',
  '2001:db8::1',
  '2001:DB8:0:0:0:0:0:1',
  'fe80::1%eth0',
  '127.0.0.1',
  '0.0.0.0',
  '255.255.255.255',
  '999.1.1.1',
  '1.2.3',
  '01.02.03.04',
  '1.2.3.4 ',
  ' 1.2.3.4',
  '::',
  ':::',
  '1::2::3',
  '',
  'localhost',
  12345,
  null,
];

const HOSTNAMES: readonly unknown[] = [
  'www.example.com',
  'api.c2-domain.net',
  ' WWW.EXAMPLE.COM. ',
  'bücher.de',
  'xn--bcher-kva.de',
  'evil.github.io',
  'a..b.com',
  '.com',
  'com',
  'localhost',
  '203.0.113.50',
  '[2001:db8::1]',
  'x'.repeat(64) + '.com',
  ('a'.repeat(63) + '.').repeat(5) + 'com',
  'host_name.example.org',
  'ex ample.com',
  '*.example.com',
  'example.com\u0000.evil.net',
  '',
  null,
  7,
];

function host(r: Rng): Record<string, unknown> {
  const h: Record<string, unknown> = { id: r.pick(['h1', 'h2', 'h3', 'host-with-a-long-name', ' h4 ']), org: r.pick(['o1', 'o2', 'o1']) };
  if (r.chance(0.3)) h.name = r.pick(['h1.example', 'WORKSTATION5.theshire.local', 'bad host name']);
  return h;
}

function connection(r: Rng, i: number): Record<string, unknown> {
  const process: Record<string, unknown> = {
    pid: 1000 + r.int(5000),
    tid: 1001 + r.int(5000),
    path: r.pick(['/usr/bin/curl', '/usr/lib/firefox/firefox', 'C:\\Windows\\System32\\rundll32.exe']),
    sha256: r.pick(SHAS),
    signer: {
      status: r.pick(['valid', 'unsigned', 'invalid', 'unknown']),
      subject: r.chance(0.5) ? 'Debian' : null,
      vendor: r.chance(0.5) ? 'Debian' : null,
    },
    injection: { injected: r.chance(0.1), indicators: r.chance(0.1) ? ['anon-exec-frame:0x7f12'] : [] },
    cmdline: `curl https://c2.example.com/${i}`,
    user: r.pick(['root', 'alice', 'NT AUTHORITY\\SYSTEM']),
  };
  if (r.chance(0.3)) process.startTime = T0 - r.int(86_400_000);
  if (r.chance(0.3)) process.parent = { pid: 1, path: '/sbin/init', cmdline: 'init' };
  if (r.chance(0.1)) process.unusualLibraries = ['/tmp/x.so'];
  const rec: Record<string, unknown> = {
    type: 'connection',
    time: T0 + i * 1000,
    host: host(r),
    process,
    protocol: r.pick(['tcp', 'udp']),
    remote: { ip: r.pick(IPS.slice(0, 6)), port: r.pick([443, 8443, 53, 4444]), hostname: r.pick(HOSTNAMES.slice(0, 4)) },
  };
  if (r.chance(0.2)) rec.direction = r.pick(['outbound', 'inbound']);
  if (r.chance(0.3)) rec.local = { ip: '192.0.2.7', port: 50_000 + r.int(1000) };
  return rec;
}

function dns(r: Rng, i: number): Record<string, unknown> {
  return {
    type: 'dns',
    time: T0 + i * 1000,
    host: host(r),
    query: r.pick(HOSTNAMES.slice(0, 6)),
    answers: [{ ip: r.pick(IPS.slice(0, 6)), ttl: r.pick([0, 60, 300, 86_400]) }],
  };
}

function processRun(r: Rng, i: number): Record<string, unknown> {
  return { type: 'process', time: T0 + i * 1000, host: host(r), sha256: r.pick(SHAS), path: '/usr/bin/curl' };
}

/** Every path to a value inside `o` (objects and arrays), for picking one to bend. */
function paths(o: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (o !== null && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      // An array may hold a named key too (a bend adds one); it is walked by its name.
      const p = [...at, Array.isArray(o) && /^\d+$/.test(k) ? Number(k) : k];
      out.push(p);
      paths(v, p, out);
    }
  }
  return out;
}

/** A hostile value for `key`: a fresh copy, since a later bend may change it in place. */
function valueFor(r: Rng, key: string | number): unknown {
  return structuredClone(hostileValue(r, key));
}

function hostileValue(r: Rng, key: string | number): unknown {
  const k = String(key).toLowerCase();
  if (k.includes('time')) return r.pick(TIMES);
  if (k === 'ip') return r.pick(IPS);
  if (k === 'hostname' || k === 'query') return r.pick(HOSTNAMES);
  if (k.includes('port') || k.includes('pid') || k === 'tid' || k === 'ttl') return r.pick(NUMBERS);
  if (k === 'sha256') return r.pick(['A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), ' ' + 'a'.repeat(64) + ' ', 'a'.repeat(65), '', null]);
  return r.chance(0.5) ? r.pick(STRINGS) : r.pick([...TIMES, ...NUMBERS, ...IPS]);
}

/** Bends one value of the record: a hostile value, a removed key, an unknown key, a wrong type. */
function bend(r: Rng, rec: Record<string, unknown>): void {
  const all = paths(rec);
  if (all.length === 0) {
    rec.type = r.pick(STRINGS);
    return;
  }
  const p = r.pick(all);
  let parent: Record<string | number, unknown> = rec;
  for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = p[p.length - 1]!;
  const roll = r.int(10);
  if (roll === 0) delete parent[key];
  else if (roll === 1) parent[`extra${r.int(3)}`] = structuredClone(r.pick(STRINGS));
  else if (roll === 2) parent[key] = r.pick([[], {}, [parent[key]], { value: parent[key] }, String(parent[key])]);
  else parent[key] = valueFor(r, key);
}

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** Text-level damage: cut, a flipped byte, a NUL, a byte order mark, a duplicate key, odd number forms. */
function damage(r: Rng, line: string, ascii = false): Buffer {
  const roll = r.int(12);
  // Raw bytes above 0x7f and the byte order mark are left out of an all-ASCII file.
  switch (ascii && (roll === 3 || roll === 4) ? 8 : roll) {
    case 0:
      return Buffer.from(line.slice(0, r.int(line.length)));
    case 1: {
      const b = Buffer.from(line);
      b[r.int(b.length)] = 33 + r.int(94);
      return b;
    }
    case 2: {
      const b = Buffer.from(line);
      const at = r.int(b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from([0]), b.subarray(at)]);
    }
    case 3: {
      // Bytes that are not UTF-8: a lone continuation byte, an overlong form, a cut sequence.
      const b = Buffer.from(line);
      const at = r.int(b.length);
      return Buffer.concat([
        b.subarray(0, at),
        Buffer.from(r.pick([[0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xff, 0xfe], [0xed, 0xa0, 0x80]])),
        b.subarray(at),
      ]);
    }
    case 4:
      return Buffer.from('\ufeff' + line);
    case 5:
      return Buffer.from(line.replace('{"type"', '{"time":1,"type"').replace('"time":', `"time":${JSON.stringify(r.pick(TIMES))},"time":`));
    case 6:
      return Buffer.from(
        line.replace(/"port":(\d+)/, (_m, d: string) => `"port":${r.pick([`${d}.0`, `${d}e0`, `0${d}`, `-${d}`, `${d}E+0`, `${d}.`])}`),
      );
    case 7:
      return Buffer.from(
        line.replace(/"time":(\d+)/, (_m, d: string) => `"time":${r.pick([`${d}.999`, `${d}e0`, '1E21', '8.64E15', '-0', '1e-7'])}`),
      );
    case 8:
      return Buffer.from('  ' + line + ' \t');
    case 9:
      return Buffer.from(line + '\r');
    case 10:
      return Buffer.from(line.replace(/"([a-z]+)":/, (_m, k: string) => `"\\u00${k.charCodeAt(0).toString(16)}${k.slice(1)}":`));
    default:
      return Buffer.from(line.replace(/"hostname":"([^"]*)"/, (_m, h: string) => `"hostname":"${h.replace(/\./g, '\\u002e')}"`));
  }
}

/** Non-ASCII characters as \u escapes: the same values, in lines the native scanner gets to see (it reads all-ASCII chunks only). */
function asciiOnly(text: string): string {
  return text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `n` lines of rarecon NDJSON (the first one a plain record, so the file reads
 * as rarecon), each ending in a newline. `ascii`: no byte above 0x7f (values
 * escaped, no invalid UTF-8), so the native line scanner reads the chunks.
 */
export function hostileNdjson(r: Rng, n: number, opts: { ascii?: boolean } = {}): Buffer {
  const ascii = opts.ascii === true;
  const text = (o: unknown): string => (ascii ? asciiOnly(JSON.stringify(o)) : JSON.stringify(o));
  const parts: Buffer[] = [Buffer.from(text(connection(r, 0)) + '\n')];
  for (let i = 1; i < n; i++) {
    let line: Buffer;
    const roll = r.next();
    if (roll < 0.02) line = Buffer.from(r.pick(ascii ? ['', ' ', '\t', '\r', '  \r'] : ['', ' ', '\t', '\r', '\ufeff', '  \r']));
    else if (roll < 0.025)
      line = Buffer.from(
        r.pick([
          nested(r.int(3000) + 1),
          '{"type":"connection","x":' + nested(500) + '}',
          '"just a string"',
          '42',
          'null',
          '[{"type":"dns"}]',
          '{}',
          '{"type":"sysmon"}',
        ]),
      );
    else if (roll < 0.0255) line = Buffer.from(text({ ...connection(r, i), pad: 'x'.repeat(1024 * 1024 + r.int(1000)) }));
    else {
      const rec = r.chance(0.7) ? connection(r, i) : r.chance(0.5) ? dns(r, i) : processRun(r, i);
      // Half the lines stay valid (the fast paths must take them as the reference reader does); the rest are bent.
      if (r.chance(0.5)) {
        const bends = 1 + r.int(3);
        for (let b = 0; b < bends; b++) bend(r, rec);
      }
      const t = text(rec);
      line = r.chance(0.15) ? damage(r, t, ascii) : Buffer.from(t);
    }
    parts.push(line, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

const SYSMON_CHANNEL = 'Microsoft-Windows-Sysmon/Operational';

function utc(r: Rng, i: number): unknown {
  if (r.chance(0.9)) return new Date(T0 + i * 1000).toISOString().replace('T', ' ').replace('Z', '');
  return r.pick([
    '9999-12-31 23:59:59.999',
    '0000-01-01 00:00:00.000',
    '2026-13-45 99:99:99.999',
    '275760-09-13 00:00:00.000',
    '',
    12,
    null,
  ]);
}

function sysmonEvent(r: Rng, i: number): Record<string, unknown> {
  const guid = `{71b87c12-d259-5f84-${(1000 + r.int(20)).toString(16)}-000000000500}`;
  const id = r.pick([1, 3, 3, 3, 22, 8, 10, 5, 4624]);
  const data: Record<string, unknown> = {
    UtcTime: utc(r, i),
    ProcessGuid: guid,
    ProcessId: String(4000 + r.int(20)),
    Image: 'C:\\Windows\\System32\\svchost.exe',
  };
  if (id === 1) {
    Object.assign(data, {
      Hashes: `SHA1=${'1'.repeat(40)},MD5=${'2'.repeat(32)},SHA256=${r.pick(SHAS).toUpperCase()}`,
      CommandLine: 'svchost.exe -k netsvcs',
      User: 'NT AUTHORITY\\SYSTEM',
      ParentImage: 'C:\\Windows\\System32\\services.exe',
      ParentProcessId: '600',
    });
  } else if (id === 3) {
    Object.assign(data, {
      Protocol: r.pick(['tcp', 'udp']),
      Initiated: r.pick(['true', 'false']),
      SourceIp: '172.18.39.5',
      SourcePort: '50119',
      DestinationIp: r.pick(IPS.slice(0, 6)),
      DestinationPort: String(r.pick([443, 8443, 53])),
      DestinationHostname: r.pick(['-', 'www.example.com', 'api.c2-domain.net']),
      User: 'NT AUTHORITY\\SYSTEM',
    });
  } else if (id === 22) {
    Object.assign(data, {
      QueryName: r.pick(HOSTNAMES.slice(0, 4)),
      QueryStatus: '0',
      QueryResults: `type:  5 x.example;::ffff:${r.pick(['203.0.113.9', '198.51.100.7'])};`,
    });
  } else if (id === 8) {
    Object.assign(data, {
      SourceProcessGuid: guid,
      TargetProcessGuid: `{71b87c12-d259-5f84-0400-000000000500}`,
      TargetImage: 'C:\\Windows\\System32\\wuauclt.exe',
      StartFunction: '-',
    });
  }
  if (r.chance(0.5)) {
    // Winlogbeat: nested under winlog.event_data.
    return {
      '@timestamp': new Date(T0 + i * 1000).toISOString(),
      winlog: {
        event_id: id,
        provider_name: 'Microsoft-Windows-Sysmon',
        channel: SYSMON_CHANNEL,
        computer_name: 'WORKSTATION5.theshire.local',
        event_data: data,
      },
    };
  }
  // NXLog: the event data at the top level.
  return { EventID: id, SourceName: 'Microsoft-Windows-Sysmon', Channel: SYSMON_CHANNEL, Hostname: 'wec.internal.cloudapp.net', ...data };
}

/** `n` lines of Sysmon JSON (first one plain, so the file reads as Sysmon). */
export function hostileSysmon(r: Rng, n: number): Buffer {
  const parts: Buffer[] = [Buffer.from(JSON.stringify(sysmonEvent(r, 0)) + '\n')];
  for (let i = 1; i < n; i++) {
    const ev = sysmonEvent(r, i);
    if (r.chance(0.5)) {
      const bends = 1 + r.int(3);
      for (let b = 0; b < bends; b++) bend(r, ev);
    }
    const text = JSON.stringify(ev);
    const line = r.chance(0.1) ? damage(r, text) : r.chance(0.01) ? Buffer.from('') : Buffer.from(text);
    parts.push(line, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}
