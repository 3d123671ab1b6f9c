// The small /proc helpers every Linux reader shares (bounded reads, stat
// parsing, errno -> error code, deadlines), so /proc is read one way.
import { close, closeSync, open, openSync, read, readSync } from 'node:fs';
import { setMaxListeners } from 'node:events';

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
