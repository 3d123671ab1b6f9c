// Appends alerts to an NDJSON file, one document a line, and rotates by size:
// path -> path.1 -> ... -> path.N, the oldest dropped. With fsync on, a batch
// counts as delivered only once it is on disk. A write error (full disk,
// permissions) is retryable: the alerts wait in the outbox. The file is 0600,
// never opened through a symbolic link nor when another user owns it
// (common/private-files.ts), at start and at every reopen after a rotation.
import { rename, rm, type FileHandle } from 'node:fs/promises';
import { checkOutputPath, openOutputFileAsync } from '../common/private-files.js';
import type { Alert } from '../model/alert.js';
import type { FileSinkConfig } from '../config/defaults.js';
import { ndjson } from './render.js';
import { errorText, retryable, type AlertSink, type SendResult } from './sink.js';

export class FileSink implements AlertSink {
  readonly name: string;
  private handle: FileHandle | null = null;
  private sizeBytes = 0;
  /** Sends are serialised by the delivery loop; this guards direct callers too. */
  private busy: Promise<unknown> = Promise.resolve();

  /** Throws when the path is a symbolic link or another user's file: a start-up failure. */
  constructor(private readonly cfg: FileSinkConfig) {
    this.name = cfg.name;
    const c = checkOutputPath(cfg.path, `sink ${cfg.name}: the file`);
    if (!c.ok) throw new Error(c.error);
  }

  send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    const run = this.busy.then(() => this.write(batch, signal));
    this.busy = run.catch(() => undefined);
    return run;
  }

  private async write(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    if (signal.aborted) return retryable('aborted by shutdown');
    const data = Buffer.from(ndjson(batch, this.cfg.format), 'utf8');
    try {
      if (this.handle === null) await this.openFile();
      if (this.sizeBytes > 0 && this.sizeBytes + data.length > this.cfg.maxBytes) {
        await this.rotate();
      }
      const h = this.handle!;
      let off = 0;
      while (off < data.length) off += (await h.write(data, off, data.length - off)).bytesWritten;
      this.sizeBytes += data.length;
      if (this.cfg.fsync) await h.datasync();
      return { status: 'success' };
    } catch (err) {
      // The handle may be half-written; start again from a fresh open next time.
      await this.closeHandle();
      return retryable(`cannot write ${this.cfg.path}: ${errorText(err)}`);
    }
  }

  private async openFile(): Promise<void> {
    const o = await openOutputFileAsync(this.cfg.path, `sink ${this.cfg.name}: the file`);
    this.handle = o.handle;
    this.sizeBytes = o.sizeBytes;
  }

  private async rotate(): Promise<void> {
    await this.closeHandle();
    if (this.cfg.maxFiles === 0) {
      await rm(this.cfg.path, { force: true });
    } else {
      for (let i = this.cfg.maxFiles - 1; i >= 1; i--) {
        await rename(`${this.cfg.path}.${i}`, `${this.cfg.path}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await rename(this.cfg.path, `${this.cfg.path}.1`);
    }
    await this.openFile();
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    this.sizeBytes = 0;
    if (h !== null) await h.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.busy;
    await this.closeHandle();
  }
}
