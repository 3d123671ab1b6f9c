// The Sysmon rules of DETECTION.md section 5 (second edition), one synthetic
// case each: routine process access, the parent at creation, the 10 s
// tolerance for indicators, the event's own ProcessId, own-image Event 7
// hashes, reverse-DNS names and fully qualified host ids.
import { describe, expect, it } from 'vitest';
import type { ConnectionEvent, DnsAnswer, ReaderItem } from '../../../src/model/records.js';
import { SysmonReader, type SysmonReaderOptions } from '../../../src/sources/replay/sysmon-reader.js';

const HOST = 'WS1.corp.example';
const CHILD = '{AAAA0000-1111-2222-3333-000000000001}';
const PARENT = '{AAAA0000-1111-2222-3333-000000000002}';
const SHA = 'ab'.repeat(32);
const T0 = Date.UTC(2024, 4, 1, 10, 0, 0);

/** Sysmon's UtcTime for T0 + ms. */
function utc(ms: number): string {
  return new Date(T0 + ms).toISOString().replace('T', ' ').replace('Z', '');
}

function nx(eventId: number, atMs: number, fields: Record<string, unknown>, hostname = HOST): Record<string, unknown> {
  return { SourceName: 'Microsoft-Windows-Sysmon', EventID: eventId, Hostname: hostname, UtcTime: utc(atMs), ...fields };
}

const create = (atMs = 0, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  nx(1, atMs, {
    ProcessGuid: CHILD,
    ProcessId: '900',
    Image: 'C:\\Program Files\\App\\app.exe',
    Hashes: `SHA256=${SHA}`,
    ParentProcessGuid: PARENT,
    ParentProcessId: '800',
    ParentImage: 'C:\\Program Files\\App\\launcher.exe',
    ...extra,
  });

const connect = (atMs: number, extra: Record<string, unknown> = {}, hostname = HOST): Record<string, unknown> =>
  nx(
    3,
    atMs,
    {
      ProcessGuid: CHILD,
      ProcessId: '900',
      Image: 'C:\\Program Files\\App\\app.exe',
      Protocol: 'tcp',
      Initiated: 'true',
      DestinationIp: '203.0.113.7',
      DestinationPort: '443',
      DestinationHostname: '-',
      ...extra,
    },
    hostname,
  );

const access = (atMs: number, sourceImage: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  nx(10, atMs, {
    SourceProcessGUID: '{BBBB0000-0000-0000-0000-000000000009}',
    SourceProcessId: '4242',
    SourceImage: sourceImage,
    TargetProcessGUID: CHILD,
    TargetProcessId: '900',
    GrantedAccess: '0x1fffff',
    ...extra,
  });

const remoteThread = (atMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  nx(8, atMs, {
    SourceProcessGuid: '{CCCC0000-0000-0000-0000-000000000007}',
    SourceProcessId: '3000',
    SourceImage: 'C:\\Program Files\\Internet Explorer\\iexplore.exe',
    TargetProcessGuid: CHILD,
    TargetProcessId: '900',
    TargetImage: '&lt;unknown process&gt;',
    ...extra,
  });

function run(events: Array<Record<string, unknown>>, opts: Partial<SysmonReaderOptions> = {}) {
  const reader = new SysmonReader(opts);
  const out: ReaderItem[] = [];
  events.forEach((e, i) => out.push(...reader.push(e, { file: 'mem', line: i + 1 })));
  out.push(...reader.flush());
  const connections = out.filter((i): i is ConnectionEvent => i.type === 'connection');
  return { out, connections, stats: reader.stats() };
}

/** The injection of the one connection read from these events. */
function injectionOf(
  events: Array<Record<string, unknown>>,
  opts: Partial<SysmonReaderOptions> = {},
): ConnectionEvent['process']['injection'] {
  const { connections } = run(events, opts);
  expect(connections).toHaveLength(1);
  return connections[0]!.process.injection;
}

const BROKERS = ['csrss.exe', 'lsass.exe', 'services.exe', 'wininit.exe', 'smss.exe', 'svchost.exe', 'wmiprvse.exe', 'conhost.exe'];

describe('Event 10 (ProcessAccess): routine access is not injection', () => {
  for (const broker of BROKERS) {
    it(`${broker} from System32 or SysWOW64 is routine; the same name in another folder counts`, () => {
      // WmiPrvSE.exe lives in System32\wbem: routine there too.
      const wbem = broker === 'wmiprvse.exe' ? ['C:\\Windows\\System32\\wbem', 'C:\\Windows\\SysWOW64\\wbem'] : [];
      for (const folder of ['C:\\Windows\\System32', 'c:\\windows\\SysWOW64', 'D:\\WINDOWS\\system32', ...wbem]) {
        expect(injectionOf([create(), access(60_000, `${folder}\\${broker}`), connect(61_000)]), folder).toEqual({
          injected: false,
          indicators: [],
        });
      }
      const lookAlikes = [`C:\\Users\\Public\\${broker}`, `C:\\Windows\\Temp\\${broker}`, `C:\\Windows\\System32\\Tasks\\${broker}`];
      // A path that climbs out of System32 is not in it.
      lookAlikes.push(`C:\\Windows\\System32\\..\\..\\Users\\Public\\${broker}`, `C:\\Windows\\System32\\wbem\\..\\..\\Temp\\${broker}`);
      for (const lookAlike of lookAlikes) {
        expect(injectionOf([create(), access(60_000, lookAlike), connect(61_000)]), lookAlike).toEqual({
          injected: true,
          indicators: [`sysmon-process-access:${broker}:0x1fffff`],
        });
      }
    });
  }

  it('lsass opening with 0x1478 (holds PROCESS_VM_WRITE) is routine from System32 only', () => {
    const lsass = (path: string) => access(60_000, path, { GrantedAccess: '0x1478' });
    expect(injectionOf([create(), lsass('C:\\Windows\\system32\\lsass.exe'), connect(61_000)]).injected).toBe(false);
    expect(injectionOf([create(), lsass('C:\\ProgramData\\lsass.exe'), connect(61_000)]).indicators).toEqual([
      'sysmon-process-access:lsass.exe:0x1478',
    ]);
  });

  it("Defender's MsMpEng.exe is routine from its platform folder only", () => {
    const platform = 'C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.2008.9-0\\MsMpEng.exe';
    expect(injectionOf([create(), access(60_000, platform), connect(61_000)]).injected).toBe(false);
    expect(injectionOf([create(), access(60_000, 'C:\\Program Files\\Windows Defender\\MsMpEng.exe'), connect(61_000)]).injected).toBe(
      false,
    );
    expect(
      injectionOf([create(), access(60_000, 'C:\\Users\\bob\\AppData\\Local\\Temp\\MsMpEng.exe'), connect(61_000)]).indicators,
    ).toEqual(['sysmon-process-access:MsMpEng.exe:0x1fffff']);
    // A platform folder named `..` is no platform folder.
    const climbing = 'C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\..\\MsMpEng.exe';
    expect(injectionOf([create(), access(60_000, climbing), connect(61_000)]).injected).toBe(true);
  });

  it('an access without PROCESS_CREATE_THREAD (0x2) or PROCESS_VM_WRITE (0x20) is no indicator; one with either is', () => {
    const from = 'C:\\Tools\\probe.exe';
    expect(injectionOf([create(), access(60_000, from, { GrantedAccess: '0x1410' }), connect(61_000)]).injected).toBe(false);
    expect(injectionOf([create(), access(60_000, from, { GrantedAccess: '0x2' }), connect(61_000)]).injected).toBe(true);
    expect(injectionOf([create(), access(60_000, from, { GrantedAccess: '0x20' }), connect(61_000)]).injected).toBe(true);
  });

  it('the list is configurable: an empty detect.processAccessIgnore counts the brokers too', () => {
    const csrss = access(60_000, 'C:\\Windows\\System32\\csrss.exe');
    expect(injectionOf([create(), csrss, connect(61_000)], { processAccessIgnore: [] }).indicators).toEqual([
      'sysmon-process-access:csrss.exe:0x1fffff',
    ]);
    // A bare name matches in any folder; a pattern with * one folder level.
    expect(
      injectionOf([create(), access(60_000, 'C:\\Tools\\probe.exe'), connect(61_000)], { processAccessIgnore: ['PROBE.EXE'] }).injected,
    ).toBe(false);
    const agent = access(60_000, 'C:\\WindowsAzure\\GuestAgent_2.7\\CollectGuestLogs.exe');
    expect(
      injectionOf([create(), agent, connect(61_000)], { processAccessIgnore: ['C:\\WindowsAzure\\*\\CollectGuestLogs.exe'] }).injected,
    ).toBe(false);
  });
});

describe('Event 10 from the target’s own parent', () => {
  const fromParent = (atMs: number, extra: Record<string, unknown> = {}) =>
    access(atMs, 'C:\\Program Files\\App\\launcher.exe', { SourceProcessGUID: PARENT, SourceProcessId: '800', ...extra });

  it('within 5 s of the target’s creation is routine, also when it is logged before the Event 1', () => {
    expect(injectionOf([create(), fromParent(3), connect(30_000)]).injected).toBe(false);
    expect(injectionOf([fromParent(-2), create(), connect(30_000)]).injected).toBe(false);
    expect(injectionOf([create(), fromParent(4_900), connect(30_000)]).injected).toBe(false);
  });

  it('later than 5 s after the creation counts', () => {
    expect(injectionOf([create(), fromParent(6_000), connect(30_000)]).indicators).toEqual(['sysmon-process-access:launcher.exe:0x1fffff']);
  });

  it('by pid when the log gives no GUIDs', () => {
    const noGuids = fromParent(3, { SourceProcessGUID: undefined });
    expect(injectionOf([create(), noGuids, connect(30_000)]).injected).toBe(false);
    const otherPid = fromParent(3, { SourceProcessGUID: undefined, SourceProcessId: '801' });
    expect(injectionOf([create(), otherPid, connect(30_000)]).injected).toBe(true);
  });

  it('another process at the creation counts, and so does the parent when the Event 1 is missing', () => {
    expect(injectionOf([create(), access(3, 'C:\\Tools\\probe.exe'), connect(30_000)]).injected).toBe(true);
    expect(injectionOf([fromParent(3), connect(30_000)]).injected).toBe(true);
  });
});

describe('Event 8 (CreateRemoteThread) and the 10 s tolerance', () => {
  it('counts an indicator stamped 9 s after the connection, not one stamped 11 s after', () => {
    expect(injectionOf([create(), connect(20_000), remoteThread(29_000)]).indicators).toEqual(['sysmon-create-remote-thread:iexplore.exe']);
    expect(injectionOf([create(), connect(20_000), remoteThread(31_000)]).injected).toBe(false);
  });

  it('even when events stamped later than the tolerance were logged before the Event 8', () => {
    // The collector forwarded a burst stamped 12-15 s after the connection first.
    const later = [12_000, 15_000].map((d) => nx(7, 20_000 + d, { ProcessGuid: '{eeee}', Image: 'C:\\x.exe', ImageLoaded: 'C:\\y.dll' }));
    expect(injectionOf([create(), connect(20_000), ...later, remoteThread(29_000)]).injected).toBe(true);
  });

  it('from the process itself is no indicator', () => {
    const self = remoteThread(25_000, { SourceProcessGuid: CHILD, SourceProcessId: '900' });
    expect(injectionOf([create(), self, connect(30_000)]).injected).toBe(false);
    const selfByPid = remoteThread(25_000, { SourceProcessGuid: undefined, TargetProcessGuid: CHILD, SourceProcessId: '900' });
    expect(injectionOf([create(), selfByPid, connect(30_000)]).injected).toBe(false);
  });

  it('an access from another process follows the same tolerance', () => {
    const probe = (atMs: number) => access(atMs, 'C:\\Tools\\probe.exe');
    expect(injectionOf([create(), connect(20_000), probe(30_000)]).injected).toBe(true);
    expect(injectionOf([create(), connect(20_000), probe(30_001)]).injected).toBe(false);
  });
});

describe("the process's identity", () => {
  it("NXLog: the event's own ProcessId, never NXLog's system ProcessID (Sysmon's service)", () => {
    const { connections } = run([connect(0, { ProcessID: 2804, ProcessId: '900', ThreadID: 3100, ExecutionProcessID: 2804 })]);
    expect(connections[0]?.process.pid).toBe(900);
  });

  it("NXLog with its ProcessID only: the event's ProcessId from Message", () => {
    const message =
      'Network connection detected:\r\nRuleName: -\r\nUtcTime: x\r\nProcessGuid: {aaaa}\r\nProcessId: 3632\r\nImage: C:\\x.exe\r\n';
    const { connections } = run([connect(0, { ProcessId: undefined, ProcessID: 2804, Message: message })]);
    expect(connections[0]?.process.pid).toBe(3632);
    // Event 10's ids from Message too: a process opening itself is still told apart.
    const selfMessage = 'Process accessed:\r\nSourceProcessId: 900\r\nTargetProcessId: 900\r\nGrantedAccess: 0x1fffff';
    const self = access(10, 'C:\\Tools\\probe.exe', {
      SourceProcessGUID: undefined,
      SourceProcessId: undefined,
      TargetProcessId: undefined,
      Message: selfMessage,
    });
    expect(injectionOf([create(), self, connect(30_000)]).injected).toBe(false);
  });

  it("Winlogbeat: event_data.ProcessId, never winlog.process.pid (the writer's), else message", () => {
    const wb = (eventData: Record<string, unknown>, message?: string) => ({
      '@timestamp': '2024-05-01T10:00:00.000Z',
      message,
      winlog: {
        event_id: 3,
        provider_name: 'Microsoft-Windows-Sysmon',
        computer_name: HOST,
        process: { pid: 2804, thread: { id: 3100 } },
        event_data: {
          UtcTime: utc(0),
          ProcessGuid: CHILD,
          Image: 'C:\\x.exe',
          Protocol: 'tcp',
          Initiated: 'true',
          DestinationIp: '203.0.113.7',
          DestinationPort: '443',
          ...eventData,
        },
      },
    });
    expect(run([wb({ ProcessId: '900' })]).connections[0]?.process.pid).toBe(900);
    expect(run([wb({}, 'Network connection detected:\nProcessId: 3632\nImage: C:\\x.exe')]).connections[0]?.process.pid).toBe(3632);
    expect(run([wb({})]).connections[0]?.process.pid).toBe(0);
  });

  it('the sha256 from the load of its own image when Event 1 is missing; not from another image', () => {
    const ownLoad = nx(7, -60_000, {
      ProcessGuid: CHILD,
      Image: 'C:\\Program Files\\App\\app.exe',
      ImageLoaded: 'c:\\program files\\app\\APP.EXE',
      Hashes: `SHA1=00,MD5=11,SHA256=${SHA.toUpperCase()},IMPHASH=22`,
      Signed: 'true',
      Signature: 'Contoso Ltd',
      SignatureStatus: 'Valid',
    });
    const dllLoad = nx(7, -59_000, {
      ProcessGuid: CHILD,
      Image: 'C:\\Program Files\\App\\app.exe',
      ImageLoaded: 'C:\\Windows\\System32\\ws2_32.dll',
      Hashes: `SHA256=${'cd'.repeat(32)}`,
    });
    const { connections, stats } = run([ownLoad, dllLoad, connect(0)]);
    expect(connections[0]?.process).toMatchObject({ sha256: SHA, signer: { status: 'valid', vendor: 'Contoso Ltd' } });
    expect(stats.hashedProcesses).toBe(1);
    expect(run([dllLoad, connect(0)]).connections[0]?.process.sha256).toBeNull();
    // The same file written with the NT prefix or forward slashes is the image itself.
    const ntPath = { ...ownLoad, ImageLoaded: '\\\\?\\C:/Program Files/App/app.exe' };
    expect(run([ntPath, connect(0)]).connections[0]?.process.sha256).toBe(SHA);
  });

  it('two hosts with the same short name in two domains are two hosts', () => {
    const shire = 'WORKSTATION5.theshire.local';
    const mordor = 'WORKSTATION5.mordor.local';
    const dns = nx(22, -500, { ProcessGuid: CHILD, QueryName: 'api.example.org', QueryResults: '203.0.113.7;' }, shire);
    const { out, connections } = run([create(0, { Hostname: shire }), dns, connect(1_000, {}, shire), connect(2_000, {}, mordor)]);
    expect(connections.map((c) => c.host)).toEqual([
      { id: shire, org: 'default', name: shire },
      { id: mordor, org: 'default', name: mordor },
    ]);
    // The shire host's process and DNS answer are its own: the mordor host's connection knows neither.
    expect(connections.map((c) => [c.process.sha256, c.remote.hostname])).toEqual([
      [SHA, 'api.example.org'],
      [null, null],
    ]);
    expect((out.find((i) => i.type === 'dns') as DnsAnswer).host.id).toBe(shire);
  });
});

describe('reverse-DNS names', () => {
  it('a connection named only by DestinationHostname is marked as a PTR name; a DNS answer is not', () => {
    const ptr = connect(0, { DestinationHostname: 'a23-47-31-208.deploy.static.akamaitechnologies.com' });
    const { connections, stats } = run([create(), ptr]);
    expect(connections[0]?.remote).toEqual({
      ip: '203.0.113.7',
      port: 443,
      hostname: 'a23-47-31-208.deploy.static.akamaitechnologies.com',
      reverseDns: true,
    });
    expect(stats.reverseDnsNames).toBe(1);
    const dns = nx(22, -500, { ProcessGuid: CHILD, QueryName: 'www.example.org', QueryResults: '::ffff:203.0.113.7;' });
    const named = run([create(), dns, ptr]).connections[0]!;
    expect(named.remote).toEqual({ ip: '203.0.113.7', port: 443, hostname: 'www.example.org' });
  });
});

describe('computer names', () => {
  it('a short one takes the one qualified name seen with it; two qualified names leave it its own host; case does not matter', () => {
    const ids = (names: string[]) =>
      run(names.map((n, i) => connect(i * 1_000, {}, n)))
        .connections.sort((a, b) => (a.origin?.line ?? 0) - (b.origin?.line ?? 0))
        .map((c) => c.host.id);
    expect(ids(['WS5.theshire.local', 'WS5', 'ws5'])).toEqual(['WS5.theshire.local', 'WS5.theshire.local', 'WS5.theshire.local']);
    // Before any qualified name, and once the short name is ambiguous, it is a host of its own.
    expect(ids(['WS5', 'WS5.theshire.local', 'WS5.mordor.local', 'WS5'])).toEqual(['WS5', 'WS5.theshire.local', 'WS5.mordor.local', 'WS5']);
    // Computer names are case-insensitive: a name is the host first written so, whatever its case.
    expect(ids(['WS5.theshire.local', 'ws5.THESHIRE.local', 'Ws5'])).toEqual([
      'WS5.theshire.local',
      'WS5.theshire.local',
      'WS5.theshire.local',
    ]);
    expect(ids(['ws7', 'WS7'])).toEqual(['ws7', 'ws7']);
  });
});

describe('rotated logs given newest first', () => {
  it("an older stretch of a host's log is joined in its own time order: its late-logged DNS answer and Event 8 count", () => {
    const HOUR = 3_600_000;
    const newer = [create(2 * HOUR, { ProcessGuid: PARENT, ParentProcessGuid: '{0}' }), connect(2 * HOUR + 1_000, { ProcessGuid: PARENT })];
    // The older file: the connection is logged before the DNS answer stamped before it and the CreateRemoteThread stamped 9 s after it.
    const dns = nx(22, 19_500, { ProcessGuid: CHILD, QueryName: 'update.example.org', QueryResults: '::ffff:203.0.113.7;' });
    const older = [create(0), connect(20_000), dns, remoteThread(29_000)];
    const { connections, stats } = run([...newer, ...older]);
    const old = connections.find((c) => c.timeMs === T0 + 20_000);
    expect(old?.remote.hostname).toBe('update.example.org');
    expect(old?.process.injection.indicators).toEqual(['sysmon-create-remote-thread:iexplore.exe']);
    expect(stats).toMatchObject({ rewinds: 1, lateEvents: 0 });
    // Read oldest first, the same facts.
    const inOrder = run([...older, ...newer]).connections.find((c) => c.timeMs === T0 + 20_000);
    expect(inOrder?.remote.hostname).toBe('update.example.org');
    expect(inOrder?.process.injection.injected).toBe(true);
  });
});
