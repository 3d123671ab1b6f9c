// Turns a live connection into the ConnectionEvent the scorer reads: process
// details, image sha256, signer, injection indicators and unusual libraries,
// looked up at once. A failed lookup leaves its field empty and counts an
// error code; the event is never dropped.
import type { EnrichConfig } from '../config/defaults.js';
import type { ConnectionEvent, HostRef, Injection } from '../model/records.js';
import { UNKNOWN_SIGNER } from '../model/records.js';
import { ImageHasher, type ImageHasherStats } from './image-hash.js';
import { InjectionInspector } from './injection-linux.js';
import { ProcessInfoReader } from './process-info.js';
import { LinuxSigner, type LinuxSignerStats } from './signer-linux.js';
import { ExeIndex } from './exe-index.js';
import { BoundedCache } from '../common/bounded-cache.js';
import type { LiveConnect } from '../sources/source.js';

/**
 * How long the process-level lookups of one process image are reused for its
 * next connections. The same span as the injection inspector's maps, so a
 * library loaded in that window can be missed by both alike.
 */
const PROCESS_REUSE_MS = 2_000;

/** What the enricher tells the daemon's status and metrics. */
export interface ConnectionEnricherStats {
  enrichedTotal: number;
  /** Connections that reused the process-level lookups of an earlier one. */
  reusedTotal: number;
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

export class ConnectionEnricher {
  private readonly info: ProcessInfoReader;
  private readonly hasher: ImageHasher;
  private readonly signer: LinuxSigner;
  private readonly injection: InjectionInspector;
  private readonly exeIndex = new ExeIndex();
  /**
   * Process-level lookups (details, image hash, signer, unusual libraries) of
   * recent connections, by process identity. A busy process makes many
   * connections a second; reading /proc for each cost ~1 ms of CPU. The
   * injection check stays per connection: its stack is the connection's own.
   */
  private readonly recent: BoundedCache<string, Promise<ProcessParts>>;
  /** Enrichment errors by `enricher:code`. */
  readonly errorsByCode: Record<string, number> = {};
  enrichedTotal = 0;
  reusedTotal = 0;

  constructor(
    cfg: EnrichConfig,
    private readonly host: HostRef,
  ) {
    this.info = new ProcessInfoReader({ timeoutMs: cfg.timeoutMs });
    this.hasher = new ImageHasher({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs });
    this.signer = new LinuxSigner({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs });
    this.injection = new InjectionInspector({ maxEntries: cfg.cacheEntries, timeoutMs: cfg.timeoutMs });
    this.recent = new BoundedCache({ maxEntries: cfg.cacheEntries, ttlMs: PROCESS_REUSE_MS });
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

  private processParts(c: LiveConnect, signal?: AbortSignal): Promise<ProcessParts> {
    const lookup = (): Promise<ProcessParts> =>
      Promise.all([
        this.info.read(c.pid, signal),
        this.hasher.hashPid(c.pid, signal),
        this.signer.signerOfPid(c.pid, signal),
        this.injection.unusualLibraries(c.pid, signal, ConnectionEnricher.identity(c) ?? undefined),
      ]);
    const key = ConnectionEnricher.identity(c);
    if (key === null) return lookup();
    const hit = this.recent.get(key);
    if (hit !== undefined) {
      this.reusedTotal++;
      return hit;
    }
    // Shared while in flight too: a burst from one process reads /proc once.
    const pending = lookup();
    this.recent.set(key, pending);
    // Only complete answers are reused; a failed lookup is tried again next time.
    void pending.then(([info, image, signer, libs]) => {
      if ('error' in info || 'error' in image || signer.error !== null || libs.error !== null) this.recent.delete(key);
    });
    return pending;
  }

  private count(enricher: string, code: string | null): void {
    if (code === null) return;
    const key = `${enricher}:${code}`;
    this.errorsByCode[key] = (this.errorsByCode[key] ?? 0) + 1;
  }

  async enrich(c: LiveConnect, signal?: AbortSignal): Promise<ConnectionEvent> {
    const [[info, image, signer, libs], inj] = await Promise.all([
      this.processParts(c, signal),
      this.injection.inspect(c.pid, c.tid, c.stack, {
        stackScan: c.stackScan,
        processKey: ConnectionEnricher.identity(c) ?? undefined,
        ...(signal === undefined ? {} : { signal }),
      }),
    ]);
    this.enrichedTotal++;
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
      errorsByCode: { ...this.errorsByCode },
      hash: this.hasher.stats(),
      signer: this.signer.stats(),
      injection: this.injection.stats(),
      exeIndex: { lookupsTotal: this.exeIndex.lookupsTotal, foundTotal: this.exeIndex.foundTotal },
    };
  }
}
