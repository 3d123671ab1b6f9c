// Who a pid is: command line, user, parent, start time and image path, read
// from /proc. Also the small /proc helpers the other Linux enrichers share
// (stat parsing, errno -> error code, deadlines), so they read /proc one way.
import { close, closeSync, open, openSync, read, readSync } from 'node:fs';
import { readFile, readlink, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import type { ParentInfo } from '../model/records.js';
import { BoundedCache, type CacheStats } from './bounded-cache.js';

export type ProcErrorCode = 'no-such-process' | 'permission-denied' | 'timeout' | 'read-failed';

/** Maps a failed /proc or file system call to the code an enricher reports. */
export function procErrorCode(err: unknown): ProcErrorCode {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT' || code === 'ESRCH') return 'no-such-process';
  if (code === 'EACCES' || code === 'EPERM') return 'permission-denied';
  if (code === 'ABORT_ERR' || (err as Error | null)?.name === 'AbortError' || (err as Error | null)?.name === 'TimeoutError')
    return 'timeout';
  return 'read-failed';
}

// Deadlines due in the same slot share one signal, per parent signal.
const sharedDeadlines = new Map<string, AbortSignal>();
const parentIds = new WeakMap<AbortSignal, number>();
let nextParentId = 1;

/**
 * An AbortSignal that fires after `timeoutMs` (up to 5% or 50 ms later) or
 * when `signal` does. Lookups due in the same slot share one signal: a timer,
 * a combined signal and the DOMException each fired timer makes cost more
 * than the /proc read they guard when made per connection.
 */
export function deadline(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  if (signal?.aborted === true) return signal;
  const slotMs = Math.max(1, Math.min(50, Math.floor(timeoutMs / 20)));
  const now = Date.now();
  const due = Math.ceil((now + timeoutMs) / slotMs) * slotMs;
  let parent = 0;
  if (signal !== undefined) {
    parent = parentIds.get(signal) ?? nextParentId++;
    parentIds.set(signal, parent);
  }
  const key = `${parent}:${slotMs}:${due}`;
  const hit = sharedDeadlines.get(key);
  if (hit !== undefined && !hit.aborted) return hit;
  const t = AbortSignal.timeout(due - now);
  const shared = signal === undefined ? t : AbortSignal.any([t, signal]);
  // Many lookups wait on one shared signal at once; that is by design, not a leak.
  setMaxListeners(0, shared);
  sharedDeadlines.set(key, shared);
  shared.addEventListener('abort', () => sharedDeadlines.delete(key), { once: true });
  return shared;
}

export const ABORTED: unique symbol = Symbol('aborted');

/**
 * Settles with `work`, or with ABORTED as soon as `signal` fires: a read that
 * hangs (FUSE, NFS) must not hold the event. `work` keeps running and is
 * expected to notice the signal itself and release what it holds.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.resolve(ABORTED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Reads a /proc file. procfs reports size 0, so `fs.promises.readFile` goes
 * round the thread pool many times; one open, reads until 0 and a close we do
 * not wait for take a third of its time (measured ~170 us against ~570 us).
 */
export function readProc(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err !== null) return reject(err);
      const chunks: Buffer[] = [];
      let total = 0;
      const next = (size: number): void => {
        const buf = Buffer.allocUnsafe(size);
        read(fd, buf, 0, size, null, (e, n) => {
          if (e !== null) {
            close(fd, () => undefined);
            return reject(e);
          }
          if (n > 0) {
            chunks.push(buf.subarray(0, n));
            total += n;
            // Only a read of 0 means the end: some /proc files return less than asked for before it.
            return next(n === size ? Math.min(size * 4, 1 << 20) : size);
          }
          close(fd, () => undefined);
          resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
        });
      };
      next(16_384);
    });
  });
}

const syncBuf = Buffer.allocUnsafe(16_384);

/**
 * Reads a small /proc file (status, stat) synchronously, as latin1 text. For
 * files the kernel renders from counters without taking the process's memory
 * lock, a blocking read costs a few microseconds, far less than the four
 * thread-pool round trips of readProc; never use it for maps, mem, environ or
 * cmdline, which can wait on a busy process.
 */
export function readSmallProcSync(path: string): string {
  const fd = openSync(path, 'r');
  try {
    let text = '';
    for (;;) {
      const n = readSync(fd, syncBuf, 0, syncBuf.length, null);
      if (n === 0) return text;
      text += syncBuf.toString('latin1', 0, n);
    }
  } finally {
    closeSync(fd);
  }
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Field 22: clock ticks after boot. Stable for the life of the process. */
  startTicks: number;
}

/** Parses /proc/<pid>/stat. The comm may hold spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(ppid) || !Number.isFinite(startTicks)) return null;
  return { pid, comm: text.slice(open + 1, close), state, ppid, startTicks };
}

export async function readStat(pid: number, procRoot = '/proc'): Promise<ProcStat | { error: ProcErrorCode }> {
  try {
    const parsed = parseStat((await readProc(`${procRoot}/${pid}/stat`)).toString('latin1'));
    return parsed ?? { error: 'read-failed' };
  } catch (err) {
    return { error: procErrorCode(err) };
  }
}

// USER_HZ is 100 on every architecture Node runs on; it is not HZ.
const USER_HZ = 100;

const bootTimes = new Map<string, Promise<number | null>>();

/**
 * Boot time in epoch ms from `btime` in /proc/stat. Read once per procfs: it
 * has whole-second precision but never jitters, so the same process always
 * gets the same start time (uptime-based arithmetic would drift between reads).
 */
export function bootTimeMs(procRoot = '/proc'): Promise<number | null> {
  let p = bootTimes.get(procRoot);
  if (p === undefined) {
    p = readProc(`${procRoot}/stat`).then(
      (buf) => {
        const text = buf.toString('latin1');
        const m = /^btime (\d+)$/m.exec(text);
        return m?.[1] === undefined ? null : Number(m[1]) * 1000;
      },
      () => null,
    );
    bootTimes.set(procRoot, p);
  }
  return p;
}

export function startTimeMsOf(startTicks: number, bootMs: number): number {
  return bootMs + Math.round((startTicks * 1000) / USER_HZ);
}

const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Joins NUL-separated argv for an analyst, single-quoting what a shell would split. */
export function formatCmdline(raw: Buffer, maxChars: number): string | null {
  let end = raw.length;
  while (end > 0 && raw[end - 1] === 0) end--;
  if (end === 0) return null;
  const args = raw.subarray(0, end).toString('utf8').split('\0');
  // One argument with spaces and no NULs is a rewritten title (setproctitle): keep it as is.
  const text =
    args.length === 1 ? (args[0] ?? '') : args.map((a) => (a !== '' && SHELL_SAFE.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/** uid -> name from a passwd file, reloaded when the file changes, with `getent` for NSS users. */
export class UserNames {
  private names = new Map<number, string>();
  private loadedMtimeMs = -1;
  private checkedAtMs = -Infinity;
  private readonly nss = new BoundedCache<number, string | null>({ maxEntries: 1024, ttlMs: 600_000 });

  constructor(
    private readonly passwdPath = '/etc/passwd',
    private readonly recheckMs = 5_000,
    private readonly getentCommand: string | null = 'getent',
  ) {}

  async nameOf(uid: number): Promise<string | null> {
    await this.refresh();
    const local = this.names.get(uid);
    if (local !== undefined) return local;
    if (this.getentCommand === null) return null;
    const cached = this.nss.get(uid);
    if (cached !== undefined) return cached;
    const fromNss = await new Promise<string | null>((resolve) => {
      execFile(this.getentCommand ?? 'getent', ['passwd', String(uid)], { timeout: 1_000 }, (err, stdout) => {
        resolve(err === null ? (stdout.split(':')[0] ?? '') || null : null);
      });
    });
    this.nss.set(uid, fromNss);
    return fromNss;
  }

  private async refresh(): Promise<void> {
    const now = Date.now();
    if (now - this.checkedAtMs < this.recheckMs) return;
    this.checkedAtMs = now;
    try {
      const st = await stat(this.passwdPath);
      if (st.mtimeMs === this.loadedMtimeMs) return;
      const text = await readFile(this.passwdPath, 'utf8');
      const names = new Map<number, string>();
      for (const line of text.split('\n')) {
        const [name, , uidText] = line.split(':');
        const uid = Number(uidText);
        // The first entry wins, as getpwuid does.
        if (name !== undefined && name !== '' && uidText !== '' && Number.isInteger(uid) && !names.has(uid)) names.set(uid, name);
      }
      this.names = names;
      this.loadedMtimeMs = st.mtimeMs;
    } catch {
      // Keep the last good table; an unreadable passwd file leaves names to NSS.
    }
  }
}

export interface ProcessDetails {
  pid: number;
  /** Field 22 of stat; with the pid it names the process across pid reuse. */
  startTicks: number;
  startTimeMs: number | null;
  /** The image path; for a deleted or memfd image the kernel's name without ` (deleted)`. */
  path: string | null;
  cmdline: string | null;
  /** Effective uid, as `ps` shows. */
  uid: number | null;
  user: string | null;
  parent: ParentInfo | null;
}

export type ProcessInfoResult = ProcessDetails | { error: ProcErrorCode };

export interface ProcessInfoOptions {
  procRoot?: string | undefined;
  passwdPath?: string | undefined;
  /** Set to null to resolve only users in the passwd file. */
  getentCommand?: string | null | undefined;
  maxEntries?: number | undefined;
  /** A cached entry is re-read after this long (command lines can be rewritten). */
  ttlMs?: number | undefined;
  timeoutMs?: number | undefined;
  maxCmdlineChars?: number | undefined;
}

interface Cached {
  details: ProcessDetails;
}

export class ProcessInfoReader {
  private readonly procRoot: string;
  private readonly timeoutMs: number;
  private readonly maxCmdlineChars: number;
  private readonly users: UserNames;
  private readonly cache: BoundedCache<string, Cached>;
  private readonly errorsTotal: Record<ProcErrorCode, number> = {
    'no-such-process': 0,
    'permission-denied': 0,
    timeout: 0,
    'read-failed': 0,
  };

  constructor(opts: ProcessInfoOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.maxCmdlineChars = opts.maxCmdlineChars ?? 32_768;
    this.users = new UserNames(opts.passwdPath ?? '/etc/passwd', 5_000, opts.getentCommand === undefined ? 'getent' : opts.getentCommand);
    this.cache = new BoundedCache({ maxEntries: opts.maxEntries ?? 4_096, ttlMs: opts.ttlMs ?? 30_000 });
  }

  /** Never throws: a vanished process is `{error: 'no-such-process'}`, an unreadable field is null. */
  async read(pid: number, signal?: AbortSignal): Promise<ProcessInfoResult> {
    const sig = deadline(this.timeoutMs, signal);
    let result: ProcessInfoResult | typeof ABORTED;
    try {
      result = await raceAbort(this.readUncounted(pid), sig);
    } catch (err) {
      result = { error: procErrorCode(err) };
    }
    if (result === ABORTED) result = { error: 'timeout' };
    if ('error' in result) this.errorsTotal[result.error]++;
    return result;
  }

  async userName(uid: number): Promise<string | null> {
    return this.users.nameOf(uid);
  }

  stats(): { cache: CacheStats; errorsTotal: Record<ProcErrorCode, number> } {
    return { cache: this.cache.stats(), errorsTotal: { ...this.errorsTotal } };
  }

  private async readUncounted(pid: number): Promise<ProcessInfoResult> {
    const st = await readStat(pid, this.procRoot);
    if ('error' in st) return st;
    const key = `${pid}:${st.startTicks}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit.details;

    const base = `${this.procRoot}/${pid}`;
    const [bootMs, path, cmdline, uid, parent] = await Promise.all([
      bootTimeMs(this.procRoot),
      this.exePath(pid),
      this.cmdline(pid),
      readProc(`${base}/status`).then(
        (buf) => {
          const s = buf.toString('latin1');
          const m = /^Uid:\s+\d+\s+(\d+)/m.exec(s);
          return m?.[1] === undefined ? null : Number(m[1]);
        },
        () => null,
      ),
      this.parentOf(st.ppid),
    ]);
    // The process may have died and its pid been reused while we read.
    const again = await readStat(pid, this.procRoot);
    if ('error' in again) return again;
    if (again.startTicks !== st.startTicks) return { error: 'no-such-process' };

    const details: ProcessDetails = {
      pid,
      startTicks: st.startTicks,
      startTimeMs: bootMs === null ? null : startTimeMsOf(st.startTicks, bootMs),
      path,
      cmdline,
      uid,
      user: uid === null ? null : ((await this.users.nameOf(uid)) ?? String(uid)),
      parent,
    };
    this.cache.set(key, { details });
    return details;
  }

  private async exePath(pid: number): Promise<string | null> {
    try {
      const link = await readlink(`${this.procRoot}/${pid}/exe`);
      return link.endsWith(' (deleted)') ? link.slice(0, -' (deleted)'.length) : link;
    } catch {
      return null;
    }
  }

  private async cmdline(pid: number): Promise<string | null> {
    try {
      return formatCmdline(await readProc(`${this.procRoot}/${pid}/cmdline`), this.maxCmdlineChars);
    } catch {
      return null;
    }
  }

  private async parentOf(ppid: number): Promise<ParentInfo | null> {
    if (ppid <= 0) return null;
    const [path, cmdline] = await Promise.all([this.exePath(ppid), this.cmdline(ppid)]);
    return { pid: ppid, path, cmdline };
  }
}
