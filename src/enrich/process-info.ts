// Who a pid is: command line, user, parent, start time and image path, read
// from /proc (through the helpers of common/proc.ts).
import { readFile, readlink, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import type { ParentInfo } from '../model/records.js';
import { BoundedCache, type CacheStats } from '../common/bounded-cache.js';
import {
  ABORTED,
  deadline,
  procErrorCode,
  raceAbort,
  readStat,
  bootTimeMs,
  startTimeMsOf,
  formatCmdline,
  readProc,
  type ProcErrorCode,
} from '../common/proc.js';

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
