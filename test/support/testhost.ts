// A test host in a network namespace, reached over a veth pair from the root
// namespace: a real DNS server (dnsmasq) that answers the test's names with the
// test host's addresses, and an HTTP service on the given ports (none when no
// ports are given: bench/daemon.ts makes its own connections). Programs under
// test resolve through it without touching the system's resolver: they run in a
// private mount namespace where a resolv.conf naming the test DNS server is
// bind-mounted over /etc/resolv.conf. The DNS answers cross the veth in the
// root namespace, where the daemon's packet socket sees them.
//
// Addresses: each test file takes its own /28 inside 203.0.113.0/24 or
// 198.51.100.0/24 (documentation ranges, external to the detector), so files
// running in parallel, and helper.e2e.test.ts (203.0.113.0/24), do not collide:
// the longer prefix wins in the routing table. 198.51.100.144/28 is the daemon
// benchmark's (bench/daemon.ts), which may run beside the tests.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { findProgram, sleep } from './env.js';

export interface TestHostOptions {
  /** Short tag (letters/digits, <= 4) for namespace and interface names. */
  tag: string;
  /** Root-namespace side of the veth, with its prefix, e.g. 203.0.113.129/28. */
  hostSide: string;
  /** Addresses of the test host (same subnet); the first serves DNS (give names the others). */
  addresses: string[];
  /** name -> address the DNS server answers (A records, TTL 300). */
  names: Record<string, string>;
  /** TCP ports served (HTTP) on every address; empty: no HTTP service. */
  ports: number[];
  /** Folder for resolv.conf. */
  dir: string;
}

export interface RunResult {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  startedMs: number;
  endedMs: number;
}

/** No proxy may send the test's traffic anywhere else. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/_proxy$/i.test(k)) delete env[k];
  return env;
}

// The service on the test host: answers "ok", or holds the request open for ?ms=N first.
const SERVER = `
const http = require('http');
const [addrs, ports] = [JSON.parse(process.argv[1]), JSON.parse(process.argv[2])];
for (const port of ports) {
  http.createServer((req, res) => {
    const m = /[?&]ms=(\\d+)/.exec(req.url || '');
    const ms = m ? Number(m[1]) : 0;
    setTimeout(() => res.end('ok\\n'), ms);
  }).listen(port, '0.0.0.0');
}
process.on('SIGTERM', () => process.exit(0));
`;

export class TestHost {
  readonly ns: string;
  readonly vethHost: string;
  readonly vethNs: string;
  readonly dnsIp: string;
  readonly resolvConf: string;
  private dnsmasq: ChildProcess | null = null;
  private server: ChildProcess | null = null;

  private constructor(readonly opts: TestHostOptions) {
    const id = `${opts.tag}${process.pid % 10000}`;
    this.ns = `rce2e${id}`;
    this.vethHost = `rch${id}`;
    this.vethNs = `rcn${id}`;
    this.dnsIp = opts.addresses[0] as string;
    this.resolvConf = join(opts.dir, 'resolv.conf');
  }

  /** Creates the namespace, the veth pair, the DNS server and the HTTP service (if any ports); waits until they answer. */
  static async start(opts: TestHostOptions): Promise<TestHost> {
    const h = new TestHost(opts);
    try {
      await h.setUp();
    } catch (err) {
      h.stop();
      throw err;
    }
    return h;
  }

  private ipns(...args: string[]): void {
    execFileSync('ip', ['netns', 'exec', this.ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private async setUp(): Promise<void> {
    const o = this.opts;
    const prefix = o.hostSide.split('/')[1] ?? '24';
    execFileSync('ip', ['netns', 'add', this.ns]);
    execFileSync('ip', ['link', 'add', this.vethHost, 'type', 'veth', 'peer', 'name', this.vethNs]);
    execFileSync('ip', ['link', 'set', this.vethNs, 'netns', this.ns]);
    execFileSync('ip', ['addr', 'add', o.hostSide, 'dev', this.vethHost]);
    execFileSync('ip', ['link', 'set', this.vethHost, 'up']);
    for (const a of o.addresses) this.ipns('ip', 'addr', 'add', `${a}/${prefix}`, 'dev', this.vethNs);
    this.ipns('ip', 'link', 'set', this.vethNs, 'up');
    this.ipns('ip', 'link', 'set', 'lo', 'up');

    const dnsmasq = findProgram(['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq']);
    if (dnsmasq === null) throw new Error('dnsmasq not found: apt-get install dnsmasq-base');
    const records = Object.entries(o.names).map(([name, ip]) => `--host-record=${name},${ip}`);
    this.dnsmasq = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns,
        dnsmasq,
        '--keep-in-foreground',
        '--port=53',
        `--listen-address=${this.dnsIp}`,
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        '--user=root',
        '--group=root',
        '--pid-file=',
        '--local-ttl=300',
        ...records,
      ],
      { stdio: 'ignore' },
    );
    if (o.ports.length > 0)
      this.server = spawn(
        'ip',
        ['netns', 'exec', this.ns, process.execPath, '-e', SERVER, JSON.stringify(o.addresses), JSON.stringify(o.ports)],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
    writeFileSync(this.resolvConf, `nameserver ${this.dnsIp}\noptions timeout:1 attempts:2\n`);

    // Ready when the DNS server answers over the veth and every port accepts.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const dnsOk = this.resolve(undefined, 3000);
      const portsOk = await Promise.all(o.ports.map((p) => canConnect(this.dnsIp, p)));
      if (dnsOk && portsOk.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`test host ${this.ns} not ready (dns ${dnsOk}, ports ${JSON.stringify(portsOk)})`);
      await sleep(100);
    }
  }

  /**
   * Resolves `name` (default: the first of `names`) through the test DNS server,
   * as a program under test would; true when the answer holds its address. The
   * answer crosses the veth, so a running daemon sees it.
   */
  resolve(name = Object.keys(this.opts.names)[0] as string, timeoutMs = 5000): boolean {
    const r = spawnSync(
      'unshare',
      ['-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec getent ahostsv4 "$1"', this.resolvConf, name],
      {
        encoding: 'utf8',
        timeout: timeoutMs,
      },
    );
    const ip = this.opts.names[name];
    return r.status === 0 && ip !== undefined && r.stdout.includes(ip);
  }

  /**
   * Runs `argv` with the test DNS server as its resolver (private mount
   * namespace; the pid is the program's own: sh execs it). `pre` is shell run
   * first in the same namespace (e.g. resolving a name with getent).
   */
  run(argv: string[], opts: { pre?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    const script = `mount --bind "$0" /etc/resolv.conf || exit 99; ${opts.pre ? `${opts.pre} || exit 98; ` : ''}exec "$@"`;
    return runProcess('unshare', ['-m', 'sh', '-c', script, this.resolvConf, ...argv], opts.timeoutMs ?? 20_000);
  }

  /** Same as run(), but returns at once with the child (for long-lived programs). */
  spawn(argv: string[], opts: { pre?: string } = {}): ChildProcess {
    const script = `mount --bind "$0" /etc/resolv.conf || exit 99; ${opts.pre ? `${opts.pre} || exit 98; ` : ''}exec "$@"`;
    return spawn('unshare', ['-m', 'sh', '-c', script, this.resolvConf, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  }

  stop(): void {
    this.dnsmasq?.kill('SIGTERM');
    this.server?.kill('SIGTERM');
    this.dnsmasq = null;
    this.server = null;
    spawnSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', this.vethHost], { stdio: 'ignore' });
  }
}

export function runProcess(cmd: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const startedMs = Date.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ pid: child.pid ?? -1, code, signal, stdout, stderr, startedMs, endedMs: Date.now() });
    });
  });
}

function canConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}
