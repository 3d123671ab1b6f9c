import { describe, expect, it } from 'vitest';
import type { ConnectionEvent, RecordError, SourceRecord } from '../../../src/model/records.js';
import { parseRareconRecord } from '../../../src/sources/replay/ndjson-reader.js';
import { toRareconRecord } from '../../../src/model/rarecon-record.js';

const origin = { file: 'events.ndjson', line: 7 };
const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

// The two examples of DETECTION.md section 10, as written there.
const DNS_EXAMPLE = {
  type: 'dns',
  time: '2026-10-01T10:00:00Z',
  host: { id: 'h1', org: 'o1' },
  query: 'c2.example.com',
  answers: [{ ip: '203.0.113.10', ttl: 300 }],
};
const CONNECTION_EXAMPLE = {
  type: 'connection',
  time: '2026-10-01T10:00:01Z',
  host: { id: 'h1', org: 'o1', name: 'web-1' },
  process: {
    pid: 4242,
    tid: 4243,
    path: '/usr/bin/curl',
    sha256: SHA.toUpperCase(),
    signer: { status: 'valid', subject: 'Debian', vendor: 'Debian' },
    injection: { injected: false, indicators: [] },
    cmdline: 'curl https://c2.example.com:8443/',
    user: 'root',
  },
  protocol: 'tcp',
  remote: { ip: '203.0.113.10', port: 8443, hostname: 'c2.example.com' },
};

function asError(r: SourceRecord | RecordError): RecordError {
  expect(r.type).toBe('error');
  return r as RecordError;
}

describe('parseRareconRecord', () => {
  it('reads the section-10 dns example', () => {
    expect(parseRareconRecord(DNS_EXAMPLE, origin)).toEqual({
      type: 'dns',
      timeMs: Date.UTC(2026, 9, 1, 10, 0, 0),
      host: { id: 'h1', org: 'o1' },
      query: 'c2.example.com',
      answers: [{ ip: '203.0.113.10', ttl: 300 }],
      origin,
    });
  });

  it('reads the section-10 connection example, lower-casing the sha256', () => {
    const r = parseRareconRecord(JSON.stringify(CONNECTION_EXAMPLE), origin) as ConnectionEvent;
    expect(r.type).toBe('connection');
    expect(r.timeMs).toBe(Date.UTC(2026, 9, 1, 10, 0, 1));
    expect(r.host).toEqual({ id: 'h1', org: 'o1', name: 'web-1' });
    expect(r.process).toEqual({
      pid: 4242,
      tid: 4243,
      startTimeMs: null,
      path: '/usr/bin/curl',
      sha256: SHA,
      signer: { status: 'valid', subject: 'Debian', vendor: 'Debian' },
      injection: { injected: false, indicators: [] },
      cmdline: 'curl https://c2.example.com:8443/',
      user: 'root',
      parent: null,
      unusualLibraries: [],
    });
    expect(r.protocol).toBe('tcp');
    expect(r.direction).toBe('outbound');
    expect(r.remote).toEqual({ ip: '203.0.113.10', port: 8443, hostname: 'c2.example.com' });
    expect(r.local).toBeNull();
    expect(r.origin).toEqual(origin);
  });

  it('fills defaults for a minimal connection and accepts quoted numbers and epoch ms', () => {
    const r = parseRareconRecord(
      {
        type: 'connection',
        time: 1790848802000,
        host: { id: 'h2' },
        process: { pid: '77' },
        protocol: 'UDP',
        remote: { ip: '198.51.100.7', port: '53' },
        extra: [1],
      },
      origin,
    ) as ConnectionEvent;
    expect(r.timeMs).toBe(1790848802000);
    expect(r.host).toEqual({ id: 'h2', org: 'default' });
    expect(r.protocol).toBe('udp');
    expect(r.remote).toEqual({ ip: '198.51.100.7', port: 53, hostname: null });
    expect(r.process.pid).toBe(77);
    expect(r.process.sha256).toBeNull();
    expect(r.process.signer).toEqual({ status: 'unknown', subject: null, vendor: null });
    expect(r.process.injection).toEqual({ injected: false, indicators: [] });
  });

  it('takes indicators without the flag as injected, and reads direction and local', () => {
    const r = parseRareconRecord(
      {
        type: 'connection',
        time: '2026-10-01T12:00:00.250+02:00',
        host: { id: 'h1' },
        direction: 'inbound',
        process: { pid: 1, injection: { indicators: ['anon-exec-frame:0x7f12'] } },
        protocol: 'tcp',
        remote: { ip: '::FFFF:203.0.113.9', port: 22 },
        local: { ip: '192.0.2.1', port: 2222 },
      },
      origin,
    ) as ConnectionEvent;
    expect(r.timeMs).toBe(Date.UTC(2026, 9, 1, 10, 0, 0, 250));
    expect(r.direction).toBe('inbound');
    expect(r.process.injection).toEqual({ injected: true, indicators: ['anon-exec-frame:0x7f12'] });
    expect(r.remote.ip).toBe('203.0.113.9');
    expect(r.local).toEqual({ ip: '192.0.2.1', port: 2222 });
  });

  it('reads a process run', () => {
    expect(
      parseRareconRecord({ type: 'process', time: '2026-10-01T10:00:03Z', host: { id: 'h1' }, sha256: SHA, path: '/usr/bin/curl' }, origin),
    ).toEqual({
      type: 'process',
      timeMs: Date.UTC(2026, 9, 1, 10, 0, 3),
      host: { id: 'h1', org: 'default' },
      sha256: SHA,
      path: '/usr/bin/curl',
      origin,
    });
  });

  const conn = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...CONNECTION_EXAMPLE, ...patch });
  it.each([
    ['truncated JSON', '{"type":"dns","time":', 'invalid-json', /not JSON/],
    ['an array', [1, 2], 'not-an-object', /JSON object/],
    ['no type', { time: 1, host: { id: 'h' } }, 'missing-field', /"type"/],
    ['an unknown type', { type: 'flow', time: 1, host: { id: 'h' } }, 'bad-value', /"type" must be one of dns, connection, process/],
    ['no time', { type: 'process', host: { id: 'h' }, sha256: SHA }, 'missing-field', /"time"/],
    ['a bad time', { type: 'process', time: 'yesterday', host: { id: 'h' }, sha256: SHA }, 'bad-value', /"time"/],
    ['a boolean time', { type: 'process', time: true, host: { id: 'h' }, sha256: SHA }, 'wrong-type', /"time"/],
    ['host as a string', { type: 'process', time: 1, host: 'h1', sha256: SHA }, 'wrong-type', /"host" must be an object/],
    ['no host id', { type: 'process', time: 1, host: { org: 'o' }, sha256: SHA }, 'missing-field', /"host.id"/],
    ['a short sha256', { type: 'process', time: 1, host: { id: 'h' }, sha256: 'abc' }, 'bad-value', /"sha256" must be 64 hex digits/],
    ['no sha256 in a run', { type: 'process', time: 1, host: { id: 'h' } }, 'missing-field', /"sha256"/],
    ['port 70000', conn({ remote: { ip: '203.0.113.10', port: 70000 } }), 'bad-value', /"remote.port" must be an integer 0..65535/],
    ['port -1', conn({ remote: { ip: '203.0.113.10', port: -1 } }), 'bad-value', /"remote.port"/],
    ['port 44.5', conn({ remote: { ip: '203.0.113.10', port: 44.5 } }), 'bad-value', /"remote.port"/],
    ['port as an object', conn({ remote: { ip: '203.0.113.10', port: {} } }), 'wrong-type', /"remote.port"/],
    ['no remote ip', conn({ remote: { port: 443 } }), 'missing-field', /"remote.ip"/],
    ['a bad remote ip', conn({ remote: { ip: '203.0.113.300', port: 443 } }), 'bad-value', /"remote.ip" must be an IP address/],
    ['no process', conn({ process: undefined }), 'missing-field', /"process"/],
    ['pid as a word', conn({ process: { pid: 'one' } }), 'bad-value', /"process.pid"/],
    ['a bad signer status', conn({ process: { pid: 1, signer: { status: 'trusted' } } }), 'bad-value', /"process.signer.status"/],
    ['a bad process sha256', conn({ process: { pid: 1, sha256: 'zz' } }), 'bad-value', /"process.sha256"/],
    [
      'indicators not strings',
      conn({ process: { pid: 1, injection: { indicators: [1] } } }),
      'wrong-type',
      /"process.injection.indicators\[0\]"/,
    ],
    ['protocol icmp', conn({ protocol: 'icmp' }), 'bad-value', /"protocol" must be one of tcp, udp/],
    ['a bad direction', conn({ direction: 'sideways' }), 'bad-value', /"direction"/],
    ['dns answers not an array', { ...DNS_EXAMPLE, answers: 'x' }, 'wrong-type', /"answers" must be an array/],
    ['a dns answer without ip', { ...DNS_EXAMPLE, answers: [{ ttl: 1 }] }, 'missing-field', /"answers\[0\].ip"/],
    ['a negative ttl', { ...DNS_EXAMPLE, answers: [{ ip: '203.0.113.1', ttl: -5 }] }, 'bad-value', /"answers\[0\].ttl"/],
  ])('rejects %s with a located, named error', (_name, input, code, message) => {
    const e = asError(parseRareconRecord(input, origin));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expect(e.origin).toEqual(origin);
  });

  it('gives a dns answer without ttl the default TTL', () => {
    const r = parseRareconRecord({ ...DNS_EXAMPLE, answers: [{ ip: '203.0.113.1' }] }, origin);
    expect(r.type === 'dns' && r.answers).toEqual([{ ip: '203.0.113.1', ttl: 300 }]);
  });
});

describe('toRareconRecord', () => {
  const full: ConnectionEvent = {
    type: 'connection',
    timeMs: 1790848801123,
    host: { id: 'h1', org: 'o1', name: 'web-1' },
    process: {
      pid: 4242,
      tid: 4243,
      startTimeMs: 1790840000000,
      path: 'C:\\Windows\\System32\\notepad.exe',
      sha256: SHA,
      signer: { status: 'valid', subject: 'Microsoft Windows', vendor: 'Microsoft Windows' },
      injection: { injected: true, indicators: ['sysmon-create-remote-thread:wuauclt.exe'] },
      cmdline: 'notepad.exe',
      user: 'THESHIRE\\pgustavo',
      parent: { pid: 6208, path: 'C:\\Windows\\System32\\wuauclt.exe', cmdline: null },
      unusualLibraries: ['C:\\ProgramData\\SimpleInjection.dll'],
    },
    protocol: 'tcp',
    direction: 'inbound',
    remote: { ip: '2001:db8::1', port: 80, hostname: 'c2.example.com' },
    local: { ip: '192.0.2.5', port: 50123 },
    origin,
  };
  const minimal: ConnectionEvent = {
    type: 'connection',
    timeMs: 0,
    host: { id: 'h2', org: 'default' },
    process: {
      pid: 1,
      tid: null,
      startTimeMs: null,
      path: null,
      sha256: null,
      signer: { status: 'unknown', subject: null, vendor: null },
      injection: { injected: false, indicators: [] },
      cmdline: null,
      user: null,
      parent: null,
      unusualLibraries: [],
    },
    protocol: 'udp',
    direction: 'outbound',
    remote: { ip: '198.51.100.7', port: 53, hostname: null },
    local: null,
    origin,
  };
  const records: SourceRecord[] = [
    full,
    minimal,
    {
      type: 'dns',
      timeMs: 1790848800000,
      host: { id: 'h1', org: 'o1' },
      query: 'c2.example.com',
      answers: [{ ip: '203.0.113.10', ttl: 30 }],
      origin,
    },
    { type: 'process', timeMs: 1790848800000, host: { id: 'h1', org: 'o1' }, sha256: SHA, path: null, origin },
    { type: 'process', timeMs: 1790848800000, host: { id: 'h1', org: 'o1' }, sha256: SHA, path: '/bin/sh', origin },
  ];

  it.each(records.map((r, i) => [i, r] as const))('round-trips record %i through JSON text', (_i, r) => {
    const line = JSON.stringify(toRareconRecord(r));
    expect(parseRareconRecord(line, origin)).toEqual(r);
  });

  it('writes RFC 3339 times and the section-10 shape', () => {
    const o = toRareconRecord(full);
    expect(o.time).toBe('2026-10-01T10:00:01.123Z');
    expect(o).toMatchObject({
      type: 'connection',
      host: { id: 'h1', org: 'o1', name: 'web-1' },
      protocol: 'tcp',
      remote: { ip: '2001:db8::1', port: 80, hostname: 'c2.example.com' },
    });
    expect(toRareconRecord(minimal)).toEqual({
      type: 'connection',
      time: '1970-01-01T00:00:00.000Z',
      host: { id: 'h2', org: 'default' },
      direction: 'outbound',
      process: { pid: 1, signer: { status: 'unknown', subject: null, vendor: null }, injection: { injected: false, indicators: [] } },
      protocol: 'udp',
      remote: { ip: '198.51.100.7', port: 53 },
    });
  });
});
