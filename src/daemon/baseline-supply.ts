// Where the baseline in force comes from: the file given with --baseline
// (opened again on SIGHUP), or else the sync client (a server, or built here
// in standalone mode), which hands over each new one as it arrives.
import { openBaseline, type SqliteBaseline } from '../baseline/store.js';
import type { Logger } from '../common/logger.js';
import type { RareconConfig } from '../config/defaults.js';
import type { BaselineReader } from '../model/baseline.js';
import type { HostRef } from '../model/records.js';
import type { BucketCache } from '../sync/bucket-cache.js';
import type { SightingsStore } from '../sync/sightings-store.js';
import { SyncClient } from '../sync/sync-client.js';
import { type SyncStatus } from '../sync/status.js';

export interface BaselineSupplyOptions {
  /** The baseline file; null = the sync client supplies the baseline. */
  path: string | null;
  config: RareconConfig;
  host: HostRef;
  log: Logger;
  /** Standalone mode builds the baseline from this host's own sightings. */
  sightings: SightingsStore;
  /** Each baseline that comes into force, first one included. */
  onBaseline: (reader: BaselineReader) => void;
  /** Bucket mode: the cache where connections wait for their part of the baseline. */
  onBucketCache: (cache: BucketCache | null) => void;
}

export class BaselineSupply {
  private sync: SyncClient | null = null;
  private file: SqliteBaseline | null = null;

  constructor(private readonly o: BaselineSupplyOptions) {}

  /** Opens the baseline file, or starts the sync client once. Throws when the file cannot be opened. */
  open(): void {
    const { path, config, host, log } = this.o;
    if (path !== null) {
      const b = openBaseline(path, config.baselineStore);
      if (!b.ok) throw new Error(b.error);
      this.file?.close();
      this.file = b.baseline;
      this.o.onBaseline(b.baseline);
      return;
    }
    if (this.sync !== null) return;
    this.sync = new SyncClient({
      cfg: config.sync,
      stateDir: config.stateDir,
      hostId: host.id,
      hostName: host.name ?? null,
      log: (level, msg, fields) => log[level](msg, fields),
      sightings: this.o.sightings,
      storeCfg: config.baselineStore,
      onBaseline: (reader) => this.o.onBaseline(reader),
    });
    this.o.onBucketCache(this.sync.bucketCache());
    this.sync.start();
  }

  /** SIGHUP: the baseline file is read again; one that cannot be opened leaves the previous one in force. */
  reopen(): void {
    if (this.o.path === null) return;
    try {
      this.open();
    } catch (err) {
      this.o.log.error('The baseline file could not be opened again; the previous one stays in force.', { error: (err as Error).message });
    }
  }

  status(): SyncStatus | null {
    return this.sync?.status() ?? null;
  }

  /** Stops and closes the sync client (and with it the baseline it handed over). */
  async stopSync(): Promise<void> {
    await this.sync?.stop();
    this.sync?.close();
  }

  closeFile(): void {
    this.file?.close();
  }
}
