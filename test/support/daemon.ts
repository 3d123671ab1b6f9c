// Runs `rarecon run` as a user would (the built CLI, as root), with a temp
// state folder, config, alerts and record files, and reads back what a user
// sees: the alerts file, the record file, the log (JSON lines on stderr) and
// `rarecon status`.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, jsonLines, rarecon } from './cli.js';
import type { DaemonStatus } from '../../src/daemon/status.js';
import { EVENT_WAIT_MS, childPids, until } from './env.js';
import { unitSandbox } from './unit-file.js';

// Parsed JSON lines, read field by field in assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export interface DaemonOptions {
  /** Folder for state/, config.yaml, alerts.jsonl, record.jsonl, sink.jsonl. */
  dir: string;
  /** Baseline file (--baseline); absent = the daemon's sync section provides it (server or standalone). */
  baseline?: string;
  /** Merged over the test defaults (file sink, status every 200 ms, metrics on an ephemeral port). */
  config?: Json;
  record?: boolean;
  /** How long to wait for the "watching" log line. */
  startTimeoutMs?: number;
  /** A command the daemon runs under (a sandbox: setpriv, seccomp-exec ...), followed by node and its arguments. */
  under?: string[];
}

export interface AlertSeen {
  alert: Json;
  /** When this process first read it from the alerts file. */
  seenMs: number;
}

export const VERY_RARE = 'Globally uncommon and very rare root-domain port combination by a common process (sha256)';
export const INJECTED = 'Globally uncommon root-domain port combination by a common process (sha256) from an injected thread';

/** The fields of an OCSF alert the tests compare. */
export function alertKey(a: Json): { name: string; sha256: string | undefined; domain: string; port: number; hostname: string } {
  const ev = a.evidences?.[0] ?? {};
  return {
    name: a.finding_info?.title,
    sha256: ev.process?.file?.hashes?.[0]?.value,
    domain: ev.dst_endpoint?.domain,
    port: ev.dst_endpoint?.port,
    hostname: ev.dst_endpoint?.hostname,
  };
}

export class DaemonRun {
  readonly child: ChildProcess;
  readonly stateDir: string;
  readonly configPath: string;
  readonly alertsPath: string;
  readonly recordPath: string | null;
  readonly logs: Json[] = [];
  stderrText = '';
  stdoutText = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;
  private readonly seen = new Map<string, number>();
  private alertsRead = 0;

  private constructor(readonly opts: DaemonOptions) {
    const d = opts.dir;
    mkdirSync(d, { recursive: true });
    this.stateDir = join(d, 'state');
    this.configPath = join(d, 'config.yaml');
    this.alertsPath = join(d, 'alerts.jsonl');
    this.recordPath = opts.record === false ? null : join(d, 'record.jsonl');
    const config: Json = {
      statusIntervalMs: 200,
      // Daemons of test files running side by side would all want the default metrics port.
      metrics: { port: 0 },
      report: { sinks: [{ type: 'file', name: 'e2e', path: join(d, 'sink.jsonl'), fsync: false }] },
      ...opts.config,
    };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2) + '\n');
    const args = [
      CLI,
      'run',
      '--config',
      this.configPath,
      ...(opts.baseline === undefined ? [] : ['--baseline', opts.baseline]),
      '--state',
      this.stateDir,
      '--alerts',
      this.alertsPath,
      '--activation-days',
      '0',
    ];
    if (this.recordPath !== null) args.push('--record', this.recordPath);
    // RARECON_E2E_UNIT_SANDBOX=1 runs every daemon of the e2e tests under the unit's restrictions.
    const under = opts.under ?? (process.env['RARECON_E2E_UNIT_SANDBOX'] === '1' ? unitSandbox() : []);
    const [cmd, ...prefix] = [...under, process.execPath];
    this.child = spawn(cmd as string, [...prefix, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.child.stderr?.on('data', (b: Buffer) => {
      const text = b.toString('utf8');
      this.stderrText += text;
      appendFileSync(join(d, 'daemon.log'), text);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (l.trim() === '') continue;
        try {
          this.logs.push(JSON.parse(l) as Json);
        } catch {
          this.logs.push({ level: 'raw', message: l });
        }
      }
    });
    this.child.stdout?.on('data', (b: Buffer) => (this.stdoutText += b.toString('utf8')));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
    });
  }

  /** Starts `rarecon run` and returns at once, while it is still starting up. */
  static spawn(opts: DaemonOptions): DaemonRun {
    return new DaemonRun(opts);
  }

  static async start(opts: DaemonOptions): Promise<DaemonRun> {
    const d = new DaemonRun(opts);
    try {
      await until('the daemon to say it is watching', opts.startTimeoutMs ?? 120_000, () => {
        if (d.exit !== null) throw new Error(`rarecon run exited (${JSON.stringify(d.exit)}) before it started:\n${d.stderrText}`);
        return d.logs.some((l) => l.message === 'rarecon is watching outbound connections.') ? true : undefined;
      });
      // The first status file is written right after that line.
      await until('the first status file', EVENT_WAIT_MS, () => (d.statusFile() !== null ? true : undefined));
    } catch (err) {
      d.child.kill('SIGKILL');
      throw err;
    }
    return d;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Alerts written to --alerts so far, each stamped with when it was first read here. */
  alerts(): AlertSeen[] {
    if (!existsSync(this.alertsPath)) return [];
    const text = readFileSync(this.alertsPath, 'utf8');
    const now = Date.now();
    const end = text.lastIndexOf('\n') + 1;
    const out: AlertSeen[] = [];
    for (const line of text.slice(0, end).split('\n')) {
      if (line === '') continue;
      const a = JSON.parse(line) as Json;
      const uid = String(a.finding_info?.uid ?? line);
      if (!this.seen.has(uid)) this.seen.set(uid, now);
      out.push({ alert: a, seenMs: this.seen.get(uid) as number });
    }
    this.alertsRead = out.length;
    return out;
  }

  async waitForAlert(pred: (a: Json) => boolean, timeoutMs: number, everyMs = 10): Promise<AlertSeen> {
    return until(`an alert (${this.alertsRead} read so far)`, timeoutMs, () => this.alerts().find((s) => pred(s.alert)), everyMs);
  }

  /** Records of --record so far. */
  records(): Json[] {
    if (this.recordPath === null || !existsSync(this.recordPath)) return [];
    const text = readFileSync(this.recordPath, 'utf8');
    return jsonLines(text.slice(0, text.lastIndexOf('\n') + 1));
  }

  async waitForRecord(pred: (r: Json) => boolean, timeoutMs: number): Promise<Json> {
    return until('a record', timeoutMs, () => this.records().find(pred), 50);
  }

  async waitForLog(pred: (l: Json) => boolean, timeoutMs: number): Promise<Json> {
    return until('a log line', timeoutMs, () => this.logs.find(pred), 20);
  }

  /** The status file as the daemon last wrote it (no CLI). */
  statusFile(): DaemonStatus | null {
    try {
      return JSON.parse(readFileSync(join(this.stateDir, 'status.json'), 'utf8')) as DaemonStatus;
    } catch {
      return null;
    }
  }

  /** `rarecon status --state DIR [--json]` as a user runs it. */
  async status(): Promise<{ text: string; json: DaemonStatus }> {
    const [t, j] = await Promise.all([
      rarecon(['status', '--state', this.stateDir]),
      rarecon(['status', '--state', this.stateDir, '--json']),
    ]);
    if (t.code !== 0 || j.code !== 0) throw new Error(`rarecon status failed: ${t.stdout}${t.stderr}${j.stderr}`);
    return { text: t.stdout, json: JSON.parse(j.stdout) as DaemonStatus };
  }

  /** A status written after `afterMs` satisfying `pred`. */
  async waitForStatus(pred: (s: DaemonStatus) => boolean, timeoutMs: number, afterMs = 0): Promise<DaemonStatus> {
    return until(
      'a status update',
      timeoutMs,
      () => {
        const s = this.statusFile();
        return s !== null && s.updatedMs > afterMs && pred(s) ? s : undefined;
      },
      50,
    );
  }

  /** Pids of the daemon's children named `comm` (e.g. rarecon-events). */
  childPids(comm: string): number[] {
    return childPids(this.pid, comm);
  }

  /** Sends `signal` and waits for the exit (SIGKILL after timeoutMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exit === null) {
      this.child.kill(signal);
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.exit as { code: number | null; signal: NodeJS.Signals | null };
  }

  async waitExit(): Promise<void> {
    await this.exited;
  }
}
