import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ConnectionEvent, DnsAnswer, ProcessRun, ReaderItem } from '../../../src/model/records.js';
import { readLogFile } from '../../../src/sources/replay/log-reader.js';
import { SysmonReader } from '../../../src/sources/replay/sysmon-reader.js';
import { ipsFromQueryResults, parseUtcTime, sha256FromHashes, unescapeHtml } from '../../../src/sources/replay/sysmon-event.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../fixtures/sysmon/${name}`, import.meta.url));
const COVENANT = fixture('covenant_lolbin_wuauclt_createremotethread.json.gz');
const EMPIRE = fixture('empire_dcom_shellwindows_stager.json.gz');
const WINLOGBEAT = fixture('winlogbeat-wuauclt-notepad.ndjson');

const NOTEPAD_SHA256 = 'e5d90beeb6f13f4613c3153dabbd1466f4a062b7252d931f37210907a7f914f7';
const WUAUCLT_SHA256 = 'a039511a553f9da172468d4a0eb4552212a88ab9f0d0ee18cfee7ddf2e2a9a2c';

const cache = new Map<string, ReturnType<typeof readUncached>>();
/** Each dataset is read once for all the tests that use default options. */
function readAll(file: string, opts?: Parameters<typeof readLogFile>[1]): ReturnType<typeof readUncached> {
  if (opts !== undefined) return readUncached(file, opts);
  const hit = cache.get(file) ?? readUncached(file);
  cache.set(file, hit);
  return hit;
}

async function readUncached(file: string, opts: Parameters<typeof readLogFile>[1] = {}) {
  const reader = readLogFile(file, opts);
  const items: ReaderItem[] = [];
  for await (const item of reader) items.push(item);
  const of = <T extends ReaderItem['type']>(t: T) => items.filter((i) => i.type === t) as Array<Extract<ReaderItem, { type: T }>>;
  return { items, connections: of('connection'), dns: of('dns'), runs: of('process'), errors: of('error'), stats: reader.stats() };
}

describe('Sysmon reader on OTRF covenant_lolbin_wuauclt_createremotethread (NXLog export)', () => {
  it('counts what the file holds', async () => {
    const r = await readAll(COVENANT);
    expect(r.errors).toEqual([]);
    expect(r.stats.files[0]).toMatchObject({ format: 'sysmon', lines: 1326, records: { connection: 25, dns: 2, process: 4 }, errors: {} });
    // Every line is accounted for: 31 records, 387 events joined into them, 908 skipped.
    expect(r.stats.files[0]?.joined).toEqual({ 'Sysmon event 10': 200, 'Sysmon event 7': 183, 'Sysmon event 8': 1, 'Sysmon event 5': 3 });
    expect(r.stats.files[0]?.skipped).toEqual({
      'channel Security': 562,
      'channel System': 3,
      'Sysmon event 9': 6,
      'Sysmon event 11': 18,
      'Sysmon event 12': 200,
      'Sysmon event 13': 111,
      'Sysmon event 17': 2,
      'Sysmon event 18': 5,
      'Sysmon event 23': 1,
    });
    expect(r.stats.sysmon).toMatchObject({
      nonSysmonLines: 565,
      connections: 25,
      connectionsWithoutPid: 0,
      dnsAnswers: 2,
      processRuns: 4,
      // notepad only: wuauclt's full-access open of notepad is its own child's creation (routine), its CreateRemoteThread is not.
      injectedProcesses: 1,
      hashedProcesses: 4,
      lateEvents: 0,
    });
    expect(r.stats.sysmon.sysmonEvents).toMatchObject({ '1': 4, '3': 25, '7': 183, '8': 1, '10': 200, '22': 2 });
  });

  it("marks notepad's connection to 10.10.10.5:80 injected by wuauclt, with its Event 1 hash and parent", async () => {
    const { connections } = await readAll(COVENANT);
    const c = connections.filter((x) => x.remote.ip === '10.10.10.5');
    expect(c).toHaveLength(1);
    const n = c[0] as ConnectionEvent;
    expect(n).toMatchObject({
      host: { id: 'WORKSTATION5.theshire.local', org: 'default', name: 'WORKSTATION5.theshire.local' },
      protocol: 'tcp',
      direction: 'outbound',
      remote: { ip: '10.10.10.5', port: 80, hostname: null },
      local: { ip: '172.18.39.5', port: 50123 },
      timeMs: Date.UTC(2020, 9, 12, 22, 34, 38, 613),
    });
    expect(n.process).toMatchObject({
      pid: 2368,
      path: 'C:\\Windows\\System32\\notepad.exe',
      sha256: NOTEPAD_SHA256,
      startTimeMs: Date.UTC(2020, 9, 12, 22, 34, 38, 176),
      cmdline: 'c:\\windows\\system32\\notepad.exe',
      user: 'THESHIRE\\pgustavo',
      signer: { status: 'valid', subject: 'Microsoft Windows', vendor: 'Microsoft Windows' },
      parent: { pid: 6208, path: 'C:\\Windows\\System32\\wuauclt.exe' },
    });
    // wuauclt (notepad's parent) opened notepad with full access 3 ms after creating it: routine. Its
    // CreateRemoteThread 0.4 s later is the injection. lsass (from System32) opened notepad too: routine.
    expect(n.process.injection).toEqual({ injected: true, indicators: ['sysmon-create-remote-thread:wuauclt.exe'] });
  });

  it('names a connection from an Event 22 stamped earlier but logged after it', async () => {
    const { connections, dns } = await readAll(COVENANT);
    const c = connections.find((x) => x.remote.ip === '20.44.239.154');
    expect(c?.remote.hostname).toBe('settings-win.data.microsoft.com');
    expect(c?.origin?.line).toBeLessThan(dns.find((d) => d.query === 'settings-win.data.microsoft.com')?.origin?.line ?? 0);
    expect(dns.map((d) => [d.query, d.answers])).toEqual([
      ['settings-win.data.microsoft.com', [{ ip: '20.44.239.154', ttl: 300 }]],
      [
        'WORKSTATION5',
        [
          { ip: 'fe80::c82a:1ede:d7bd:6e6e', ttl: 300 },
          { ip: '172.18.39.5', ttl: 300 },
        ],
      ],
    ]);
  });

  it('emits a process run per Event 1 with its SHA256', async () => {
    const { runs } = await readAll(COVENANT);
    expect(runs.map((r) => r.path)).toEqual([
      'C:\\Windows\\System32\\cmd.exe',
      'C:\\Windows\\System32\\conhost.exe',
      'C:\\Windows\\System32\\wuauclt.exe',
      'C:\\Windows\\System32\\notepad.exe',
    ]);
    expect(runs[2]?.sha256).toBe(WUAUCLT_SHA256);
  });

  it('marks inbound connections and keeps the client as the remote end', async () => {
    const { connections } = await readAll(COVENANT);
    expect(connections.filter((c) => c.direction === 'outbound')).toHaveLength(12);
    const ldapServer = connections.find((c) => c.direction === 'inbound' && c.process.path === 'C:\\Windows\\System32\\lsass.exe');
    expect(ldapServer?.local?.port).toBe(389);
  });
});

describe('Sysmon reader on OTRF empire_dcom_shellwindows_stager (two hosts, no ProcessId fields)', () => {
  it('counts what the file holds', async () => {
    const r = await readAll(EMPIRE);
    expect(r.errors).toEqual([]);
    expect(r.stats.files[0]).toMatchObject({ format: 'sysmon', lines: 32706, records: { connection: 80, dns: 22, process: 80 } });
    expect(r.stats.sysmon).toMatchObject({
      nonSysmonLines: 1624,
      connections: 80,
      connectionsWithoutPid: 80,
      dnsAnswers: 22,
      dnsWithoutAddresses: 1,
      processRuns: 80,
      // Every Event 10 with write or thread rights comes from a system broker, or from a parent at its
      // child's creation; the one Event 8 (dwm.exe into csrss.exe) is into a process that never connects.
      injectedProcesses: 0,
      hashedProcesses: 81,
      lateEvents: 0,
    });
    expect(r.stats.sysmon.sysmonEvents).toMatchObject({ '1': 80, '3': 80, '7': 5197, '8': 1, '10': 7154, '22': 23 });
    expect(new Set(r.connections.map((c) => c.host.id))).toEqual(new Set(['WORKSTATION5.theshire.local', 'WORKSTATION6.theshire.local']));
    const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);
    const f = r.stats.files[0]!;
    expect(sum(f.records) + sum(f.joined) + sum(f.skipped) + sum(f.errors) + f.blankLines).toBe(32706);
  });

  it("joins the stager's powershell connection to its Event 1 (hash, command line, parent)", async () => {
    const { connections } = await readAll(EMPIRE);
    const ps = connections.find((c) => c.remote.ip === '10.10.10.5');
    expect(ps?.process.path).toBe('C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe');
    expect(ps?.process.sha256).toBe('908b64b1971a979c7e3e8ce4621945cba84854cb98d76367b791a6e22b5f6d53');
    expect(ps?.process.cmdline).toMatch(/-noP -sta -w 1 -enc/);
    expect(ps?.process.parent?.path).toBe('C:\\Windows\\System32\\cmd.exe');
    expect(ps?.process.unusualLibraries.length).toBeGreaterThan(0);
  });

  it('names a connection from a DNS answer stamped 8 ms after it, and an inbound RDP client as remote', async () => {
    const { connections } = await readAll(EMPIRE);
    expect(connections.find((c) => c.remote.ip === '40.126.2.36')?.remote.hostname).toBe('login.microsoftonline.com');
    expect(connections.filter((c) => c.remote.hostname !== null)).toHaveLength(53);
    const rdp = connections.find((c) => c.local?.port === 3389);
    expect(rdp).toMatchObject({
      direction: 'inbound',
      remote: { ip: '71.114.99.41', port: 50046 },
      local: { ip: '172.18.39.6', port: 3389 },
    });
  });

  it('takes Event 10 from the configured sources as not injection (no list: every broker counts)', async () => {
    const r = await readAll(EMPIRE, { sysmon: { processAccessIgnore: [], processAccessParentMs: 0 } });
    // The rule of the first edition: 51 of 74 outbound connections "injected".
    expect(r.connections.filter((c) => c.direction === 'outbound' && c.process.injection.injected)).toHaveLength(51);
    const some = await readAll(EMPIRE, {
      sysmon: { processAccessIgnore: ['csrss.exe', 'C:\\Windows\\System32\\lsass.exe', 'services.exe'] },
    });
    expect(some.connections.some((c) => c.process.injection.indicators.some((i) => /csrss|lsass|services/.test(i)))).toBe(false);
  });
});

describe('Sysmon reader on Winlogbeat-shaped events', () => {
  it('reads the same facts as from the NXLog export', async () => {
    const r = await readAll(WINLOGBEAT);
    expect(r.errors).toEqual([]);
    expect(r.stats.sysmon).toMatchObject({
      nonSysmonLines: 1,
      connections: 2,
      dnsAnswers: 2,
      processRuns: 1,
      hashedProcesses: 1,
      injectedProcesses: 1,
    });
    const n = r.connections.find((c) => c.remote.ip === '10.10.10.5');
    expect(n?.host.id).toBe('WORKSTATION5.theshire.local');
    expect(n?.process.sha256).toBe(NOTEPAD_SHA256);
    expect(n?.process.signer.status).toBe('valid');
    expect(n?.process.injection).toEqual({ injected: true, indicators: ['sysmon-create-remote-thread:wuauclt.exe'] });
    expect(r.connections.find((c) => c.remote.ip === '20.44.239.154')?.remote.hostname).toBe('settings-win.data.microsoft.com');
    // The one event written with a short computer name is the host of the one qualified name seen with it.
    expect(r.runs[0]?.host).toEqual({ id: 'WORKSTATION5.theshire.local', org: 'default', name: 'WORKSTATION5' });
  });
});

// Events written the way the quirks of real exports look: out of order, numbers
// and booleans as strings or not, braces and case in GUIDs, HTML escapes.
function nx(eventId: number, utc: string, fields: Record<string, unknown>, hostname = 'WS1.corp.example'): Record<string, unknown> {
  return { SourceName: 'Microsoft-Windows-Sysmon', EventID: eventId, Hostname: hostname, UtcTime: utc, ...fields };
}
const P = '{AAAA0000-1111-2222-3333-444455556666}';
const SHA = 'ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789';
const create = nx(1, '2024-05-01 10:00:00.100', {
  ProcessGuid: P,
  ProcessId: 900,
  Image: 'C:\\Users\\bob\\AppData\\Local\\app.exe',
  CommandLine: 'app.exe --x',
  User: 'CORP\\bob',
  Hashes: `MD5=00,SHA256=${SHA},IMPHASH=11`,
  ParentProcessGuid: '{bbbb}',
  ParentProcessId: '4',
  ParentImage: 'C:\\Windows\\explorer.exe',
});
const thread = nx(8, '2024-05-01 10:00:01.000', {
  SourceProcessGuid: '{cccc}',
  TargetProcessGuid: P.toLowerCase().slice(1, -1),
  SourceImage: 'C:\\Temp\\evil.exe',
  TargetImage: '&lt;unknown process&gt;',
});
const connect = nx(3, '2024-05-01 10:00:02.000', {
  ProcessGuid: P,
  ProcessId: '900',
  Image: 'C:\\Users\\bob\\AppData\\Local\\app.exe',
  Protocol: 'tcp',
  Initiated: true,
  SourceIp: '192.0.2.10',
  SourcePort: 50000,
  DestinationIp: '203.0.113.7',
  DestinationPort: '443',
  DestinationHostname: 'ptr.example.net',
});
const lateAccess = nx(10, '2024-05-01 10:00:03.000', {
  SourceProcessGUID: '{dddd}',
  TargetProcessGUID: P,
  SourceImage: 'C:\\Temp\\late.exe',
  GrantedAccess: '0x1F0FFF',
});
const dllLoad = nx(7, '2024-05-01 10:00:00.500', {
  ProcessGuid: P,
  Image: 'C:\\Users\\bob\\AppData\\Local\\app.exe',
  ImageLoaded: 'C:\\Users\\bob\\Downloads\\hook.dll',
  Signed: 'false',
});

function run(events: Array<Record<string, unknown>>, opts: ConstructorParameters<typeof SysmonReader>[0] = {}) {
  const reader = new SysmonReader(opts);
  const out: ReaderItem[] = [];
  events.forEach((e, i) => out.push(...reader.push(e, { file: 'mem', line: i + 1 })));
  out.push(...reader.flush());
  return { out, stats: reader.stats() };
}

describe('SysmonReader join', () => {
  it('joins events that arrive out of order within the window', () => {
    const { out, stats } = run([connect, lateAccess, thread, dllLoad, create], { org: 'acme' });
    const c = out.find((i) => i.type === 'connection') as ConnectionEvent;
    expect(c.host).toEqual({ id: 'WS1.corp.example', org: 'acme', name: 'WS1.corp.example' });
    expect(c.process.sha256).toBe(SHA.toLowerCase());
    expect(c.process.cmdline).toBe('app.exe --x');
    expect(c.process.parent).toEqual({ pid: 4, path: 'C:\\Windows\\explorer.exe', cmdline: null });
    // The late access (1 s after the connection) is within the 10 s tolerance.
    expect(c.process.injection).toEqual({
      injected: true,
      indicators: ['sysmon-create-remote-thread:evil.exe', 'sysmon-process-access:late.exe:0x1f0fff'],
    });
    expect(c.process.unusualLibraries).toEqual(['C:\\Users\\bob\\Downloads\\hook.dll']);
    // No Event 22 named the address: the log's own DestinationHostname stands in, marked as a reverse-DNS name.
    expect(c.remote).toMatchObject({ hostname: 'ptr.example.net', reverseDns: true });
    expect(out.map((i) => i.type)).toEqual(['process', 'connection']);
    expect(stats).toMatchObject({ injectedProcesses: 1, hashedProcesses: 1, lateEvents: 0 });
  });

  it('passes on an event later than the window, counted, joined with what is known', () => {
    const at = (utc: string, ip: string) => ({ ...connect, UtcTime: utc, DestinationIp: ip });
    const { out, stats } = run(
      [create, at('2024-05-01 10:00:30.000', '198.51.100.1'), at('2024-05-01 10:00:40.000', '198.51.100.2'), connect],
      { reorderWindowMs: 2_000, injectionLeadMs: 3_000 },
    );
    const conns = out.filter((i) => i.type === 'connection') as ConnectionEvent[];
    // 10:00:30 had left the window when the 10:00:02 connection came in.
    expect(conns.map((c) => c.remote.ip)).toEqual(['198.51.100.1', '203.0.113.7', '198.51.100.2']);
    expect(stats.lateEvents).toBe(1);
    expect(conns[1]?.process.sha256).toBe(SHA.toLowerCase());
  });

  it('prefers the DNS answer of the same host, within TTL plus grace', () => {
    const dns = nx(22, '2024-05-01 09:59:59.000', {
      ProcessGuid: P,
      QueryName: 'api.example.org',
      QueryStatus: '0',
      QueryResults: 'type:  5 edge.example-cdn.net;::ffff:203.0.113.7;',
    });
    const otherHost = nx(22, '2024-05-01 09:59:59.500', { QueryName: 'other.example.com', QueryResults: '203.0.113.7;' }, 'WS2');
    const muchLater = { ...connect, UtcTime: '2024-05-01 10:20:00.000' };
    const { out } = run([dns, otherHost, create, connect, muchLater], { dnsTtlSeconds: 60, dnsGraceMs: 60_000 });
    const conns = out.filter((i) => i.type === 'connection') as ConnectionEvent[];
    expect(conns.map((c) => c.remote.hostname)).toEqual(['api.example.org', 'ptr.example.net']);
    const answers = out.filter((i) => i.type === 'dns') as DnsAnswer[];
    expect(answers.map((a) => [a.host.id, a.query, a.answers])).toEqual([
      ['WS1.corp.example', 'api.example.org', [{ ip: '203.0.113.7', ttl: 60 }]],
      ['WS2', 'other.example.com', [{ ip: '203.0.113.7', ttl: 60 }]],
    ]);
  });

  it('reads the signer from Event 7 of the image itself', () => {
    const self = (extra: Record<string, unknown>) =>
      nx(7, '2024-05-01 10:00:00.200', { ProcessGuid: P, Image: 'C:\\x\\app.exe', ImageLoaded: 'c:\\X\\APP.EXE', ...extra });
    const signerOf = (extra: Record<string, unknown>) =>
      (run([self(extra), connect]).out.find((i) => i.type === 'connection') as ConnectionEvent).process.signer;
    expect(signerOf({ Signed: 'true', Signature: 'Contoso Ltd', SignatureStatus: 'Valid' })).toEqual({
      status: 'valid',
      subject: 'Contoso Ltd',
      vendor: 'Contoso Ltd',
    });
    expect(signerOf({ Signed: true, Signature: 'Contoso Ltd', SignatureStatus: 'Expired' })).toMatchObject({ status: 'invalid' });
    expect(signerOf({ Signed: 'false', Signature: '-', SignatureStatus: 'Unavailable' })).toEqual({
      status: 'unsigned',
      subject: null,
      vendor: null,
    });
    const hashed = run([self({ Hashes: `SHA256=${SHA}` }), connect]).out.find((i) => i.type === 'connection') as ConnectionEvent;
    expect(hashed.process.sha256).toBe(SHA.toLowerCase());
  });

  it('ignores Event 10 without write or create-thread rights, and a process opening itself', () => {
    const weak = { ...lateAccess, UtcTime: '2024-05-01 10:00:01.000', GrantedAccess: '0x1410' };
    const self = { ...lateAccess, UtcTime: '2024-05-01 10:00:01.000', SourceProcessGUID: P };
    const { out, stats } = run([create, weak, self, connect]);
    expect((out.find((i) => i.type === 'connection') as ConnectionEvent).process.injection.injected).toBe(false);
    expect(stats.injectedProcesses).toBe(0);
  });

  it('reports a malformed connection as an error for its line, and skips other channels', () => {
    const bad = nx(3, '2024-05-01 10:00:02.000', { ProcessGuid: P, Protocol: 'tcp', DestinationPort: '443' });
    const badPort = nx(3, '2024-05-01 10:00:02.000', {
      ProcessGuid: P,
      Protocol: 'tcp',
      DestinationIp: '203.0.113.7',
      DestinationPort: '99999',
    });
    const security = { SourceName: 'Microsoft-Windows-Security-Auditing', EventID: 4624, Hostname: 'WS1' };
    const noTime = nx(3, 'soon', { DestinationIp: '203.0.113.7' });
    const { out, stats } = run([security, bad, badPort, noTime, connect]);
    expect(out.filter((i) => i.type === 'error').map((e) => e.type === 'error' && [e.origin.line, e.code, e.message])).toEqual([
      [2, 'missing-field', 'Sysmon event 3: missing field "DestinationIp"'],
      [3, 'bad-value', 'Sysmon event 3: field "DestinationPort" has a bad value "99999"'],
      [4, 'bad-value', 'Sysmon event 3: UtcTime "soon" is not a time of the years 1970-9999'],
    ]);
    expect(out.filter((i) => i.type === 'connection')).toHaveLength(1);
    expect(stats.nonSysmonLines).toBe(1);
  });

  it('emits no process run for an Event 1 without SHA256', () => {
    const { out, stats } = run([{ ...create, Hashes: 'MD5=00,IMPHASH=11' }]);
    expect(out.filter((i): i is ProcessRun => i.type === 'process')).toHaveLength(0);
    expect(stats.processRunsWithoutHash).toBe(1);
  });
});

describe('Sysmon field helpers', () => {
  it('parse the quirky values', () => {
    expect(unescapeHtml('&lt;unknown process&gt; &amp; &#39;x&#x27;')).toBe("<unknown process> & 'x'");
    expect(parseUtcTime('2020-10-12 22:34:38.169')).toBe(Date.UTC(2020, 9, 12, 22, 34, 38, 169));
    expect(parseUtcTime('2020-10-12 22:34:38.1694567')).toBe(Date.UTC(2020, 9, 12, 22, 34, 38, 169));
    expect(parseUtcTime('12/10/2020')).toBeNull();
    expect(sha256FromHashes(`SHA1=AA,MD5=BB,SHA256=${SHA},IMPHASH=CC`)).toBe(SHA.toLowerCase());
    expect(sha256FromHashes('MD5=BB')).toBeNull();
    expect(ipsFromQueryResults('type:  5 a.example.net;type:  5 b.example.net;::ffff:52.114.128.9;52.113.194.132;fe80::1;')).toEqual([
      '52.114.128.9',
      '52.113.194.132',
      'fe80::1',
    ]);
    expect(ipsFromQueryResults('-')).toEqual([]);
  });
});
