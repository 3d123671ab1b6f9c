// sha256 of the image a process actually runs. We open /proc/<pid>/exe
// itself: the kernel hands back the mapped file even when it was deleted,
// replaced on disk, or is a memfd, none of which the resolved path would give.
import { createHash } from 'node:crypto';
import { open, readlink, stat, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { BoundedCache, type CacheStats } from '../common/bounded-cache.js';
import { ABORTED, deadline, procErrorCode, raceAbort, type ProcErrorCode } from '../common/proc.js';

/** `no-such-file` only from `hashFile`; a pid's image that vanished is `no-such-process`. */
export type ImageHashError = ProcErrorCode | 'no-such-file';

export interface ImageHash {
  sha256: string;
  /** The kernel's name for the image, without the ` (deleted)` suffix. */
  path: string;
  /** The image has no name on disk any more (a memfd is reported as `memfd`, not as deleted). */
  deleted: boolean;
  /** The image is an anonymous memory file (memfd_create), i.e. it never was on disk. */
  memfd: boolean;
  sizeBytes: number;
}

export type ImageHashResult = ImageHash | { error: ImageHashError };

export interface ExeLink {
  path: string;
  deleted: boolean;
  memfd: boolean;
}

const DELETED_SUFFIX = ' (deleted)';

/**
 * Reads what /proc/<pid>/exe names and whether that name still exists.
 * The kernel appends ` (deleted)` to an unlinked file, but a file may also be
 * literally named so; `opened` (fstat of the open image) settles it. The name
 * is looked up through /proc/<pid>/root, so a process in a container is
 * checked against its own file system, not ours.
 */
export async function readExeLink(procRoot: string, pid: number, opened: BigIntStats): Promise<ExeLink> {
  const link = await readlink(`${procRoot}/${pid}/exe`);
  if (!link.endsWith(DELETED_SUFFIX)) return { path: link, deleted: false, memfd: false };
  if (opened.nlink > 0n) {
    const same = await stat(`${procRoot}/${pid}/root${link}`, { bigint: true }).then(
      (s) => s.dev === opened.dev && s.ino === opened.ino,
      () => false,
    );
    if (same) return { path: link, deleted: false, memfd: false };
  }
  const path = link.slice(0, -DELETED_SUFFIX.length);
  const memfd = path.startsWith('/memfd:');
  return { path, deleted: !memfd, memfd };
}

/** Cache key of a file's content: any write changes size, mtime or ctime, and ctime cannot be set from user space. */
export function contentKey(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export interface ImageHasherOptions {
  procRoot?: string | undefined;
  maxEntries?: number | undefined;
  timeoutMs?: number | undefined;
  chunkBytes?: number | undefined;
}

export interface ImageHasherStats {
  cache: CacheStats;
  hashedFilesTotal: number;
  hashedBytesTotal: number;
  hashingMsTotal: number;
  errorsTotal: Record<ImageHashError, number>;
}

export const MIB = 1024 * 1024;

/**
 * Digest of an open file in `chunkBytes` reads. Each read runs on the libuv
 * pool and yields the event loop; hashing one 1 MiB chunk costs well under a
 * millisecond, so a large image never stalls other events.
 */
export async function digestHandle(
  fh: FileHandle,
  algorithm: string,
  sig: AbortSignal,
  chunkBytes = MIB,
): Promise<{ hex: string; bytes: number } | { error: ImageHashError }> {
  const hash = createHash(algorithm);
  // Two buffers: the next read runs on the pool while this chunk is hashed.
  let current = Buffer.allocUnsafe(chunkBytes);
  let spare = Buffer.allocUnsafe(chunkBytes);
  let pos = 0;
  let pending: Promise<{ bytesRead: number }> = fh.read(current, 0, chunkBytes, 0);
  for (;;) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await pending);
    } catch (err) {
      const code = procErrorCode(err);
      return { error: code === 'no-such-process' ? 'read-failed' : code };
    }
    if (bytesRead === 0) break;
    // Checked before the next read is issued, so no read is left running on a handle the caller closes.
    if (sig.aborted) return { error: 'timeout' };
    const next = pos + bytesRead;
    pending = fh.read(spare, 0, chunkBytes, next);
    hash.update(current.subarray(0, bytesRead));
    [current, spare] = [spare, current];
    pos = next;
  }
  return { hex: hash.digest('hex'), bytes: pos };
}

export class ImageHasher {
  private readonly procRoot: string;
  private readonly timeoutMs: number;
  private readonly chunkBytes: number;
  private readonly cache: BoundedCache<string, string>;
  // One read per file however many connections ask for it at once.
  private readonly inFlight = new Map<string, Promise<string | { error: ImageHashError }>>();
  private hashedFilesTotal = 0;
  private hashedBytesTotal = 0;
  private hashingMsTotal = 0;
  private readonly errorsTotal: Record<ImageHashError, number> = {
    'no-such-process': 0,
    'no-such-file': 0,
    'permission-denied': 0,
    timeout: 0,
    'read-failed': 0,
  };

  constructor(opts: ImageHasherOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.chunkBytes = opts.chunkBytes ?? MIB;
    this.cache = new BoundedCache({ maxEntries: opts.maxEntries ?? 4_096 });
  }

  /** Hashes the image of `pid`. Never throws. */
  async hashPid(pid: number, signal?: AbortSignal): Promise<ImageHashResult> {
    const sig = deadline(this.timeoutMs, signal);
    return this.settle(
      this.withOpen(`${this.procRoot}/${pid}/exe`, sig, async (fh, st) => {
        const link = await readExeLink(this.procRoot, pid, st);
        const sha = await this.digest(fh, st, sig);
        return typeof sha === 'string' ? { sha256: sha, ...link, sizeBytes: Number(st.size) } : sha;
      }),
      sig,
    );
  }

  /**
   * Hashes an image through a handle another process holds on it (the eBPF helper's
   * /proc/<helper>/fd/<n>, taken at the exec), for a process that is gone. The handle must still be
   * the exec's file (device, inode): an fd number closed and taken again is another file. `image`
   * names it as the exec saw it. Never throws.
   */
  async hashHeld(
    heldPath: string,
    image: { path: string; dev: number; ino: bigint; memfd: boolean; deleted: boolean },
    signal?: AbortSignal,
  ): Promise<ImageHashResult> {
    const sig = deadline(this.timeoutMs, signal);
    return this.settle(
      this.withOpen(heldPath, sig, async (fh, st) => {
        if (st.dev !== BigInt(image.dev) || st.ino !== image.ino) throw Object.assign(new Error('held image replaced'), { code: 'ESRCH' });
        const sha = await this.digest(fh, st, sig);
        const { path, memfd } = image;
        // Unlinked since the exec: the kernel's count of names says so now.
        const deleted = !memfd && (image.deleted || st.nlink === 0n);
        return typeof sha === 'string' ? { sha256: sha, path, deleted, memfd, sizeBytes: Number(st.size) } : sha;
      }),
      sig,
    );
  }

  /** Hashes a file by path (same cache), e.g. a library or an image named in a log. */
  async hashFile(path: string, signal?: AbortSignal): Promise<ImageHashResult> {
    const sig = deadline(this.timeoutMs, signal);
    return this.settle(
      this.withOpen(path, sig, async (fh, st) => {
        const sha = await this.digest(fh, st, sig);
        return typeof sha === 'string' ? { sha256: sha, path, deleted: false, memfd: false, sizeBytes: Number(st.size) } : sha;
      }),
      sig,
      'no-such-file',
    );
  }

  stats(): ImageHasherStats {
    return {
      cache: this.cache.stats(),
      hashedFilesTotal: this.hashedFilesTotal,
      hashedBytesTotal: this.hashedBytesTotal,
      hashingMsTotal: this.hashingMsTotal,
      errorsTotal: { ...this.errorsTotal },
    };
  }

  private async settle(
    work: Promise<ImageHashResult>,
    sig: AbortSignal,
    missing: ImageHashError = 'no-such-process',
  ): Promise<ImageHashResult> {
    let result: ImageHashResult | typeof ABORTED;
    try {
      result = await raceAbort(work, sig);
    } catch (err) {
      const code = procErrorCode(err);
      result = { error: code === 'no-such-process' ? missing : code };
    }
    if (result === ABORTED) result = { error: 'timeout' };
    if ('error' in result) this.errorsTotal[result.error]++;
    return result;
  }

  private async withOpen<T>(path: string, sig: AbortSignal, use: (fh: FileHandle, st: BigIntStats) => Promise<T>): Promise<T> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
      if (sig.aborted) throw Object.assign(new Error('timed out'), { code: 'ABORT_ERR' });
      return await use(fh, st);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private async digest(fh: FileHandle, st: BigIntStats, sig: AbortSignal): Promise<string | { error: ImageHashError }> {
    const key = contentKey(st);
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = this.read(fh, key, sig).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async read(fh: FileHandle, key: string, sig: AbortSignal): Promise<string | { error: ImageHashError }> {
    const started = performance.now();
    const d = await digestHandle(fh, 'sha256', sig, this.chunkBytes);
    if ('error' in d) return d;
    const sha = d.hex;
    this.hashedFilesTotal++;
    this.hashedBytesTotal += d.bytes;
    this.hashingMsTotal += performance.now() - started;
    // A file written while we read gives a hash of no version in particular: answer, but do not keep it.
    const after = await fh.stat({ bigint: true }).catch(() => null);
    if (after !== null && contentKey(after) === key) this.cache.set(key, sha);
    return sha;
  }
}
