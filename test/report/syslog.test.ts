// The syslog sink against a real rsyslogd (Debian's) on loopback: UDP, TCP with
// octet counting, and TLS through the gtls driver when rsyslog-gnutls is there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Alert, SeverityId } from '../../src/model/alert.js';
import { DEFAULT_REPORT, SINK_DEFAULTS, type SyslogSinkConfig } from '../../src/config/defaults.js';
import { Reporter } from '../../src/report/reporter.js';
import { SyslogSink } from '../../src/report/syslog-sink.js';
import { detection, eventually, health } from '../support/alerts.js';
import { makeCerts } from '../support/certs.js';
import { gtlsAvailable, Rsyslog, rsyslogMissing } from '../support/rsyslog.js';

const missing = rsyslogMissing();
if (missing !== null) console.log(`syslog tests skipped: ${missing}`);
const tls = missing === null && gtlsAvailable();
if (missing === null && !tls) console.log('syslog TLS test skipped: the gtls driver is missing (apt-get install rsyslog-gnutls)');

let dir: string;
let rs: Rsyslog;

beforeAll(async () => {
  if (missing !== null) return;
  dir = mkdtempSync(join(tmpdir(), 'rarecon-syslog-'));
  rs = new Rsyslog(dir, tls ? makeCerts(dir) : null);
  await rs.start();
});
afterAll(async () => {
  if (missing !== null) return;
  await rs.stop();
  rmSync(dir, { recursive: true, force: true });
});

function sink(name: string, transport: 'udp' | 'tcp' | 'tls'): SyslogSinkConfig {
  const port = transport === 'udp' ? rs.udpPort : transport === 'tcp' ? rs.tcpPort : rs.tlsPort;
  return {
    ...SINK_DEFAULTS.syslog,
    name,
    transport,
    host: '127.0.0.1',
    port,
    lingerMs: 0,
    // Generous: a TLS handshake waits its turn for CPU while the e2e tests run beside this file.
    timeoutMs: 10_000,
    caFile: transport === 'tls' ? join(dir, 'ca.pem') : null,
    // The PEN reserved for documentation (RFC 5612): an operator names their own.
    sdId: 'example@32473',
  };
}

// local0 (16): High -> crit 2, Medium -> err 3, Low -> warning 4, Informational -> info 6
const EXPECTED_SEVERITY: Record<SeverityId, number> = { 4: 2, 3: 3, 2: 4, 1: 6 };

function checkFields(alerts: Alert[], input: string): void {
  const lines = rs.lines().filter((l) => l.appName === 'rarecon' && l.input === input);
  for (const a of alerts) {
    const line = lines.find((l) => l.sd.includes(`uid="${a.uid}"`));
    expect(line, `${a.uid} over ${input}`).toBeDefined();
    const l = line!;
    expect(l.protocolVersion).toBe('1');
    expect(Number(l.facility)).toBe(16);
    expect(Number(l.severity)).toBe(EXPECTED_SEVERITY[a.severityId]);
    expect(Number(l.pri)).toBe(16 * 8 + EXPECTED_SEVERITY[a.severityId]);
    expect(new Date(l.timestamp).getTime()).toBe(a.firstSeenMs);
    expect(l.hostname).toBe(a.host.name ?? a.host.id);
    expect(l.procId).toBe(String(process.pid));
    expect(l.msgId).toBe(a.kind === 'health' ? 'health' : a.variation);
    expect(l.sd).toMatch(
      new RegExp(
        `^\\[origin software="rarecon" swVersion="[^"]+"\\]\\[example@32473 uid="${a.uid}" kind="${a.kind}" severity="${a.severity}" host="${a.host.id}"`,
      ),
    );
    // rsyslog's parse of the SD keeps every name as sent: all of them are lowercase.
    const sd = JSON.parse(l.sdparsed) as Record<string, Record<string, string>>;
    expect(Object.keys(sd)).toEqual(['origin', 'example@32473']);
    if (a.kind === 'detection') {
      expect(sd['example@32473']).toMatchObject({
        variation: a.variation,
        root_domain: a.connection.rootDomain,
        port: String(a.connection.port),
      });
    }
    const doc = JSON.parse(l.msg) as { class_uid: number; metadata: { uid: string } };
    expect(doc.class_uid).toBe(2004);
    expect(doc.metadata.uid).toBe(a.uid);
  }
}

describe.skipIf(missing !== null)('syslog to rsyslog', () => {
  it('delivers RFC 5424 messages over UDP, TCP and TLS that rsyslog parses field by field', async () => {
    const transports: Array<'udp' | 'tcp' | 'tls'> = tls ? ['udp', 'tcp', 'tls'] : ['udp', 'tcp'];
    const rep = Reporter.start(
      {
        ...DEFAULT_REPORT,
        outbox: { ...DEFAULT_REPORT.outbox, path: join(dir, 'outbox.db') },
        backoff: { initialMs: 20, maxMs: 200, maxRetryAfterMs: 1_000, maxAttempts: 0 },
        sinks: transports.map((t) => sink(t, t)),
      },
      { stateDir: dir },
    );
    const alerts: Alert[] = [
      detection(1, { severityId: 4, host: 'web-1' }),
      detection(2, { severityId: 3, host: 'web-1' }),
      detection(3, { severityId: 2, host: 'db-2' }),
      detection(4, { severityId: 1, host: 'db-2' }),
      health(5, 'db-2'),
      // A quote, a backslash and a bracket in a structured-data value must be escaped.
      detection(6, { uid: 'odd"uid\\with]chars' }),
    ];
    expect(rep.enqueueMany(alerts)).toMatchObject({ ok: true, stored: alerts.length });
    expect(await eventually(() => rep.stats().outbox.rows === 0, 30_000)).toBe(true);
    await rep.shutdown();
    const plain = alerts.slice(0, 5);
    const done = await eventually(
      () => transports.every((t) => rs.lines().filter((l) => l.appName === 'rarecon' && l.input === t).length >= alerts.length),
      30_000,
    );
    expect(done, rs.log).toBe(true);
    for (const t of transports) checkFields(plain, t);
    const odd = rs.lines().find((l) => l.input === 'tcp' && l.sd.includes('odd'));
    expect(odd?.sd).toContain('uid="odd\\"uid\\\\with\\]chars"');
  }, 120_000);

  it('warns that UDP is lossy, and about each alert over 2 KB (rsyslog still logs it whole on loopback)', async () => {
    const logged: Array<[string, string, Record<string, unknown> | undefined]> = [];
    const s = new SyslogSink(sink('udp-big', 'udp'), { log: (level, msg, fields) => void logged.push([level, msg, fields]) });
    expect(logged).toHaveLength(1);
    expect(logged[0]![0]).toBe('warn');
    expect(logged[0]![1]).toContain('sends over UDP');
    // An ordinary alert is already over 2 KB as OCSF JSON; the warning for the next one is folded into the first.
    const first = detection(90, { host: 'udp-1' });
    const big = detection(91, { host: 'udp-2', padBytes: 3000 });
    expect(await s.send([first, big], new AbortController().signal)).toEqual({ status: 'success' });
    await s.close();
    expect(logged).toHaveLength(2);
    expect(logged[1]![1]).toContain('larger than 2048 bytes');
    expect(logged[1]![2]).toMatchObject({ sink: 'udp-big', alert: first.uid });
    expect(Number(logged[1]![2]!.bytes)).toBeGreaterThan(2048);
    expect(await eventually(() => rs.lines().some((l) => l.sd.includes(`uid="${big.uid}"`)), 30_000)).toBe(true);
  });

  it('is retryable while rsyslog is down and reconnects when it is back', async () => {
    const s = new SyslogSink(sink('tcp', 'tcp'));
    const signal = new AbortController().signal;
    expect(await s.send([detection(10)], signal)).toEqual({ status: 'success' });
    await rs.stop();
    const down = await s.send([detection(11)], signal);
    expect(down.status).toBe('retryable');
    await rs.start();
    expect(await s.send([detection(12)], signal)).toEqual({ status: 'success' });
    expect(await eventually(() => rs.lines().some((l) => l.sd.includes(detection(12).uid)), 30_000)).toBe(true);
    await s.close();
    await s.close();
  }, 150_000);
});
