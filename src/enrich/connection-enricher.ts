// Turns a live connection into the ConnectionEvent the scorer reads: process
// details, image sha256, signer, injection indicators and unusual libraries,
// looked up at once. A failed lookup leaves its field empty and counts an
// error code; the event is never dropped.
import type { EnrichConfig } from '../config/defaults.js';
import type { ConnectionEvent, HostRef, Injection } from '../model/records.js';
import { UNKNOWN_SIGNER } from '../model/records.js';
import { ImageHasher, type ImageHasherStats } from './image-hash.js';
import { findMapping, InjectionInspector, kernelFrameIndicators, type InjectionErrorCode } from './injection-linux.js';
import { formatCmdline, procErrorCode, type ProcErrorCode } from '../common/proc.js';
import { ProcessInfoReader } from './process-info.js';
import { LinuxSigner, type LinuxSignerStats } from './signer-linux.js';
import { ExeIndex } from './exe-index.js';
import { BoundedCache } from '../common/bounded-cache.js';
import type { LiveConnect } from '../sources/source.js';

/** How long a tracer verdict of a thread stands: a debugger attached since is seen this late at most. */
const TRACER_RECHECK_MS = 1_000;
/** How long a verdict on a code path stands before it is inspected again (code could be unmapped and replaced). */
const VERDICT_TTL_MS = 30_000;
/** Maps kept per process, so a repeat's code path is told without reading /proc (new code is seen at once: its address is outside them). */
const MAPS_TTL_MS = 30_000;
/** Command lines from an EXEC record are cut as ProcessInfoReader cuts those it reads from /proc. */
const MAX_EXEC_CMDLINE_CHARS = 32_768;
/** Code paths and threads remembered per process instance. */
const MAX_VERDICTS = 64;
const MAX_THREADS = 256;

/** What the enricher tells the daemon's status and metrics. */
export interface ConnectionEnricherStats {
  enrichedTotal: number;
  /** Connections that reused the process-level lookups of an earlier one. */
  reusedTotal: number;
  /** Repeats of a (process instance, code path) already judged: no /proc read, no hashing, no await. */
  repeatsTotal: number;
  /** Tracer checks (reads of /proc/<pid>/status), once per process instance and thread a second at most. */
  tracerChecksTotal: number;
  /** Enrichment errors by `enricher:code`. */
  errorsByCode: Record<string, number>;
  hash: ImageHasherStats;
  signer: LinuxSignerStats;
  injection: ReturnType<InjectionInspector['stats']>;
  exeIndex: { lookupsTotal: number; foundTotal: number };
}

type ProcessParts = [
  Awaited<ReturnType<ProcessInfoReader['read']>>,
  Awaited<ReturnType<ImageHasher['hashPid']>>,
  Awaited<ReturnType<LinuxSigner['signerOfPid']>>,
  Awaited<ReturnType<InjectionInspector['unusualLibraries']>>,
];

/** What is decided once per process instance (pid, start time and image), and its repeats' verdicts. */
interface Instance {
  /** Details, image hash, signer and unusual libraries: shared while in flight, kept once complete. */
  parts: Promise<ProcessParts>;
  done: ProcessParts | null;
  /** Injection indicators other than the tracer (frames, image, preload), by code path, with when judged. */
  verdicts: Map<string, { indicators: string[]; atMs: number }>;
  /** Tracer indicators by thread, with when read. */
  tracers: Map<number, { indicators: string[]; atMs: number }>;
}

export class ConnectionEnricher {
  private readonly info: ProcessInfoReader;
  private readonly hasher: ImageHasher;
  private readonly signer: LinuxSigner;
  private readonly injection: InjectionInspector;
  private readonly exeIndex = new ExeIndex();
  /**
   * Process instances by exact identity. A busy process makes many connections a second, most of
   * them repeats from the same code: each used to read /proc (~45 us for the tracer alone, ~1 ms for
   * the rest on a miss). A pid reused by another process has another start time: another instance.
   */
  private readonly instances: BoundedCache<string, Instance>;
  /** Enrichment errors by `enricher:code`. */
  readonly errorsByCode: Record<string, number> = {};
  enrichedTotal = 0;
  reusedTotal = 0;
  repeatsTotal = 0;
  tracerChecksTotal = 0;

  constructor(
    cfg: EnrichConfig,
    private readonly host: HostRef,
    private readonly now: () => number = Date.now,
  ) {
    this.info = new ProcessInfoReader({ timeoutMs: cfg.timeoutMs });
    this.hasher = new ImageHasher({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs });
    this.signer = new LinuxSigner({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs });
    this.injection = new InjectionInspector({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs, mapsTtlMs: MAPS_TTL_MS });
    this.instances = new BoundedCache({ maxEntries: cfg.cacheEntries });
  }

  /**
   * Exact identity of the image at connect time, from the eBPF record: pid,
   * process start (pid reuse) and the executable's (device, inode) (an exec
   * keeps pid and start but changes the image). null for the /proc source.
   */
  private static identity(c: LiveConnect): string | null {
    if (c.processStartBootNs === null || c.exe === null) return null;
    return `${c.pid}:${c.processStartBootNs}:${c.exe.dev}:${c.exe.ino}`;
  }

  private lookup(c: LiveConnect, key: string | null, signal?: AbortSignal): Promise<ProcessParts> {
    return Promise.all([
      this.info.read(c.pid, signal),
      this.hasher.hashPid(c.pid, signal),
      this.signer.signerOfPid(c.pid, signal),
      this.injection.unusualLibraries(c.pid, signal, key ?? undefined),
    ]);
  }

  private instance(c: LiveConnect, key: string, signal?: AbortSignal): Instance {
    const hit = this.instances.get(key);
    if (hit !== undefined) {
      this.reusedTotal++;
      return hit;
    }
    // Shared while in flight too: a burst from one process reads /proc once.
    const inst: Instance = { parts: this.lookup(c, key, signal), done: null, verdicts: new Map(), tracers: new Map() };
    this.instances.set(key, inst);
    void inst.parts.then((parts) => {
      const [info, image, signer, libs] = parts;
      // Only complete answers are kept; a failed lookup is tried again next time.
      if ('error' in info || 'error' in image || signer.error !== null || libs.error !== null) {
        if (this.instances.peek(key) === inst) this.instances.delete(key);
      } else inst.done = parts;
    });
    return inst;
  }

  /**
   * The code path of a connection: its unwound frames and the scanned stack words that point into
   * executable memory, under the maps already cached for the process. Two connections with the same
   * path get the same injection verdict. null when the maps are not cached or a frame is outside them.
   */
  private codePath(c: LiveConnect, key: string): string | null {
    // Judged by the kernel at the connect: its verdict is the path (and the image's state then, which an unlink changes).
    const kernel = kernelFrameIndicators(c.kernel);
    if (kernel !== null) return `k|${kernel.join(',')}|${ConnectionEnricher.exeIndicators(c)?.join(',') ?? '?'}`;
    const maps = this.injection.cachedMaps(key);
    if (maps === undefined) return null;
    let path = '';
    for (const ip of c.stack) {
      if (ip === 0n) continue;
      if (findMapping(maps, Number(ip)) === undefined) return null;
      path += ip.toString(36) + ',';
    }
    path += '|';
    for (const w of c.stackScan) {
      const addr = Number(w);
      if (addr < 8) continue;
      // Data (heap and stack pointers, counters) differs from call to call; return addresses into code do not.
      if (findMapping(maps, addr)?.perms.includes('x') === true) path += w.toString(36) + ',';
    }
    return path;
  }

  /**
   * The image's memfd/deleted indicator from the kernel's flags at the connect, named by the exec's
   * path; undefined when the kernel did not say, or flags an image whose path is not known (then
   * /proc/<pid>/exe is read).
   */
  private static exeIndicators(c: LiveConnect): string[] | undefined {
    if (c.exeMemfd === undefined || c.exeDeleted === undefined) return undefined;
    const img = c.image ?? null;
    const memfd = c.exeMemfd || img?.memfd === true;
    const deleted = !memfd && (c.exeDeleted || img?.deleted === true);
    if (!memfd && !deleted) return [];
    if (img === null) return undefined;
    return [memfd ? `memfd-exe:${img.path}` : `deleted-exe:${img.path}`];
  }

  /** The tracer indicators the kernel read from the task, or null when the source did not say. */
  private kernelTracer(c: LiveConnect): string[] | null {
    return c.tracer === undefined ? null : this.injection.kernelTracerIndicators(c.tracer);
  }

  /**
   * A repeat of a (process instance, code path) already judged, answered from what was decided then:
   * no /proc read, no hashing, no await. null when anything is not known (fresh) yet: enrich() then.
   */
  enrichRepeat(c: LiveConnect): ConnectionEvent | null {
    const key = ConnectionEnricher.identity(c);
    if (key === null) return null;
    const inst = this.instances.peek(key);
    if (inst === undefined || inst.done === null) return null;
    const now = this.now();
    const tracer = this.kernelTracer(c) ?? inst.tracers.get(c.tid ?? c.pid);
    if (tracer === undefined || (!Array.isArray(tracer) && now - tracer.atMs > TRACER_RECHECK_MS)) return null;
    const tracerIndicators = Array.isArray(tracer) ? tracer : tracer.indicators;
    const path = this.codePath(c, key);
    const verdict = path === null ? undefined : inst.verdicts.get(path);
    if (verdict === undefined || now - verdict.atMs > VERDICT_TTL_MS) return null;
    this.instances.get(key); // recency
    this.enrichedTotal++;
    this.reusedTotal++;
    this.repeatsTotal++;
    const [info, image, signer, libs] = inst.done;
    const indicators = tracerIndicators.length === 0 ? verdict.indicators : [...verdict.indicators, ...tracerIndicators];
    return this.event(c, info, image, signer, { injection: { injected: indicators.length > 0, indicators }, error: null }, libs);
  }

  /** The tracer of the connecting thread, read at most once a second per instance and thread. */
  private tracerOf(inst: Instance, c: LiveConnect): Promise<{ indicators: string[]; error: InjectionErrorCode | null }> {
    const kernel = this.kernelTracer(c);
    if (kernel !== null) return Promise.resolve({ indicators: kernel, error: null });
    const tid = c.tid ?? c.pid;
    const now = this.now();
    const known = inst.tracers.get(tid);
    if (known !== undefined && now - known.atMs <= TRACER_RECHECK_MS) return Promise.resolve({ indicators: known.indicators, error: null });
    this.tracerChecksTotal++;
    return this.injection.tracerIndicators(c.pid, c.tid).then(
      (indicators) => {
        if (!inst.tracers.has(tid) && inst.tracers.size >= MAX_THREADS) inst.tracers.clear();
        inst.tracers.set(tid, { indicators, atMs: this.now() });
        return { indicators, error: null };
      },
      (err: unknown) => ({ indicators: [], error: procErrorCode(err) }),
    );
  }

  private count(enricher: string, code: string | null): void {
    if (code === null) return;
    const key = `${enricher}:${code}`;
    this.errorsByCode[key] = (this.errorsByCode[key] ?? 0) + 1;
  }

  /** Loads what the first connections would otherwise wait for (the host's package databases). Never throws. */
  warm(): Promise<void> {
    return this.signer.warm();
  }

  async enrich(c: LiveConnect, signal?: AbortSignal): Promise<ConnectionEvent> {
    const key = ConnectionEnricher.identity(c);
    const inst = key === null ? null : this.instance(c, key, signal);
    const kernelTracer = this.kernelTracer(c);
    const [[info, image, signer, libs], inspected, tracer] = await Promise.all([
      inst === null ? this.lookup(c, null, signal) : inst.parts,
      this.injection.inspect(c.pid, c.tid, c.stack, {
        stackScan: c.stackScan,
        processKey: key ?? undefined,
        skipTracer: inst !== null || kernelTracer !== null,
        kernelFrames: kernelFrameIndicators(c.kernel),
        exeIndicators: ConnectionEnricher.exeIndicators(c),
        ...(signal === undefined ? {} : { signal }),
      }),
      inst === null ? null : this.tracerOf(inst, c),
    ]);
    let inj = inspected;
    if (inst === null && kernelTracer !== null && kernelTracer.length > 0) {
      const indicators = [...inspected.injection.indicators, ...kernelTracer];
      inj = { injection: { injected: true, indicators }, error: inspected.error };
    }
    if (inst !== null && key !== null) {
      // A complete verdict stands for this code path's repeats (the maps are cached now).
      const path = inspected.error === null ? this.codePath(c, key) : null;
      if (path !== null) {
        if (!inst.verdicts.has(path) && inst.verdicts.size >= MAX_VERDICTS) inst.verdicts.clear();
        inst.verdicts.set(path, { indicators: inspected.injection.indicators, atMs: this.now() });
      }
      if (tracer !== null) {
        const indicators = [...inspected.injection.indicators, ...tracer.indicators];
        inj = { injection: { injected: indicators.length > 0, indicators }, error: inspected.error ?? tracer.error };
      }
    }
    this.enrichedTotal++;
    const img = c.image ?? null;
    if ('error' in image && img !== null) {
      // The process is gone (or its /proc unreadable): hash the very file it exec'd, through the helper's
      // handle on it, else by the path the exec named if that is still the same file (device and inode).
      const ways: Array<[string, string]> = [];
      if (img.heldPath !== null) ways.push([img.heldPath, 'held-by-helper']);
      if (!img.memfd && img.path.startsWith('/')) ways.push([img.path, 'by-exec-path']);
      for (const [handle, how] of ways) {
        const [byHandle, signerByHandle] = await Promise.all([
          this.hasher.hashHeld(handle, img, signal),
          this.signer.signerOfHeld(handle, { path: img.path, memfd: img.memfd, deleted: img.deleted || c.exeDeleted === true }, signal),
        ]);
        if (!('error' in byHandle)) {
          this.count('image-hash', `${image.error}-${how}`);
          return this.event(c, 'error' in info ? await this.fromExec(c, info) : info, byHandle, signerByHandle, inj, libs);
        }
      }
    }
    if ('error' in image && c.exe !== null) {
      // The process exited before we looked: find its image by inode instead.
      const path = await this.exeIndex.find(c.exe.dev, c.exe.ino);
      if (path !== null) {
        const [byFile, signerByFile] = await Promise.all([this.hasher.hashFile(path, signal), this.signer.signerOfFile(path, signal)]);
        if (!('error' in byFile)) {
          this.count('image-hash', `${image.error}-found-by-inode`);
          return this.event(c, info, byFile, signerByFile, inj, libs);
        }
      }
    }
    return this.event(c, info, image, signer, inj, libs);
  }

  /** The details an EXEC record kept (path, command line, user) for a process gone before /proc was read; the error stays counted. */
  private async fromExec(c: LiveConnect, failed: { error: ProcErrorCode }): Promise<Awaited<ReturnType<ProcessInfoReader['read']>>> {
    const img = c.image;
    if (img === undefined || img === null) return failed;
    this.count('process-info', `${failed.error}-from-exec`);
    return {
      pid: c.pid,
      startTicks: 0,
      startTimeMs: null,
      path: img.path,
      cmdline: formatCmdline(Buffer.from(img.args.join('\0')), MAX_EXEC_CMDLINE_CHARS),
      uid: img.uid,
      user: await this.info.userName(img.uid),
      parent: null,
    };
  }

  private event(
    c: LiveConnect,
    info: Awaited<ReturnType<ProcessInfoReader['read']>>,
    image: Awaited<ReturnType<ImageHasher['hashPid']>>,
    signer: Awaited<ReturnType<LinuxSigner['signerOfPid']>>,
    inj: Awaited<ReturnType<InjectionInspector['inspect']>>,
    libs: Awaited<ReturnType<InjectionInspector['unusualLibraries']>>,
  ): ConnectionEvent {
    const details = 'error' in info ? null : info;
    if ('error' in info) this.count('process-info', info.error);
    const hash = 'error' in image ? null : image;
    if ('error' in image) this.count('image-hash', image.error);
    this.count('signer', signer.error);
    this.count('injection', inj.error);
    this.count('libraries', libs.error);
    const injection: Injection = inj.injection;
    return {
      type: 'connection',
      timeMs: c.timeMs,
      host: this.host,
      process: {
        pid: c.pid,
        tid: c.tid,
        startTimeMs: details?.startTimeMs ?? null,
        path: hash?.path ?? details?.path ?? null,
        sha256: hash?.sha256 ?? null,
        signer: signer.error === null ? signer.signer : UNKNOWN_SIGNER,
        injection,
        cmdline: details?.cmdline ?? null,
        user: details?.user ?? null,
        parent: details?.parent ?? null,
        unusualLibraries: libs.libraries,
      },
      protocol: c.protocol,
      direction: 'outbound',
      remote: { ip: c.remoteIp, port: c.remotePort, hostname: null },
      local: c.localIp === null || c.localPort === null ? null : { ip: c.localIp, port: c.localPort },
    };
  }

  stats(): ConnectionEnricherStats {
    return {
      enrichedTotal: this.enrichedTotal,
      reusedTotal: this.reusedTotal,
      repeatsTotal: this.repeatsTotal,
      tracerChecksTotal: this.tracerChecksTotal,
      errorsByCode: { ...this.errorsByCode },
      hash: this.hasher.stats(),
      signer: this.signer.stats(),
      injection: this.injection.stats(),
      exeIndex: { lookupsTotal: this.exeIndex.lookupsTotal, foundTotal: this.exeIndex.foundTotal },
    };
  }
}
