// Runs the native helper (native-events/build/rarecon-events) and turns its
// stdout into decoded wire records, as an async iterable. The helper is
// restarted with exponential backoff (and jitter) when it dies; it is not
// restarted when it says it cannot run here (exit status 1 or 2), which ends
// the iteration with a HelperUnavailableError. Back-pressure: when the
// consumer falls behind, the helper's stdout is paused, the pipe fills, the
// helper blocks and the kernel ring buffer drops and counts (reported in LOSS
// records and in stats().droppedTotal) — memory here stays bounded.

import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { FrameDecoder, WIRE, type DecodeProblem, type RawHello, type RawRecord } from './wire.js';

export const HELPER_BINARY_NAME = 'rarecon-events';
export const KERNEL_BTF_PATH = '/sys/kernel/btf/vmlinux';

/** Exit statuses of the helper (native-events/src/main.c). */
export const HelperExit = Object.freeze({ ok: 0, usage: 1, cannotRun: 2, runtime: 3 });

export interface HelperOptions {
  /** Default: defaultHelperPath(). */
  binaryPath?: string;
  /** Capture DNS responses (default true). */
  dns?: boolean;
  /** Also DNS over TCP, single-segment responses (default true). */
  dnsTcp?: boolean;
  /** Report a UDP flow at most once per this many ms per process (default 60000; 0 = every datagram). */
  udpDedupMs?: number;
  /** User stack frames per CONNECT, 0..32 (default 32). */
  stackFrames?: number;
  /** Kernel ring buffer size in KiB, a power of two (default: the helper's, 4096). */
  ringbufKb?: number;
  /** LOSS record period (default: the helper's, 1000). */
  statsIntervalMs?: number;
  restartInitialDelayMs?: number;
  restartMaxDelayMs?: number;
  /** A run that lasted this long resets the backoff (default 60000). */
  healthyAfterMs?: number;
  /** Records buffered for the consumer before the helper's stdout is paused (default 10000). */
  maxQueuedRecords?: number;
  /** How long shutdown() waits after SIGTERM before SIGKILL (default 5000). */
  stopTimeoutMs?: number;
  /** Diagnostics: the helper's stderr lines and this class's own events. */
  onLog?: (entry: HelperLogEntry) => void;
  /** For tests: replaces child_process.spawn. */
  spawn?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
}

export type HelperLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface HelperLogEntry {
  level: HelperLogLevel;
  message: string;
  /** Set for lines the helper wrote itself. */
  helperPid?: number;
}

export interface HelperStats {
  /** Records decoded and handed to the queue. */
  receivedTotal: number;
  /** Events lost before they reached us: kernel ring buffer full + DNS packets the socket dropped. */
  droppedTotal: number;
  decodeErrorsTotal: number;
  unknownRecordsTotal: number;
  /** Frames missing by sequence number (should stay 0 on a pipe). */
  seqGapsTotal: number;
  restartsTotal: number;
  kernelDropsTotal: number;
  dnsSocketDropsTotal: number;
  udpDedupedTotal: number;
  running: boolean;
  helperPid: number | null;
  /** HELLO of the current (or last) helper run. */
  hello: RawHello | null;
  lastExit: { code: number | null; signal: string | null; atMs: number } | null;
  /** Last error line from the helper, or why it could not be started. */
  lastError: string | null;
}

export type ProbeFailureCode = 'not-linux' | 'binary-missing' | 'not-root' | 'no-btf' | 'check-failed';

export type ProbeResult = { ok: true; binaryPath: string } | { ok: false; code: ProbeFailureCode; reason: string };

/** The helper cannot run on this host (or spoke another protocol): restarting would not help. */
export class HelperUnavailableError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = 'HelperUnavailableError';
  }
}

/** Where the helper binary is looked for, in order. */
export function helperPathCandidates(): string[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const list: string[] = [];
  const fromEnv = process.env['RARECON_EVENTS_HELPER'];
  if (fromEnv) list.push(fromEnv);
  // src/sources/ebpf -> repo root; dist/src/sources/ebpf -> repo root.
  list.push(path.resolve(here, '../../../native-events/build', HELPER_BINARY_NAME));
  list.push(path.resolve(here, '../../../../native-events/build', HELPER_BINARY_NAME));
  list.push(path.join('/usr/lib/rarecon', HELPER_BINARY_NAME));
  return list;
}

/** The first candidate that exists, else the source-tree location (so messages say where to build it). */
export function defaultHelperPath(): string {
  const candidates = helperPathCandidates();
  for (const c of candidates) if (existsSync(c)) return c;
  const fromEnv = process.env['RARECON_EVENTS_HELPER'];
  return fromEnv ? fromEnv : (candidates[0] as string);
}

const STDERR_LINE = /^rarecon-events: (debug|info|warn|error): (.*)$/;

/** Build the helper's argument list from options. */
export function helperArgs(o: HelperOptions): string[] {
  const args: string[] = [];
  if (o.dns === false) args.push('--no-dns');
  if (o.dnsTcp === false) args.push('--no-dns-tcp');
  if (o.udpDedupMs !== undefined) args.push('--udp-dedup-ms', String(o.udpDedupMs));
  if (o.stackFrames !== undefined) args.push('--stack-frames', String(o.stackFrames));
  if (o.ringbufKb !== undefined) args.push('--ringbuf-kb', String(o.ringbufKb));
  if (o.statsIntervalMs !== undefined) args.push('--stats-interval-ms', String(o.statsIntervalMs));
  return args;
}

async function hasBpfPrivilege(): Promise<boolean> {
  if (process.geteuid?.() === 0) return true;
  try {
    const status = await readFile('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    if (!m?.[1]) return false;
    const caps = BigInt(`0x${m[1]}`);
    const has = (bit: number): boolean => ((caps >> BigInt(bit)) & 1n) === 1n;
    return has(21) /* CAP_SYS_ADMIN */ || (has(39) /* CAP_BPF */ && has(38)); /* CAP_PERFMON */
  } catch {
    return false;
  }
}

export class HelperProcess {
  private readonly opts: HelperOptions;
  private readonly binaryPath: string;
  private readonly spawnFn: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

  private child: ChildProcess | null = null;
  private childStartedAtMs = 0;
  private decoder: FrameDecoder;
  private queue: RawRecord[] = [];
  private queueHead = 0;
  private paused = false;
  private wake: (() => void) | null = null;
  private consuming = false;
  private started = false;
  private stopping = false;
  private stopped = false;
  private fatal: HelperUnavailableError | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private backoffStep = 0;
  private shutdownPromise: Promise<void> | null = null;
  private childClosed: Promise<void> = Promise.resolve();

  // Counters. Decoder counters of finished runs are folded into `past*`.
  private received = 0;
  private pastDecodeErrors = 0;
  private pastUnknown = 0;
  private pastSeqGaps = 0;
  private restarts = 0;
  private pastKernelDrops = 0;
  private pastDnsDrops = 0;
  private pastDeduped = 0;
  private runKernelDrops = 0;
  private runDnsDrops = 0;
  private runDeduped = 0;
  private hello: RawHello | null = null;
  private lastExit: HelperStats['lastExit'] = null;
  private lastError: string | null = null;

  constructor(options: HelperOptions = {}) {
    this.opts = options;
    this.binaryPath = options.binaryPath ?? defaultHelperPath();
    this.spawnFn = options.spawn ?? ((c, a, o) => nodeSpawn(c, a, o));
    this.decoder = this.newDecoder();
  }

  get path(): string {
    return this.binaryPath;
  }

  /**
   * Says whether the helper can run here, and if not, why. `deep` also runs
   * `rarecon-events --check` (loads and attaches the programs, ~1 s).
   */
  async probe(options: { deep?: boolean; timeoutMs?: number } = {}): Promise<ProbeResult> {
    if (process.platform !== 'linux') {
      return { ok: false, code: 'not-linux', reason: `the eBPF source needs Linux (this is ${process.platform})` };
    }
    try {
      await access(this.binaryPath, fsConstants.X_OK);
    } catch {
      return {
        ok: false,
        code: 'binary-missing',
        reason: `helper binary not found or not executable at ${this.binaryPath} (build it with: make -C native-events)`,
      };
    }
    if (!(await hasBpfPrivilege())) {
      return {
        ok: false,
        code: 'not-root',
        reason: 'not permitted to load eBPF programs: run as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_RAW',
      };
    }
    try {
      await access(KERNEL_BTF_PATH, fsConstants.R_OK);
    } catch {
      return {
        ok: false,
        code: 'no-btf',
        reason: `kernel BTF missing at ${KERNEL_BTF_PATH}: the kernel needs CONFIG_DEBUG_INFO_BTF=y`,
      };
    }
    if (options.deep) {
      const r = await this.runCheck(options.timeoutMs ?? 30_000);
      if (!r.ok) return { ok: false, code: 'check-failed', reason: r.reason };
    }
    return { ok: true, binaryPath: this.binaryPath };
  }

  /**
   * Starts the helper now, before anyone reads its records: they wait in the queue (up to
   * maxQueuedRecords, then the pipe and the ring buffer hold the rest). Safe twice; records() calls it.
   */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.startChild();
  }

  /**
   * Decoded records, HELLO and LOSS included, until shutdown() or the signal.
   * Starts the helper on first use. Ends by throwing HelperUnavailableError
   * when the helper cannot run. Breaking out of the loop stops the helper.
   */
  async *records(signal?: AbortSignal): AsyncGenerator<RawRecord, void, undefined> {
    if (this.consuming) throw new Error('HelperProcess.records() is already being consumed');
    this.consuming = true;
    const onAbort = (): void => void this.shutdown();
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      this.start();
      for (;;) {
        if (this.queueHead < this.queue.length) {
          const rec = this.queue[this.queueHead] as RawRecord;
          this.queue[this.queueHead] = undefined as unknown as RawRecord;
          this.queueHead++;
          if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
            this.queue = this.queue.slice(this.queueHead);
            this.queueHead = 0;
          }
          this.maybeResume();
          yield rec;
          continue;
        }
        if (this.fatal) throw this.fatal;
        if (this.stopped) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.consuming = false;
      if (!this.stopped) await this.shutdown();
    }
  }

  stats(): HelperStats {
    const d = this.decoder.stats();
    return {
      receivedTotal: this.received,
      droppedTotal: this.pastKernelDrops + this.runKernelDrops + this.pastDnsDrops + this.runDnsDrops,
      decodeErrorsTotal: this.pastDecodeErrors + d.decodeErrorsTotal,
      unknownRecordsTotal: this.pastUnknown + d.unknownTypesTotal,
      seqGapsTotal: this.pastSeqGaps + d.seqGapsTotal,
      restartsTotal: this.restarts,
      kernelDropsTotal: this.pastKernelDrops + this.runKernelDrops,
      dnsSocketDropsTotal: this.pastDnsDrops + this.runDnsDrops,
      udpDedupedTotal: this.pastDeduped + this.runDeduped,
      running: this.child !== null,
      helperPid: this.child?.pid ?? null,
      hello: this.hello,
      lastExit: this.lastExit,
      lastError: this.lastError,
    };
  }

  /** Stops the helper (SIGTERM, then SIGKILL after stopTimeoutMs) and ends records(). Safe to call twice. */
  shutdown(): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    const child = this.child;
    this.shutdownPromise = (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timeoutMs = this.opts.stopTimeoutMs ?? 5000;
        let timer: NodeJS.Timeout | undefined;
        const killed = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            this.log('warn', `helper did not stop within ${timeoutMs} ms of SIGTERM: killing it`);
            child.kill('SIGKILL');
            resolve();
          }, timeoutMs);
        });
        await Promise.race([this.childClosed, killed]);
        await this.childClosed;
        clearTimeout(timer);
      } else {
        await this.childClosed;
      }
      this.stopped = true;
      this.wakeConsumer();
    })();
    return this.shutdownPromise;
  }

  // ---- internals ----------------------------------------------------------------

  private newDecoder(): FrameDecoder {
    return new FrameDecoder((p: DecodeProblem) =>
      this.log('warn', `undecodable helper output at byte ${p.offset}: ${p.code}: ${p.message}`),
    );
  }

  private startChild(): void {
    const args = helperArgs(this.opts);
    let child: ChildProcess;
    try {
      child = this.spawnFn(this.binaryPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.fail(`cannot start the helper ${this.binaryPath}: ${(err as Error).message}`, null);
      return;
    }
    this.child = child;
    this.childStartedAtMs = Date.now();
    this.runKernelDrops = 0;
    this.runDnsDrops = 0;
    this.runDeduped = 0;
    let closed!: () => void;
    this.childClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });

    let done = false;
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) {
        this.log('warn', `helper process error: ${err.message}`);
        return;
      }
      // The binary could not be started at all (ENOENT, EACCES): no 'close' follows reliably.
      if (done) return;
      done = true;
      if (this.child === child) this.child = null;
      this.fail(`cannot start the helper ${this.binaryPath}: ${err.message}`, null);
      closed();
    });
    child.stdout?.on('data', (chunk: Buffer) => this.onData(chunk));
    if (child.stderr) {
      const rl = createInterface({ input: child.stderr, crlfDelay: Infinity });
      rl.on('line', (line) => this.onStderr(line, child.pid));
    }
    child.on('close', (code, sig) => {
      if (done) return;
      done = true;
      this.onClose(child, code, sig);
      closed();
    });
  }

  private onData(chunk: Buffer): void {
    for (const rec of this.decoder.push(chunk)) {
      if (rec.type === 'hello') {
        this.hello = rec;
        if (rec.protocolVersion !== WIRE.protocolVersion) {
          this.fail(`helper speaks protocol ${rec.protocolVersion}, this daemon ${WIRE.protocolVersion}: rebuild native-events`, null);
          this.child?.kill('SIGTERM');
          return;
        }
      } else if (rec.type === 'loss') {
        this.runKernelDrops = rec.ringbufDrops;
        this.runDnsDrops = rec.dnsSocketDrops;
        this.runDeduped = rec.udpDeduped;
      }
      this.received++;
      this.queue.push(rec);
    }
    const queued = this.queue.length - this.queueHead;
    const max = this.opts.maxQueuedRecords ?? 10_000;
    if (queued >= max && !this.paused && this.child?.stdout) {
      this.paused = true;
      this.child.stdout.pause();
    }
    this.wakeConsumer();
  }

  private maybeResume(): void {
    if (!this.paused) return;
    const queued = this.queue.length - this.queueHead;
    if (queued <= (this.opts.maxQueuedRecords ?? 10_000) / 2) {
      this.paused = false;
      this.child?.stdout?.resume();
    }
  }

  private onStderr(line: string, pid: number | undefined): void {
    const m = STDERR_LINE.exec(line);
    const level = (m?.[1] as HelperLogLevel | undefined) ?? 'warn';
    const message = m?.[2] ?? line;
    if (level === 'error') this.lastError = message;
    this.log(level, message, pid);
  }

  private onClose(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = null;
    this.paused = false;
    this.decoder.end();
    const d = this.decoder.stats();
    this.pastDecodeErrors += d.decodeErrorsTotal;
    this.pastUnknown += d.unknownTypesTotal;
    this.pastSeqGaps += d.seqGapsTotal;
    this.decoder = this.newDecoder();
    this.pastKernelDrops += this.runKernelDrops;
    this.pastDnsDrops += this.runDnsDrops;
    this.pastDeduped += this.runDeduped;
    this.runKernelDrops = 0;
    this.runDnsDrops = 0;
    this.runDeduped = 0;
    this.lastExit = { code, signal, atMs: Date.now() };

    if (this.stopping || this.fatal) {
      this.wakeConsumer();
      return;
    }
    if (code === HelperExit.cannotRun || code === HelperExit.usage) {
      this.fail(this.lastError ?? `helper exited with status ${code}`, code);
      return;
    }
    const ranMs = Date.now() - this.childStartedAtMs;
    if (ranMs >= (this.opts.healthyAfterMs ?? 60_000)) this.backoffStep = 0;
    const initial = this.opts.restartInitialDelayMs ?? 500;
    const max = this.opts.restartMaxDelayMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** this.backoffStep);
    const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.backoffStep = Math.min(this.backoffStep + 1, 30);
    this.log('warn', `helper exited (${signal ? `signal ${signal}` : `status ${code}`}) after ${ranMs} ms: restarting in ${delayMs} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts++;
      this.startChild();
    }, delayMs);
  }

  private fail(message: string, exitCode: number | null): void {
    this.lastError = message;
    this.fatal ??= new HelperUnavailableError(message, exitCode);
    this.log('error', message);
    this.wakeConsumer();
  }

  private wakeConsumer(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private log(level: HelperLogLevel, message: string, helperPid?: number): void {
    if (!this.opts.onLog) return;
    this.opts.onLog(helperPid === undefined ? { level, message } : { level, message, helperPid });
  }

  private runCheck(timeoutMs: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = this.spawnFn(this.binaryPath, ['--check', ...helperArgs(this.opts)], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        resolve({ ok: false, reason: `cannot start ${this.binaryPath}: ${(err as Error).message}` });
        return;
      }
      let lastError = '';
      let lastLine = '';
      if (child.stderr) {
        createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => {
          const m = STDERR_LINE.exec(line);
          lastLine = m?.[2] ?? line;
          if (m?.[1] === 'error') lastError = m[2] ?? line;
        });
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ ok: false, reason: `cannot start ${this.binaryPath}: ${err.message}` });
      });
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        if (code === 0) resolve({ ok: true });
        else
          resolve({
            ok: false,
            reason: lastError || lastLine || `rarecon-events --check ended with ${sig ? `signal ${sig}` : `status ${code}`}`,
          });
      });
    });
  }
}
