// The whole-file baseline in force in snapshot and standalone modes,
// `<stateDir>/baseline.db`. A new one is written beside it and renamed over it
// (so a crash leaves the old file or the new one), then reopened here; the old
// reader is closed only once the new one is handed out.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { BaselineReader } from '../model/baseline.js';
import { DEFAULT_BASELINE_STORE, type BaselineStoreConfig } from '../config/defaults.js';
import type { LogFn } from '../common/log.js';
import { openBaseline, type SqliteBaseline } from '../baseline/store.js';
import { fail, type Changed } from './step.js';

export const BASELINE_FILE = 'baseline.db';

export interface BaselineFileOptions {
  stateDir: string;
  storeCfg?: BaselineStoreConfig;
  /** Called with each baseline put in force (also the one found at start). */
  onBaseline?: (reader: BaselineReader) => void;
  log: LogFn;
}

export class BaselineFile {
  readonly path: string;
  private inForce: SqliteBaseline | null = null;

  constructor(private readonly opts: BaselineFileOptions) {
    this.path = join(opts.stateDir, BASELINE_FILE);
  }

  get storeCfg(): BaselineStoreConfig {
    return this.opts.storeCfg ?? DEFAULT_BASELINE_STORE;
  }

  /** The baseline in force; null when there is none yet. */
  reader(): SqliteBaseline | null {
    return this.inForce;
  }

  /** Puts the file found at start in force; a file that cannot be opened waits for the next sync. */
  openAtStart(): void {
    try {
      statSync(this.path);
    } catch {
      return;
    }
    const o = openBaseline(this.path, this.storeCfg);
    if (o.ok) {
      this.inForce = o.baseline;
      this.opts.onBaseline?.(o.baseline);
    } else {
      this.opts.log('error', 'The baseline on disk cannot be opened; scoring waits for the next sync.', {
        path: this.path,
        error: o.error,
      });
    }
  }

  /** Opens the file just renamed into place and puts it in force. */
  reopen(): Changed {
    const o = openBaseline(this.path, this.storeCfg);
    if (!o.ok) return fail(o.code, o.error);
    const old = this.inForce;
    this.inForce = o.baseline;
    this.opts.onBaseline?.(o.baseline);
    old?.close();
    return { ok: true, value: { changed: true } };
  }

  close(): void {
    this.inForce?.close();
    this.inForce = null;
  }
}
