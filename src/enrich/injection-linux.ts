// Signs that the connecting code is not the program's own (DETECTION.md
// section 5, Linux live): a stack frame in executable memory no file backs, an
// image that is a memfd or deleted, a tracer that is not a debugger, and an
// LD_PRELOAD library from a world-writable directory. Also the libraries a
// process mapped from unusual places, for the analyst.
import { open, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import type { Injection } from '../model/records.js';
import type { KernelStackVerdict, LiveConnect } from '../sources/source.js';
import { BoundedCache, type CacheStats } from '../common/bounded-cache.js';
import { readExeLink } from './image-hash.js';
import { ABORTED, deadline, procErrorCode, raceAbort, readProc, readSmallProcSync, readStat, type ProcErrorCode } from '../common/proc.js';

export interface Mapping {
  start: number;
  end: number;
  perms: string;
  inode: number;
  /** '' for anonymous memory; `[vdso]`, `[heap]`, ... for the kernel's names; may end in ` (deleted)`. */
  path: string;
}

export type MappingKind = 'file' | 'anon' | 'memfd' | 'deleted' | 'kernel';

/**
 * Parses /proc/<pid>/maps. Hand-split rather than a regular expression: a
 * browser has thousands of lines and this runs per connection on a miss.
 */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let pos = 0;
  while (pos < text.length) {
    let eol = text.indexOf('\n', pos);
    if (eol === -1) eol = text.length;
    const dash = text.indexOf('-', pos);
    const sp1 = text.indexOf(' ', pos);
    if (dash > pos && sp1 > dash && sp1 < eol) {
      const sp2 = text.indexOf(' ', sp1 + 1); // after perms
      const sp3 = text.indexOf(' ', sp2 + 1); // after offset
      const sp4 = text.indexOf(' ', sp3 + 1); // after dev
      let sp5 = text.indexOf(' ', sp4 + 1); // after inode
      if (sp5 === -1 || sp5 > eol) sp5 = eol;
      let p = sp5;
      while (p < eol && text.charCodeAt(p) === 32) p++;
      out.push({
        start: parseInt(text.slice(pos, dash), 16),
        end: parseInt(text.slice(dash + 1, sp1), 16),
        perms: text.slice(sp1 + 1, sp2),
        inode: Number(text.slice(sp4 + 1, sp5)),
        path: text.slice(p, eol),
      });
    }
    pos = eol + 1;
  }
  return out;
}

export function mappingKind(m: Mapping): MappingKind {
  const p = m.path;
  if (p === '') return 'anon';
  if (p.startsWith('[')) {
    // Executable heap, stack or a named anonymous region is memory no file backs.
    return p === '[heap]' || p.startsWith('[stack') || p.startsWith('[anon') ? 'anon' : 'kernel';
  }
  // Shared anonymous memory shows as the deleted /dev/zero inode.
  if (p.startsWith('/dev/zero')) return 'anon';
  if (p.startsWith('/memfd:')) return 'memfd';
  if (p.endsWith(' (deleted)')) return 'deleted';
  return 'file';
}

// glibc, musl and their loaders; calls into the C library are how any code reaches connect().
const LIBC_OR_LOADER = /^(libc|libpthread|ld-linux[\w.-]*|ld|ld-musl-[\w.-]+|libc\.musl-[\w.-]+)([.-]|$)/;

export function isLibcOrLoader(path: string): boolean {
  return LIBC_OR_LOADER.test(posix.basename(path));
}

/** The mapping holding `addr`, by binary search (maps are sorted and do not overlap). */
export function findMapping(maps: readonly Mapping[], addr: number): Mapping | undefined {
  let lo = 0;
  let hi = maps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const m = maps[mid] as Mapping;
    if (addr < m.start) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return m;
  }
  return undefined;
}

/**
 * Looks at user stack frames innermost first. Frames in the C library, the
 * loader and the kernel's pages are skipped; the first frame beyond them is the
 * code that asked for the connection. If it runs from executable memory that no
 * file backs, that is the indicator. We stop there: deeper frames of JIT
 * runtimes (node, Java) are anonymous by design, and without frame pointers
 * deeper frames are guesses.
 * Returns `undefined` when an ip is in no mapping (maps may be stale).
 */
export function frameIndicators(maps: readonly Mapping[], ips: readonly (number | bigint)[]): string[] | undefined {
  for (const raw of ips) {
    const ip = Number(raw);
    if (ip === 0) continue;
    const m = findMapping(maps, ip);
    if (m === undefined) return undefined;
    const kind = mappingKind(m);
    if (kind === 'kernel' || (kind === 'file' && isLibcOrLoader(m.path))) continue;
    // A return address in memory that is not executable is a broken unwind, not evidence.
    if (!m.perms.includes('x')) return [];
    const hex = `0x${ip.toString(16)}`;
    if (kind === 'anon') return [`anon-exec-frame:${hex}`];
    if (kind === 'memfd') return [`memfd-exec-frame:${hex} ${m.path}`];
    if (kind === 'deleted') return [`deleted-exec-frame:${hex} ${m.path}`];
    return [];
  }
  return [];
}

/**
 * The indicators of the kernel's verdict on the stack at the connect (bpf_find_vma), named as
 * frameIndicators() and scanIndicators() name theirs; the kernel has the mapping's file name only,
 * not its folder. null when the kernel did not judge or could not decide ('undecided': a frame in
 * no mapping): the user-space check decides then.
 */
export function kernelFrameIndicators(v: KernelStackVerdict | null | undefined): string[] | null {
  if (v === null || v === undefined || v.verdict === 'undecided') return null;
  if (v.verdict === 'clean' || v.offending === null) return [];
  const where = v.verdict === 'frame' ? 'frame' : 'return';
  const hex = `0x${v.offending.addr.toString(16)}`;
  const { kind, name } = v.offending;
  if (kind === 'anon') return [`anon-exec-${where}:${hex}`];
  if (kind === 'memfd') return [`memfd-exec-${where}:${hex} /${name}`];
  if (kind === 'deleted') return [`deleted-exec-${where}:${hex} ${name} (deleted)`];
  return [`${kind}-exec-${where}:${hex}${name === '' ? '' : ` ${name}`}`];
}

/**
 * Whether the bytes just before an address end in a call instruction, i.e. the
 * address is a return address and not a pointer that happens to point at code.
 * `before` holds the 8 bytes that end at the address.
 */
export function endsWithCall(before: Uint8Array, arch: string = process.arch): boolean {
  if (before.length !== 8) return false;
  if (arch === 'x64') {
    if (before[3] === 0xe8) return true; // call rel32
    // call r/m64 (FF /2): the ModRM, SIB and displacement must add up to exactly the bytes before the address.
    for (let k = 2; k <= 7; k++) {
      if (before[8 - k] !== 0xff) continue;
      const modrm = before[9 - k] as number;
      if (((modrm >> 3) & 7) !== 2) continue;
      const mod = modrm >> 6;
      const rm = modrm & 7;
      let len = 2;
      if (mod !== 3) {
        if (rm === 4) {
          len += 1;
          if (mod === 0 && ((before[10 - k] ?? 0) & 7) === 5) len += 4;
        }
        if (mod === 0 && rm === 5) len += 4;
        if (mod === 1) len += 1;
        if (mod === 2) len += 4;
      }
      if (len === k) return true;
    }
    return false;
  }
  if (arch === 'arm64') {
    const insn = Buffer.from(before.buffer, before.byteOffset, 8).readUInt32LE(4);
    // BL, BLR, and the pointer-authenticating BLRAA/BLRAB(Z).
    return (insn & 0xfc000000) >>> 0 === 0x94000000 || (insn & 0xfffffc1f) >>> 0 === 0xd63f0000 || (insn & 0xfefff800) >>> 0 === 0xd63f0800;
  }
  return false;
}

/** Tracers that are debuggers, profilers or crash reporters, matched on the tracer's image name. */
export const DEFAULT_KNOWN_DEBUGGERS: readonly string[] = [
  'gdb',
  'gdb-multiarch',
  'gdbserver',
  'lldb',
  'lldb-server',
  'strace',
  'ltrace',
  'perf',
  'rr',
  'valgrind',
  'vgdb',
  'dlv',
  'eu-stack',
  'py-spy',
  'rbspy',
  'criu',
  'crashpad_handler',
  'chrome_crashpad_handler',
  'systemd-coredump',
];

// Places any user can write, or a user's own: libraries from here are worth an analyst's look.
const UNUSUAL_PREFIXES = ['/tmp/', '/var/tmp/', '/dev/shm/', '/run/shm/', '/run/user/', '/home/', '/root/', '/var/crash/'];

export type InjectionErrorCode = ProcErrorCode;

export interface InspectOptions {
  /**
   * Raw words from the connecting thread's user stack pointer upwards (the
   * eBPF helper's stack scan). Frame-pointer unwinding skips the caller of a
   * libc wrapper built without frame pointers; its return address is here.
   */
  stackScan?: readonly (number | bigint)[] | undefined;
  signal?: AbortSignal | undefined;
  /**
   * The process's exact identity when the source has it (the eBPF record's
   * pid, start time and image): its maps are cached under it, so no
   * /proc/<pid>/stat read per connection is needed to tell a reused pid.
   */
  processKey?: string | undefined;
  /** The caller checks the tracer itself (the connection enricher, once per process instance and thread). */
  skipTracer?: boolean | undefined;
  /** The frames as the kernel judged them at the connect (kernelFrameIndicators()): no maps or memory read for them. */
  kernelFrames?: string[] | null | undefined;
  /** The image's memfd/deleted indicators as the kernel saw them at the connect: /proc/<pid>/exe is not read. */
  exeIndicators?: string[] | undefined;
}

export interface InjectionResult {
  injection: Injection;
  /** The first check that could not run (the others still did), or null. */
  error: InjectionErrorCode | null;
}

export interface InjectionInspectorOptions {
  procRoot?: string | undefined;
  knownDebuggers?: readonly string[] | undefined;
  /** How long a process's maps are reused (they change when it loads code). */
  mapsTtlMs?: number | undefined;
  maxEntries?: number | undefined;
  timeoutMs?: number | undefined;
}

interface ProcView {
  maps: Mapping[];
  /** Prefix that reaches the process's own file system ('' when it shares ours). */
  rootPrefix: string;
  // The image and the environment change only on exec: checked once per view, not per connection.
  exe?: Promise<string[]>;
  preload?: Promise<string[]>;
  /**
   * Whether the bytes before an address in read-only file-backed code end in
   * a call, by address. That code does not change while the view lives, so a
   * busy process's stack scan stops opening /proc/<pid>/mem per connection.
   * Writable or anonymous memory (JIT, an injected stub) is read every time.
   */
  callChecks?: Map<number, boolean>;
}

/** Call checks kept per view: a process's return sites into its own code are few. */
const MAX_CALL_CHECKS = 4_096;

export class InjectionInspector {
  private readonly procRoot: string;
  private readonly knownDebuggers: Set<string>;
  private readonly timeoutMs: number;
  private readonly views: BoundedCache<string, ProcView>;
  private readonly dirModes = new BoundedCache<string, number | null>({ maxEntries: 4_096, ttlMs: 5_000 });
  /** Views being read, by key: lookups that miss at the same time share one read. */
  private readonly pendingViews = new Map<string, Promise<ProcView>>();
  private ownMntNs: Promise<string | null> | null = null;
  private readonly errorsTotal: Record<InjectionErrorCode, number> = {
    'no-such-process': 0,
    'permission-denied': 0,
    timeout: 0,
    'read-failed': 0,
  };
  private injectedTotal = 0;
  /** /proc/<pid>/mem opens for the stack scan (the call checks the cache could not answer). */
  private memOpensTotal = 0;

  constructor(opts: InjectionInspectorOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.knownDebuggers = new Set(opts.knownDebuggers ?? DEFAULT_KNOWN_DEBUGGERS);
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.views = new BoundedCache({ maxEntries: opts.maxEntries ?? 256, ttlMs: opts.mapsTtlMs ?? 2_000 });
  }

  /**
   * Injection indicators of `pid` (and thread `tid`), with the connecting
   * thread's user stack `stackIps` (innermost first) when the source has it.
   * Never throws; a check that cannot run is reported in `error`.
   */
  async inspect(
    pid: number,
    tid: number | null = null,
    stackIps: readonly (number | bigint)[] = [],
    opts: InspectOptions = {},
  ): Promise<InjectionResult> {
    const sig = deadline(this.timeoutMs, opts.signal);
    const scan = opts.stackScan ?? [];
    const errors: InjectionErrorCode[] = [];
    const note = <T>(p: Promise<T>, fallback: T): Promise<T> =>
      p.catch((err: unknown) => {
        errors.push(procErrorCode(err));
        return fallback;
      });
    const work = async (): Promise<string[]> => {
      const kernel = opts.kernelFrames ?? null;
      const view = await note(this.view(pid, kernel === null ? stackIps : [], opts.processKey), null);
      const framed = kernel ?? (view === null || stackIps.length === 0 ? [] : (frameIndicators(view.maps, stackIps) ?? []));
      const exeKnown = opts.exeIndicators;
      const [frames, exe, tracer, preload] = await Promise.all([
        // The scan only matters when the unwound frames found nothing (the kernel's verdict covers both).
        kernel !== null || framed.length > 0 || view === null || scan.length === 0
          ? Promise.resolve(framed)
          : note(this.scanIndicators(pid, view, scan), []),
        exeKnown !== undefined
          ? Promise.resolve(exeKnown)
          : note(view === null ? this.exeIndicators(pid) : (view.exe ??= this.exeIndicators(pid)), []),
        opts.skipTracer === true ? Promise.resolve([]) : note(this.tracerIndicators(pid, tid), []),
        note(view === null ? this.preloadIndicators(pid, null) : (view.preload ??= this.preloadIndicators(pid, view)), []),
      ]);
      return [...frames, ...exe, ...tracer, ...preload];
    };
    let indicators: string[] | typeof ABORTED;
    try {
      indicators = await raceAbort(work(), sig);
    } catch (err) {
      indicators = [];
      errors.push(procErrorCode(err));
    }
    if (indicators === ABORTED) {
      indicators = [];
      errors.push('timeout');
    }
    // A vanished process outranks the checks it made fail.
    const error = errors.includes('no-such-process') ? 'no-such-process' : (errors[0] ?? null);
    if (error !== null) this.errorsTotal[error]++;
    if (indicators.length > 0) this.injectedTotal++;
    return { injection: { injected: indicators.length > 0, indicators }, error };
  }

  /** Shared objects mapped from temporary, home or world-writable places, and memfd or deleted ones. */
  async unusualLibraries(
    pid: number,
    signal?: AbortSignal,
    processKey?: string,
  ): Promise<{ libraries: string[]; error: InjectionErrorCode | null }> {
    const sig = deadline(this.timeoutMs, signal);
    try {
      const r = await raceAbort(this.unusual(pid, processKey), sig);
      if (r === ABORTED) {
        this.errorsTotal.timeout++;
        return { libraries: [], error: 'timeout' };
      }
      return { libraries: r, error: null };
    } catch (err) {
      const error = procErrorCode(err);
      this.errorsTotal[error]++;
      return { libraries: [], error };
    }
  }

  stats(): { mapsCache: CacheStats; injectedTotal: number; memOpensTotal: number; errorsTotal: Record<InjectionErrorCode, number> } {
    return {
      mapsCache: this.views.stats(),
      injectedTotal: this.injectedTotal,
      memOpensTotal: this.memOpensTotal,
      errorsTotal: { ...this.errorsTotal },
    };
  }

  private async unusual(pid: number, processKey: string | undefined): Promise<string[]> {
    const view = await this.view(pid, [], processKey);
    const exe = await readlink(`${this.procRoot}/${pid}/exe`).catch(() => null);
    // A library is mapped several times (r--, r-x, rw-): decide once per file, executable if any part is.
    const files = new Map<string, { kind: MappingKind; exec: boolean }>();
    for (const m of view.maps) {
      const kind = mappingKind(m);
      if (m.path === exe || (kind !== 'file' && kind !== 'memfd' && kind !== 'deleted')) continue;
      const f = files.get(m.path);
      if (f === undefined) files.set(m.path, { kind, exec: m.perms.includes('x') });
      else f.exec ||= m.perms.includes('x');
    }
    const found = new Set<string>();
    for (const [path, f] of files) {
      const isLibrary = f.exec || /\.so(\.|$)/.test(posix.basename(path.replace(/ \(deleted\)$/, '')));
      if (!isLibrary) continue;
      if (f.kind !== 'file' || UNUSUAL_PREFIXES.some((p) => path.startsWith(p)) || (await this.inWorldWritableDir(view.rootPrefix, path)))
        found.add(path);
    }
    return [...found].sort();
  }

  /**
   * Maps of `pid`, cached per (pid, start time), or per the caller's exact
   * process key; re-read when an ip falls outside them (new code was mapped).
   */
  private async view(pid: number, ips: readonly (number | bigint)[], processKey?: string): Promise<ProcView> {
    let key: string;
    if (processKey !== undefined) {
      key = `k:${processKey}`;
    } else {
      const st = await readStat(pid, this.procRoot);
      if ('error' in st) {
        if (st.error === 'no-such-process') throw Object.assign(new Error('process exited'), { code: 'ESRCH' });
        throw Object.assign(new Error('stat unreadable'), { code: st.error === 'permission-denied' ? 'EACCES' : 'EIO' });
      }
      key = `${pid}:${st.startTicks}`;
    }
    const covers = (v: ProcView): boolean => ips.every((ip) => Number(ip) === 0 || findMapping(v.maps, Number(ip)) !== undefined);
    const cached = this.views.get(key);
    if (cached !== undefined && covers(cached)) return cached;
    // A process's first connection asks for its view twice at once (its libraries and its stack):
    // one read of the maps serves both, so the view that keeps the exe and environ checks is the one cached.
    const pending = this.pendingViews.get(key);
    if (pending !== undefined) {
      const v = await pending;
      if (covers(v)) return v;
    }
    const reading = this.readView(pid);
    this.pendingViews.set(key, reading);
    try {
      const view = await reading;
      this.views.set(key, view);
      return view;
    } finally {
      if (this.pendingViews.get(key) === reading) this.pendingViews.delete(key);
    }
  }

  private async readView(pid: number): Promise<ProcView> {
    const [text, mnt, own] = await Promise.all([
      readProc(`${this.procRoot}/${pid}/maps`).then((b) => b.toString('latin1')),
      readlink(`${this.procRoot}/${pid}/ns/mnt`).catch(() => null),
      this.ownMountNamespace(),
    ]);
    return { maps: parseMaps(text), rootPrefix: mnt !== null && mnt === own ? '' : `${this.procRoot}/${pid}/root` };
  }

  private ownMountNamespace(): Promise<string | null> {
    this.ownMntNs ??= readlink(`${this.procRoot}/self/ns/mnt`).catch(() => null);
    return this.ownMntNs;
  }

  /**
   * Walks the scanned stack words from the stack pointer up, like the frames:
   * the first return address outside the C library and the loader decides.
   * Each candidate is checked against the process's memory to end a call
   * instruction, so data that merely points at JIT code is not taken for a frame.
   */
  private async scanIndicators(pid: number, view: ProcView, words: readonly (number | bigint)[]): Promise<string[]> {
    const candidates: Array<{ addr: number; m: Mapping; kind: MappingKind }> = [];
    for (const w of words) {
      const addr = Number(w);
      const m = addr < 8 ? undefined : findMapping(view.maps, addr);
      if (m === undefined || !m.perms.includes('x')) continue;
      const kind = mappingKind(m);
      if (kind === 'kernel' || (kind === 'file' && isLibcOrLoader(m.path))) continue;
      candidates.push({ addr, m, kind });
    }
    if (candidates.length === 0) return [];
    const checks = (view.callChecks ??= new Map());
    // Walk the candidates in order; the first that ends a call decides, so only the known prefix can be answered from the cache.
    let first = 0;
    for (; first < candidates.length; first++) {
      const c = candidates[first] as { addr: number; m: Mapping; kind: MappingKind };
      const known = c.kind === 'file' && !c.m.perms.includes('w') ? checks.get(c.addr) : undefined;
      if (known === undefined) break;
      if (known) return [];
    }
    if (first === candidates.length) return [];
    this.memOpensTotal++;
    const mem = await open(`${this.procRoot}/${pid}/mem`, 'r');
    try {
      const before = Buffer.alloc(8);
      for (const { addr, m, kind } of candidates.slice(first)) {
        const cacheable = kind === 'file' && !m.perms.includes('w');
        if (cacheable && checks.get(addr) === false) continue;
        if (cacheable && checks.get(addr) === true) return [];
        const { bytesRead } = await mem.read(before, 0, 8, addr - 8).catch(() => ({ bytesRead: 0 }));
        const isCall = bytesRead === 8 && endsWithCall(before);
        if (cacheable && bytesRead === 8 && checks.size < MAX_CALL_CHECKS) checks.set(addr, isCall);
        if (!isCall) continue;
        if (kind === 'file') return [];
        const hex = `0x${addr.toString(16)}`;
        return [kind === 'anon' ? `anon-exec-return:${hex}` : `${kind}-exec-return:${hex} ${m.path}`];
      }
      return [];
    } finally {
      await mem.close().catch(() => undefined);
    }
  }

  private async exeIndicators(pid: number): Promise<string[]> {
    const st = await stat(`${this.procRoot}/${pid}/exe`, { bigint: true });
    const link = await readExeLink(this.procRoot, pid, st);
    if (link.memfd) return [`memfd-exe:${link.path}`];
    if (link.deleted) return [`deleted-exe:${link.path}`];
    return [];
  }

  /** The maps cached under the caller's exact process key, without reading /proc; undefined when none are. */
  cachedMaps(processKey: string): readonly Mapping[] | undefined {
    return this.views.peek(`k:${processKey}`)?.maps;
  }

  /** The tracer the kernel found on the connecting thread (else its group leader) at the connect; no /proc read. */
  kernelTracerIndicators(tracer: NonNullable<LiveConnect['tracer']> | null): string[] {
    if (tracer === null) return [];
    // A deleted or memfd tracer is never a known debugger, as in tracerName().
    if (!tracer.oddExe && this.knownDebuggers.has(tracer.exeName)) return [];
    const name = tracer.exeName === '' ? 'unknown' : tracer.oddExe ? `${tracer.exeName} (deleted)` : tracer.exeName;
    return [`ptrace:${name}[${tracer.pid}]`];
  }

  /** Tracing is per thread: a debugger may attach to the connecting thread only. Throws when the process is gone. */
  async tracerIndicators(pid: number, tid: number | null): Promise<string[]> {
    const files = [`${this.procRoot}/${pid}/status`];
    if (tid !== null && tid !== pid) files.push(`${this.procRoot}/${pid}/task/${tid}/status`);
    const tracers = new Set<number>();
    for (const [i, f] of files.entries()) {
      // Read per connection, so read synchronously: status is cheap for the kernel and costly through the thread pool.
      let text: string;
      try {
        text = readSmallProcSync(f);
      } catch (err) {
        // The thread may have exited since the event; the process status still counts.
        if (i === 0) throw err;
        text = '';
      }
      const t = Number(/^TracerPid:\s*(\d+)/m.exec(text)?.[1] ?? 0);
      if (t > 0) tracers.add(t);
    }
    const out: string[] = [];
    for (const t of tracers) {
      const name = await this.tracerName(t);
      if (name === null || !this.knownDebuggers.has(name)) out.push(`ptrace:${name ?? 'unknown'}[${t}]`);
    }
    return out;
  }

  /** The tracer's image name; a deleted or memfd image is never a known debugger. */
  private async tracerName(pid: number): Promise<string | null> {
    const link = await readlink(`${this.procRoot}/${pid}/exe`).catch(() => null);
    // A deleted or memfd tracer keeps its suffix (`gdb (deleted)`), so it never matches a debugger's name.
    if (link !== null) return posix.basename(link);
    // No exe link (exited, or we may not read it): fall back to comm, which the tracer chose itself.
    const comm = await readProc(`${this.procRoot}/${pid}/comm`).catch(() => null);
    return comm === null ? null : comm.toString('latin1').trim();
  }

  private async preloadIndicators(pid: number, view: ProcView | null): Promise<string[]> {
    const prefix = view?.rootPrefix ?? `${this.procRoot}/${pid}/root`;
    const environ = (await readProc(`${this.procRoot}/${pid}/environ`)).toString('latin1');
    const preload =
      environ
        .split('\0')
        .find((e) => e.startsWith('LD_PRELOAD='))
        ?.slice('LD_PRELOAD='.length) ?? '';
    const global = await readFile(`${prefix}/etc/ld.so.preload`, 'latin1').catch(() => '');
    const out: string[] = [];
    for (const [code, list] of [
      ['ld-preload-world-writable', preload],
      ['ld-so-preload-world-writable', global],
    ] as const) {
      for (const entry of list.split(/[\s:]+/)) {
        if (entry === '' || entry.startsWith('#')) continue;
        const path = await this.resolvePreload(pid, entry, view);
        if (path !== null && (await this.inWorldWritableDir(prefix, path))) out.push(`${code}:${path}`);
      }
    }
    return out;
  }

  /** Where a preload entry was actually loaded from: a bare name is found through the library path, so ask the maps. */
  private async resolvePreload(pid: number, entry: string, view: ProcView | null): Promise<string | null> {
    if (!entry.includes('/')) {
      const hit = view?.maps.find((m) => mappingKind(m) === 'file' && posix.basename(m.path) === entry);
      return hit?.path ?? null;
    }
    if (entry.startsWith('/')) return posix.normalize(entry);
    const cwd = await readlink(`${this.procRoot}/${pid}/cwd`).catch(() => null);
    return cwd === null ? null : posix.resolve(cwd, entry);
  }

  /** True when any folder on the way to `path` is writable by everyone (a user could have placed the file). */
  private async inWorldWritableDir(rootPrefix: string, path: string): Promise<boolean> {
    let dir = dirname(path);
    for (;;) {
      const key = `${rootPrefix}\0${dir}`;
      let mode = this.dirModes.get(key);
      if (mode === undefined) {
        mode = await stat(`${rootPrefix}${dir}`).then(
          (s) => s.mode,
          () => null,
        );
        this.dirModes.set(key, mode);
      }
      if (mode !== null && (mode & 0o002) !== 0) return true;
      if (dir === '/' || dir === '.') return false;
      dir = dirname(dir);
    }
  }
}
