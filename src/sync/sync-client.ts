// The endpoint's side of the baseline server (DETECTION.md sections 8 and 9):
// uploads this host's daily sightings and keeps a baseline in force.
//
//   standalone  no server: the baseline is learnt from this host's own days
//               (observer unit `day`) and rebuilt on the schedule (standalone.ts).
//   snapshot    the whole signed baseline file is downloaded to a temp file,
//               verified (pinned Ed25519 key, digest, newer version, policy,
//               metadata, SQLite integrity), then renamed over baseline.db
//               (snapshot.ts).
//   buckets     only the buckets of the sha256 this host has seen, in the
//               bucket cache, refreshed with signed changes since its version
//               (bucket-fetch.ts).
//
// Whatever fails — the network, the server (500, hanging), a refused baseline
// (unsigned, wrong key, tampered, truncated, replayed older, other policy) —
// the baseline in force stays, the error is in status(), and the next try
// waits with exponential backoff and jitter. A crash at any point leaves the
// old baseline usable: the switch is a rename or one SQLite transaction.
//
// This class wires the pieces and keeps the status; each piece is in its file.
import type { KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BaselineReader, RootDomainPolicy, TierThresholds } from '../model/baseline.js';
import { DEFAULT_THRESHOLDS, type BaselineStoreConfig, type SyncConfig } from '../config/defaults.js';
import { DEFAULT_POLICY } from '../model/root-domain.js';
import { TokenSource } from '../common/token-source.js';
import type { LogFn } from '../common/log.js';
import { BaselineFile } from './baseline-file.js';
import { BucketCache } from './bucket-cache.js';
import { BucketFetch } from './bucket-fetch.js';
import { Enrolment } from './enrolment.js';
import { ServerHttp, removeStaleDownloads } from './http-client.js';
import { retryDelayMs, SyncSchedule } from './schedule.js';
import { loadPinnedKey } from './signed-answer.js';
import { syncConfigProblems, transportOf } from './config.js';
import type { SightingsStore } from './sightings-store.js';
import { SnapshotSync } from './snapshot.js';
import { rebuildStandalone } from './standalone.js';
import {
  initialStatus,
  noteSyncFailure,
  noteSyncSuccess,
  readSyncStatus,
  refreshStatus,
  writeSyncStatus,
  type SyncMode,
  type SyncStatus,
} from './status.js';
import { fail, type Changed, type SyncOutcome } from './step.js';
import { uploadSightings } from './upload.js';

export const BUCKET_CACHE_FILE = 'bucket-cache.db';

export interface SyncClientOptions {
  cfg: SyncConfig;
  stateDir: string;
  /** This host's pseudonymous id (daemon/host-identity.ts). */
  hostId: string;
  hostName?: string | null;
  log: LogFn;
  /** Source of uploads, and of the standalone baseline. */
  sightings?: SightingsStore | null;
  storeCfg?: BaselineStoreConfig;
  /** Standalone builds. */
  thresholds?: TierThresholds;
  policy?: RootDomainPolicy;
  /** Called with each baseline put in force (also the one found at start). */
  onBaseline?: (reader: BaselineReader) => void;
  now?: () => number;
  random?: () => number;
  env?: NodeJS.ProcessEnv;
}

export class SyncClient {
  readonly mode: SyncMode;
  private readonly cfg: SyncConfig;
  private readonly log: LogFn;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly publicKey: KeyObject | null;
  private readonly enrolment: Enrolment;
  private readonly http: ServerHttp;
  private readonly schedule: SyncSchedule;
  private readonly baselineFile: BaselineFile;
  private readonly snapshot: SnapshotSync | null;
  private cache: BucketCache | null = null;
  private buckets: BucketFetch | null = null;
  private running: Promise<SyncOutcome> | null = null;
  private readonly st: SyncStatus;

  /** Throws for configuration failures (no public key with a server, unreadable CA file). */
  constructor(private readonly opts: SyncClientOptions) {
    this.cfg = opts.cfg;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.mode = this.cfg.serverUrl === null ? 'standalone' : this.cfg.mode;
    // Plain http:// across the network is refused here too, not only by the config loader.
    const problems = syncConfigProblems(this.cfg);
    if (problems.length > 0) throw new Error(problems.join('; '));
    const t = transportOf(this.cfg);
    if (t.kind === 'plain-remote')
      this.log(
        'warn',
        `The sync talks plain http:// to ${t.host} (sync.allowInsecureHttp): the enrolment token, this host's credential, its sightings and alerts cross the network readable, and anyone on the path can answer for the server.`,
        { serverUrl: this.cfg.serverUrl },
      );
    this.enrolment = new Enrolment({
      stateDir: opts.stateDir,
      serverUrl: this.cfg.serverUrl,
      hostId: opts.hostId,
      hostName: opts.hostName ?? null,
      token: new TokenSource(this.cfg.enrolTokenEnv, this.cfg.enrolTokenFile, opts.env),
      log: this.log,
      now: this.now,
    });
    this.publicKey = loadPinnedKey(this.cfg);
    this.http = new ServerHttp(this.cfg, opts.stateDir, this.enrolment, this.now);
    this.schedule = new SyncSchedule({ cfg: this.cfg, run: () => void this.syncNow(), now: this.now, random: this.random });
    this.baselineFile = new BaselineFile({ stateDir: opts.stateDir, storeCfg: opts.storeCfg, onBaseline: opts.onBaseline, log: this.log });
    this.snapshot =
      this.mode === 'snapshot'
        ? new SnapshotSync(this.http, this.publicKey as KeyObject, this.baselineFile, opts.stateDir, () =>
            this.enrolment.minBaselineVersion(),
          )
        : null;
    this.st = initialStatus(
      { mode: this.mode, serverUrl: this.cfg.serverUrl, hostId: opts.hostId },
      readSyncStatus(opts.stateDir),
      this.now(),
    );
    this.openLocal();
  }

  /** Puts in force what the state folder holds. */
  private openLocal(): void {
    mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
    removeStaleDownloads(this.opts.stateDir);
    this.enrolment.load();
    if (this.mode !== 'buckets') {
      this.baselineFile.openAtStart();
      return;
    }
    this.cache = new BucketCache(join(this.opts.stateDir, BUCKET_CACHE_FILE), {
      pendingMaxEvents: this.cfg.pendingMaxEvents,
      pendingTimeoutMs: this.cfg.pendingTimeoutMs,
      now: this.now,
    });
    this.buckets = new BucketFetch({
      cfg: this.cfg,
      cache: () => this.cache,
      http: this.http,
      key: this.publicKey as KeyObject,
      ensureCredential: () => this.enrolment.ensure(this.http),
      minVersion: () => this.enrolment.minBaselineVersion(),
      onBaseline: this.opts.onBaseline,
      status: this.st,
      saveStatus: () => this.saveStatus(),
      log: this.log,
      now: this.now,
      random: this.random,
    });
    const buckets = this.buckets;
    this.cache.onWant(() => buckets.schedule());
    const r = this.cache.reader();
    if (r !== null) this.opts.onBaseline?.(r);
  }

  /** The baseline in force, or null when there is none yet. */
  current(): BaselineReader | null {
    if (this.cache !== null) return this.cache.reader();
    return this.baselineFile.reader();
  }

  /** The bucket cache (buckets mode), for holding events whose bucket is on its way. */
  bucketCache(): BucketCache | null {
    return this.cache;
  }

  status(): SyncStatus {
    this.refreshStatus();
    return structuredClone(this.st);
  }

  private refreshStatus(): void {
    const meta = this.current()?.meta() ?? null;
    refreshStatus(
      this.st,
      {
        meta,
        org: this.enrolment.org(),
        buckets: this.cache?.stats() ?? null,
        staleGraceMs: this.mode === 'standalone' ? null : this.cfg.staleGraceMs,
        credentialExpiresMs: this.enrolment.expiresMs(),
      },
      this.now,
    );
  }

  private saveStatus(): void {
    this.refreshStatus();
    try {
      writeSyncStatus(this.opts.stateDir, this.st);
    } catch (e) {
      this.log('warn', 'The sync status could not be saved.', { error: (e as Error).message });
    }
  }

  /** Starts the cron schedule; syncs soon when no baseline is held yet. */
  start(): void {
    if (!this.schedule.start()) return;
    if (this.current() === null || this.st.consecutiveFailures > 0)
      this.retryIn(Math.floor(this.random() * Math.min(this.cfg.jitterMs, 5_000)));
  }

  private retryIn(ms: number): void {
    const at = this.schedule.retryIn(ms);
    if (at !== null) this.st.nextAttemptMs = at;
  }

  /** Stops the schedule and waits for a sync in progress. Safe twice. */
  async stop(): Promise<void> {
    this.buckets?.stop();
    await this.schedule.stop();
    await Promise.allSettled([this.running, this.buckets?.inProgress() ?? null].filter((p) => p !== null));
    this.saveStatus();
  }

  /** Closes what the client opened (after stop()). The reader given to onBaseline is closed too. */
  close(): void {
    this.baselineFile.close();
    this.cache?.close();
    this.cache = null;
  }

  /** Fetches the buckets that lookups or held events asked for; the daemon then takes the held events. */
  fetchWantedNow(): Promise<SyncOutcome> {
    return this.buckets?.fetchWantedNow() ?? Promise.resolve({ ok: true, changed: false, version: null });
  }

  /** Uploads sightings and brings the baseline up to date now (`rarecon sync --now`). */
  syncNow(): Promise<SyncOutcome> {
    if (this.running !== null) return this.running;
    this.running = this.syncOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async syncOnce(): Promise<SyncOutcome> {
    this.st.lastAttemptMs = this.now();
    let r: Changed;
    try {
      r = await this.syncSteps();
    } catch (e) {
      r = fail('internal', `the sync failed: ${(e as Error).message}`);
    }
    if (r.ok) {
      noteSyncSuccess(this.st, this.now());
      this.warnIfStale();
      this.log(r.value.changed ? 'info' : 'debug', r.value.changed ? 'A new baseline is in force.' : 'The baseline is up to date.', {
        mode: this.mode,
        version: this.current()?.meta().version ?? null,
      });
      this.saveStatus();
      return { ok: true, changed: r.value.changed, version: this.current()?.meta().version ?? null };
    }
    noteSyncFailure(this.st, r);
    const wait = retryDelayMs(this.cfg, this.st.consecutiveFailures, r.retryAfterMs, this.random);
    this.log(
      r.refused === true ? 'error' : 'warn',
      r.refused === true
        ? 'A baseline from the server was refused; the one in force stays.'
        : 'The sync failed; the baseline in force stays.',
      { code: r.code, error: r.error, failures: this.st.consecutiveFailures, retryInMs: wait },
    );
    if (this.schedule.active) this.retryIn(wait);
    this.warnIfStale();
    this.saveStatus();
    return { ok: false, code: r.code, error: r.error };
  }

  /** A baseline past the time its server promised a newer one: said at every sync until one comes. */
  private warnIfStale(): void {
    this.refreshStatus();
    if (!this.st.stale) return;
    const meta = this.current()?.meta();
    this.log(
      'warn',
      'No newer baseline has arrived although the server promised one: the server, or something between it and this host, is holding baselines back; scoring goes on with the stale one.',
      {
        version: meta?.version ?? null,
        builtAt: meta === undefined ? null : new Date(meta.builtAtMs).toISOString(),
        dueBy: this.st.baselineDueMs === null ? null : new Date(this.st.baselineDueMs).toISOString(),
        lastError: this.st.lastError,
      },
    );
  }

  private async syncSteps(): Promise<Changed> {
    if (this.mode === 'standalone') {
      return rebuildStandalone({
        cfg: this.cfg,
        store: this.opts.sightings,
        baseline: this.baselineFile,
        thresholds: this.opts.thresholds ?? DEFAULT_THRESHOLDS,
        policy: this.opts.policy ?? DEFAULT_POLICY,
        now: this.now,
      });
    }
    const cred = await this.enrolment.ensure(this.http);
    if (!cred.ok) return cred;
    const up = await uploadSightings(this.opts.sightings, this.http, this.st, this.log);
    if (!up.ok) return up;
    return this.mode === 'snapshot' ? (this.snapshot as SnapshotSync).sync() : (this.buckets as BucketFetch).refresh();
  }
}
