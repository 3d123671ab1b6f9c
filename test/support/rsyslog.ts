// A real rsyslogd for tests: its own config in a temp folder, listening on
// loopback high ports (UDP, TCP and, when rsyslog-gnutls is installed, TLS),
// writing each message's RFC 5424 fields as a JSON line the test reads back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { TestCerts } from './certs.js';

export interface RsyslogLine {
  pri: string;
  facility: string;
  severity: string;
  protocolVersion: string;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sd: string;
  /** The structured data as mmpstrucdata parsed it (it lowercases parameter names), as JSON text; "" without SD. */
  sdparsed: string;
  msg: string;
  input: string;
}

const MODULE_DIRS = ['/usr/lib/x86_64-linux-gnu/rsyslog', '/usr/lib/aarch64-linux-gnu/rsyslog', '/usr/lib/rsyslog'];

/** Why rsyslog cannot be used here, or null when it can. */
export function rsyslogMissing(): string | null {
  const r = spawnSync('rsyslogd', ['-v'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return 'rsyslogd is not installed (apt-get install rsyslog)';
  return null;
}

export function gtlsAvailable(): boolean {
  return MODULE_DIRS.some((d) => existsSync(join(d, 'lmnsd_gtls.so')));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class Rsyslog {
  private proc: ChildProcess | null = null;
  udpPort = 0;
  tcpPort = 0;
  tlsPort = 0;
  readonly out: string;
  private stderr = '';

  constructor(
    private readonly dir: string,
    private readonly certs: TestCerts | null,
  ) {
    this.out = join(dir, 'messages.json');
  }

  /** Starts rsyslogd; a restart keeps the ports of the first start. */
  async start(): Promise<void> {
    if (this.tcpPort === 0) {
      this.udpPort = await freePort();
      this.tcpPort = await freePort();
      this.tlsPort = this.certs === null ? 0 : await freePort();
    }
    const tls =
      this.certs === null
        ? ''
        : `input(type="imtcp" name="tls" address="127.0.0.1" port="${this.tlsPort}" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")`;
    const globals =
      this.certs === null
        ? ''
        : ` defaultNetstreamDriverCAFile="${this.certs.ca}" defaultNetstreamDriverCertFile="${this.certs.serverCert}" defaultNetstreamDriverKeyFile="${this.certs.serverKey}"`;
    const conf = `
global(workDirectory="${this.dir}" maxMessageSize="64k"${globals})
module(load="imudp")
module(load="imtcp")
module(load="mmpstrucdata")
input(type="imudp" name="udp" address="127.0.0.1" port="${this.udpPort}")
input(type="imtcp" name="tcp" address="127.0.0.1" port="${this.tcpPort}")
${tls}
template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="protocolVersion" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appName" name="app-name" format="jsonf")
  property(outname="procId" name="procid" format="jsonf")
  property(outname="msgId" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="sdparsed" name="$!rfc5424-sd" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}
action(type="mmpstrucdata")
action(type="omfile" file="${this.out}" template="fields")
`;
    const confFile = join(this.dir, 'rsyslog.conf');
    writeFileSync(confFile, conf);
    this.proc = spawn('rsyslogd', ['-n', '-f', confFile, '-i', join(this.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString('utf8')));
    const ports = [this.tcpPort, ...(this.tlsPort > 0 ? [this.tlsPort] : [])];
    for (const port of ports) await this.waitForPort(port);
    await this.waitForUdp();
  }

  /** UDP gives no sign of life: send probes until one is written out. */
  private async waitForUdp(): Promise<void> {
    const sock = dgram.createSocket('udp4');
    const probe = Buffer.from(`<14>1 - - probe - probe - ${Date.now()}`);
    try {
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        sock.send(probe, this.udpPort, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 100));
        if (this.lines().some((l) => l.appName === 'probe' && l.msg.includes(probe.toString().slice(-13)))) return;
      }
      throw new Error(`rsyslogd did not log a UDP probe: ${this.stderr}`);
    } finally {
      sock.close();
    }
  }

  private async waitForPort(port: number): Promise<void> {
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      if (this.proc?.exitCode !== null) throw new Error(`rsyslogd exited: ${this.stderr}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`rsyslogd did not listen on ${port}: ${this.stderr}`);
  }

  lines(): RsyslogLine[] {
    if (!existsSync(this.out)) return [];
    return readFileSync(this.out, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as RsyslogLine);
  }

  get log(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p === null || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}
