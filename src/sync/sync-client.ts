// The endpoint's side of the baseline server (DETECTION.md sections 8 and 9):
// uploads this host's daily sightings and keeps a baseline in force.
//
//   standalone  no server: the baseline is learnt from this host's own days
//               (observer unit `day`) and rebuilt on the schedule.
//   snapshot    the whole signed baseline file is downloaded to a temp file,
//               verified (pinned Ed25519 key, digest, newer version, policy,
//               metadata, SQLite integrity), then renamed over baseline.db.
//   buckets     only the buckets of the sha256 this host has seen, in the
//               bucket cache, refreshed with signed changes since its version.
//
// Whatever fails — the network, the server (500, hanging), a refused baseline
// (unsigned, wrong key, tampered, truncated, replayed older, other policy) —
// the baseline in force stays, the error is in status(), and the next try
// waits with exponential backoff and jitter. A crash at any point leaves the
// old baseline usable: the switch is a rename or one SQLite transaction.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createHash, type KeyObject } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import cron, { type ScheduledTask } from 'node-cron';
import type { BaselineReader, RootDomainPolicy, TierThresholds } from '../model/baseline.js';
import { DEFAULT_BASELINE_STORE, DEFAULT_THRESHOLDS, type BaselineStoreConfig } from '../config/defaults.js';
import { DEFAULT_POLICY, policyProblem } from '../model/root-domain.js';
import { backoffDelayMs, parseRetryAfterMs } from '../common/backoff.js';
import { TokenSource } from '../common/token-source.js';
import type { LogFn } from '../common/log.js';
import { openBaseline, type SqliteBaseline } from '../baseline/store.js';
import { BucketCache, type ApplyPurpose } from './bucket-cache.js';
import {
  canonicalJson,
  checkContent,
  MAX_ENVELOPE_LINE_BYTES,
  parsePublicKey,
  verifyEnvelope,
  type SignedHeader,
} from '../baseline/signature.js';
import { buildStandaloneBaseline, type SightingsStore } from './sightings-store.js';
import type { SyncConfig } from '../config/defaults.js';
import { writeSecretFile } from '../common/secrets.js';

export const BASELINE_FILE = 'baseline.db';
export const BUCKET_CACHE_FILE = 'bucket-cache.db';
export const CREDENTIAL_FILE = 'server-credential.json';

/**
 * The credential this host got from the server at `serverUrl` when it enrolled
 * (kept in the state folder), for other clients of the same server (the alert
 * sink). An error says why there is none.
 */
export function readHostCredential(stateDir: string, serverUrl: string): { ok: true; value: string } | { ok: false; error: string } {
  try {
    const c = JSON.parse(readFileSync(join(stateDir, CREDENTIAL_FILE), 'utf8')) as Partial<Credential>;
    if (c.serverUrl !== serverUrl || typeof c.credential !== 'string')
      return { ok: false, error: `this host is not enrolled with ${serverUrl} yet` };
    return { ok: true, value: c.credential };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      error:
        code === 'ENOENT'
          ? `this host is not enrolled with ${serverUrl} yet`
          : `cannot read its credential: ${code ?? (err as Error).message}`,
    };
  }
}
export const SYNC_STATUS_FILE = 'sync-status.json';
const DOWNLOAD_PREFIX = 'sync-download-';

export type SyncMode = 'standalone' | 'snapshot' | 'buckets';

export interface SyncStatus {
  mode: SyncMode;
  serverUrl: string | null;
  org: string | null;
  hostId: string;
  version: number | null;
  builtAtMs: number | null;
  /** Now minus the baseline's built-at time. */
  ageMs: number | null;
  windowStartMs: number | null;
  windowEndMs: number | null;
  lastAttemptMs: number | null;
  lastSuccessMs: number | null;
  lastError: string | null;
  lastErrorCode: string | null;
  consecutiveFailures: number;
  nextAttemptMs: number | null;
  syncedTotal: number;
  failedTotal: number;
  refusedTotal: number;
  uploadedDaysTotal: number;
  uploadRejectedDaysTotal: number;
  buckets: {
    cached: number;
    pending: number;
    heldTotal: number;
    releasedTotal: number;
    expiredTotal: number;
    droppedTotal: number;
    sizeBytes: number;
  } | null;
  updatedMs: number;
}

export type SyncOutcome = { ok: true; changed: boolean; version: number | null } | { ok: false; code: string; error: string };

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

interface Credential {
  serverUrl: string;
  org: string;
  hostId: string;
  credential: string;
  enrolledMs: number;
}

type Fail = { ok: false; code: string; error: string; retryAfterMs?: number; refused?: boolean };
type Step<T> = { ok: true; value: T } | Fail;

interface Download {
  status: number;
  headers: IncomingMessage['headers'];
  /** Non-signed answers (errors, JSON), at most 1 MiB. */
  body: Buffer | null;
  signed: { envelope: Buffer; file: string; sha256: string; bytes: number } | null;
}

function fail(code: string, error: string, extra: Partial<Fail> = {}): Fail {
  return { ok: false, code, error, ...extra };
}

function errorMessage(body: Buffer | null): string {
  if (body === null) return '';
  try {
    const j = JSON.parse(body.toString('utf8')) as { error?: { message?: string } };
    return j.error?.message ?? body.toString('utf8').slice(0, 200);
  } catch {
    return body.toString('utf8').slice(0, 200);
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not every file system lets a folder be fsynced
  }
}

/** The last status a sync client wrote (for `rarecon status` in another process); null when none. */
export function readSyncStatus(stateDir: string): SyncStatus | null {
  try {
    return JSON.parse(readFileSync(join(stateDir, SYNC_STATUS_FILE), 'utf8')) as SyncStatus;
  } catch {
    return null;
  }
}

export class SyncClient {
  readonly mode: SyncMode;
  private readonly cfg: SyncConfig;
  private readonly log: LogFn;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly publicKey: KeyObject | null;
  private readonly enrolToken: TokenSource;
  private readonly tls: { ca?: Buffer; servername?: string };
  private snapshot: SqliteBaseline | null = null;
  private cache: BucketCache | null = null;
  private credential: Credential | null = null;
  private running: Promise<SyncOutcome> | null = null;
  private fetchingBuckets: Promise<SyncOutcome> | null = null;
  private bucketTimer: NodeJS.Timeout | null = null;
  private bucketFailures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private jitterTimer: NodeJS.Timeout | null = null;
  private task: ScheduledTask | null = null;
  private stopped = false;
  private downloads = 0;
  private st: SyncStatus;

  /** Throws for configuration failures (no public key with a server, unreadable CA file). */
  constructor(private readonly opts: SyncClientOptions) {
    this.cfg = opts.cfg;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.mode = this.cfg.serverUrl === null ? 'standalone' : this.cfg.mode;
    this.enrolToken = new TokenSource(this.cfg.enrolTokenEnv, this.cfg.enrolTokenFile, opts.env);
    if (this.cfg.serverUrl !== null) {
      let text = this.cfg.serverPublicKey;
      if (text === null && this.cfg.serverPublicKeyFile !== null) {
        try {
          text = readFileSync(this.cfg.serverPublicKeyFile, 'utf8');
        } catch (e) {
          throw new Error(
            `sync.serverPublicKeyFile ${this.cfg.serverPublicKeyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          );
        }
      }
      if (text === null) throw new Error('sync.serverPublicKey is required with sync.serverUrl: the endpoint refuses unsigned baselines');
      const k = parsePublicKey(text);
      if (!k.ok) throw new Error(`sync.serverPublicKey: ${k.error}`);
      this.publicKey = k.key;
    } else {
      this.publicKey = null;
    }
    this.tls = {};
    if (this.cfg.caFile !== null) {
      try {
        this.tls.ca = readFileSync(this.cfg.caFile);
      } catch (e) {
        throw new Error(`sync.caFile ${this.cfg.caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (this.cfg.serverName !== null) this.tls.servername = this.cfg.serverName;
    const prev = readSyncStatus(opts.stateDir);
    this.st = {
      mode: this.mode,
      serverUrl: this.cfg.serverUrl,
      org: null,
      hostId: opts.hostId,
      version: null,
      builtAtMs: null,
      ageMs: null,
      windowStartMs: null,
      windowEndMs: null,
      lastAttemptMs: prev?.lastAttemptMs ?? null,
      lastSuccessMs: prev?.lastSuccessMs ?? null,
      lastError: prev?.lastError ?? null,
      lastErrorCode: prev?.lastErrorCode ?? null,
      consecutiveFailures: prev?.consecutiveFailures ?? 0,
      nextAttemptMs: null,
      syncedTotal: prev?.syncedTotal ?? 0,
      failedTotal: prev?.failedTotal ?? 0,
      refusedTotal: prev?.refusedTotal ?? 0,
      uploadedDaysTotal: prev?.uploadedDaysTotal ?? 0,
      uploadRejectedDaysTotal: prev?.uploadRejectedDaysTotal ?? 0,
      buckets: null,
      updatedMs: this.now(),
    };
    this.openLocal();
  }

  // -------------------------------------------------------------------------
  // What is in force

  private openLocal(): void {
    mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
    // Downloads a crash left behind are never trusted.
    for (const name of readdirSync(this.opts.stateDir, { withFileTypes: true })) {
      if (name.isFile() && name.name.startsWith(DOWNLOAD_PREFIX)) rmSync(join(this.opts.stateDir, name.name), { force: true });
    }
    this.credential = this.readCredential();
    if (this.mode === 'buckets') {
      this.cache = new BucketCache(join(this.opts.stateDir, BUCKET_CACHE_FILE), {
        pendingMaxEvents: this.cfg.pendingMaxEvents,
        pendingTimeoutMs: this.cfg.pendingTimeoutMs,
        now: this.now,
      });
      this.cache.onWant(() => this.scheduleBucketFetch());
      const r = this.cache.reader();
      if (r !== null) this.opts.onBaseline?.(r);
    } else {
      const path = join(this.opts.stateDir, BASELINE_FILE);
      try {
        statSync(path);
      } catch {
        this.refreshStatus();
        return;
      }
      const o = openBaseline(path, this.opts.storeCfg ?? DEFAULT_BASELINE_STORE);
      if (o.ok) {
        this.snapshot = o.baseline;
        this.opts.onBaseline?.(o.baseline);
      } else {
        this.log('error', 'The baseline on disk cannot be opened; scoring waits for the next sync.', { path, error: o.error });
      }
    }
    this.refreshStatus();
  }

  /** The baseline in force, or null when there is none yet. */
  current(): BaselineReader | null {
    if (this.cache !== null) return this.cache.reader();
    return this.snapshot;
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
    this.st.org = this.credential?.org ?? null;
    this.st.version = meta?.version ?? null;
    this.st.builtAtMs = meta?.builtAtMs ?? null;
    this.st.ageMs = meta === null ? null : Math.max(0, this.now() - meta.builtAtMs);
    this.st.windowStartMs = meta?.windowStartMs ?? null;
    this.st.windowEndMs = meta?.windowEndMs ?? null;
    if (this.cache !== null) {
      const s = this.cache.stats();
      this.st.buckets = {
        cached: s.buckets,
        pending: s.pending,
        heldTotal: s.heldTotal,
        releasedTotal: s.releasedTotal,
        expiredTotal: s.expiredTotal,
        droppedTotal: s.droppedTotal,
        sizeBytes: s.sizeBytes,
      };
    }
    this.st.updatedMs = this.now();
  }

  private saveStatus(): void {
    this.refreshStatus();
    try {
      const path = join(this.opts.stateDir, SYNC_STATUS_FILE);
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(this.st, null, 2) + '\n', { mode: 0o644 });
      renameSync(tmp, path);
    } catch (e) {
      this.log('warn', 'The sync status could not be saved.', { error: (e as Error).message });
    }
  }

  // -------------------------------------------------------------------------
  // Schedule

  /** Starts the cron schedule; syncs soon when no baseline is held yet. */
  start(): void {
    if (this.task !== null || this.stopped) return;
    if (!cron.validate(this.cfg.syncCron)) throw new Error(`sync.syncCron "${this.cfg.syncCron}" is not a cron expression`);
    this.task = cron.schedule(
      this.cfg.syncCron,
      () => {
        if (this.jitterTimer !== null) return;
        this.jitterTimer = setTimeout(
          () => {
            this.jitterTimer = null;
            void this.syncNow();
          },
          Math.floor(this.random() * this.cfg.jitterMs),
        );
        this.jitterTimer.unref();
      },
      { timezone: 'UTC', noOverlap: true },
    );
    if (this.current() === null || this.st.consecutiveFailures > 0)
      this.retryIn(Math.floor(this.random() * Math.min(this.cfg.jitterMs, 5_000)));
  }

  private retryIn(ms: number): void {
    if (this.stopped) return;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.st.nextAttemptMs = this.now() + ms;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.syncNow();
    }, ms);
    this.retryTimer.unref();
  }

  /** Stops the schedule and waits for a sync in progress. Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.retryTimer, this.jitterTimer, this.bucketTimer]) if (t !== null) clearTimeout(t);
    if (this.task !== null) {
      await this.task.stop();
      await this.task.destroy();
      this.task = null;
    }
    await Promise.allSettled([this.running, this.fetchingBuckets].filter((p) => p !== null));
    this.saveStatus();
  }

  /** Closes what the client opened (after stop()). The reader given to onBaseline is closed too. */
  close(): void {
    this.snapshot?.close();
    this.snapshot = null;
    this.cache?.close();
    this.cache = null;
  }

  // -------------------------------------------------------------------------
  // One sync

  /** Uploads sightings and brings the baseline up to date now (`rarecon sync --now`). */
  syncNow(): Promise<SyncOutcome> {
    if (this.running !== null) return this.running;
    this.running = this.syncOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async syncOnce(): Promise<SyncOutcome> {
    const started = this.now();
    this.st.lastAttemptMs = started;
    let r: Step<{ changed: boolean }>;
    try {
      r = await this.syncSteps();
    } catch (e) {
      r = fail('internal', `the sync failed: ${(e as Error).message}`);
    }
    if (r.ok) {
      this.st.lastSuccessMs = this.now();
      this.st.consecutiveFailures = 0;
      this.st.lastError = null;
      this.st.lastErrorCode = null;
      this.st.syncedTotal++;
      this.st.nextAttemptMs = null;
      this.log(r.value.changed ? 'info' : 'debug', r.value.changed ? 'A new baseline is in force.' : 'The baseline is up to date.', {
        mode: this.mode,
        version: this.current()?.meta().version ?? null,
      });
      this.saveStatus();
      return { ok: true, changed: r.value.changed, version: this.current()?.meta().version ?? null };
    }
    this.st.consecutiveFailures++;
    this.st.failedTotal++;
    if (r.refused === true) this.st.refusedTotal++;
    this.st.lastError = r.error;
    this.st.lastErrorCode = r.code;
    const wait = backoffDelayMs(
      this.st.consecutiveFailures,
      { initialMs: this.cfg.backoffInitialMs, maxMs: this.cfg.backoffMaxMs, maxRetryAfterMs: this.cfg.backoffMaxMs },
      r.retryAfterMs,
      this.random,
    );
    this.log(
      r.refused === true ? 'error' : 'warn',
      r.refused === true
        ? 'A baseline from the server was refused; the one in force stays.'
        : 'The sync failed; the baseline in force stays.',
      {
        code: r.code,
        error: r.error,
        failures: this.st.consecutiveFailures,
        retryInMs: wait,
      },
    );
    if (this.task !== null) this.retryIn(wait);
    this.saveStatus();
    return { ok: false, code: r.code, error: r.error };
  }

  private async syncSteps(): Promise<Step<{ changed: boolean }>> {
    if (this.mode === 'standalone') return this.rebuildStandalone();
    const cred = await this.ensureCredential();
    if (!cred.ok) return cred;
    const up = await this.uploadSightings();
    if (!up.ok) return up;
    return this.mode === 'snapshot' ? this.syncSnapshot() : this.syncBuckets();
  }

  private rebuildStandalone(): Step<{ changed: boolean }> {
    const store = this.opts.sightings;
    if (store === null || store === undefined) return fail('no-sightings', 'standalone mode needs the sightings store of this host');
    const nowMs = this.now();
    const prev = this.snapshot?.meta().version ?? 0;
    const path = join(this.opts.stateDir, BASELINE_FILE);
    const r = buildStandaloneBaseline(store, {
      outPath: path,
      windowDays: this.cfg.standaloneWindowDays,
      thresholds: this.opts.thresholds ?? DEFAULT_THRESHOLDS,
      policy: this.opts.policy ?? DEFAULT_POLICY,
      nowMs,
      version: Math.max(prev + 1, nowMs),
    });
    if (!r.ok) return fail('build-failed', r.error);
    store.prune(nowMs - this.cfg.sightingsRetentionDays * 86_400_000);
    return this.switchTo(path);
  }

  private switchTo(path: string): Step<{ changed: boolean }> {
    const o = openBaseline(path, this.opts.storeCfg ?? DEFAULT_BASELINE_STORE);
    if (!o.ok) return fail(o.code, o.error);
    const old = this.snapshot;
    this.snapshot = o.baseline;
    this.opts.onBaseline?.(o.baseline);
    old?.close();
    return { ok: true, value: { changed: true } };
  }

  // -------------------------------------------------------------------------
  // Enrolment and uploads

  private readCredential(): Credential | null {
    try {
      const c = JSON.parse(readFileSync(join(this.opts.stateDir, CREDENTIAL_FILE), 'utf8')) as Credential;
      if (c.serverUrl !== this.cfg.serverUrl || c.hostId !== this.opts.hostId || typeof c.credential !== 'string') return null;
      return c;
    } catch {
      return null;
    }
  }

  private async ensureCredential(): Promise<Step<Credential>> {
    if (this.credential !== null) return { ok: true, value: this.credential };
    const token = this.enrolToken.get();
    if (token === null)
      return fail(
        'not-enrolled',
        'this host is not enrolled and no enrolment token is configured (sync.enrolTokenEnv or sync.enrolTokenFile)',
      );
    if (!token.ok) return fail('not-enrolled', token.error);
    const r = await this.call(
      'POST',
      '/v1/enroll',
      { token: token.value, hostId: this.opts.hostId, hostName: this.opts.hostName ?? null },
      false,
    );
    if (!r.ok) return r;
    if (r.value.status !== 200 || r.value.body === null) return this.httpFailure(r.value, 'enrolment');
    const j = JSON.parse(r.value.body.toString('utf8')) as { org: string; credential: string; keyId: string };
    const cred: Credential = {
      serverUrl: this.cfg.serverUrl as string,
      org: j.org,
      hostId: this.opts.hostId,
      credential: j.credential,
      enrolledMs: this.now(),
    };
    writeSecretFile(join(this.opts.stateDir, CREDENTIAL_FILE), JSON.stringify(cred) + '\n');
    this.credential = cred;
    this.log('info', 'This host enrolled with the baseline server.', { org: j.org, hostId: this.opts.hostId, serverKeyId: j.keyId });
    return { ok: true, value: cred };
  }

  private async uploadSightings(): Promise<Step<null>> {
    const store = this.opts.sightings;
    if (store === null || store === undefined) return { ok: true, value: null };
    for (const dayMs of store.daysToUpload()) {
      const d = store.dayUpload(dayMs);
      const r = await this.call('POST', '/v1/sightings', { days: [{ day: d.day, processes: d.processes, combos: d.combos }] }, true);
      if (!r.ok) return r;
      const { status } = r.value;
      if (status === 200) {
        store.markUploaded(dayMs, d.changes);
        this.st.uploadedDaysTotal++;
      } else if (status === 400 || status === 413) {
        // Sending it again would be refused again: counted, logged, not retried.
        store.markUploaded(dayMs, d.changes);
        this.st.uploadRejectedDaysTotal++;
        this.log('error', 'The server refused a day of sightings; it will not be sent again.', {
          day: d.day,
          status,
          error: errorMessage(r.value.body),
        });
      } else {
        return this.httpFailure(r.value, 'sightings upload');
      }
    }
    return { ok: true, value: null };
  }

  // -------------------------------------------------------------------------
  // Snapshot mode

  private async syncSnapshot(): Promise<Step<{ changed: boolean }>> {
    const cur = this.snapshot?.meta() ?? null;
    const headers: Record<string, string> = cur === null ? {} : { 'if-none-match': `"s${cur.version}"` };
    const r = await this.call('GET', '/v1/baseline/snapshot', undefined, true, headers);
    if (!r.ok) return r;
    const d = r.value;
    if (d.status === 304) return { ok: true, value: { changed: false } };
    if (d.status !== 200) return this.httpFailure(d, 'snapshot download');
    if (d.signed === null) return fail('unsigned', 'the snapshot is not signed', { refused: true });
    const file = d.signed.file;
    try {
      const v = this.verify(d.signed, 'snapshot');
      if (!v.ok) return v;
      const h = v.value;
      if (cur !== null && h.meta.version <= cur.version) {
        return fail('older', `refused: snapshot version ${h.meta.version} is not newer than the version ${cur.version} in force`, {
          refused: true,
        });
      }
      const o = openBaseline(file, this.opts.storeCfg ?? DEFAULT_BASELINE_STORE);
      if (!o.ok) return fail(o.code === 'policy' ? 'policy' : 'bad-snapshot', `refused: ${o.error}`, { refused: true });
      const sameMeta = canonicalJson(o.baseline.meta()) === canonicalJson(h.meta);
      const integrity = sameMeta ? o.baseline.integrityProblem() : null;
      o.baseline.close();
      if (!sameMeta) return fail('bad-snapshot', 'refused: the file does not hold the metadata its signature names', { refused: true });
      if (integrity !== null) return fail('bad-snapshot', `refused: ${integrity}`, { refused: true });
      const fd = openSync(file, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const target = join(this.opts.stateDir, BASELINE_FILE);
      renameSync(file, target);
      fsyncDir(this.opts.stateDir);
      return this.switchTo(target);
    } finally {
      rmSync(file, { force: true });
    }
  }

  private verify(signed: NonNullable<Download['signed']>, kind: SignedHeader['kind']): Step<SignedHeader> {
    const env = verifyEnvelope(signed.envelope, this.publicKey as KeyObject);
    if (!env.ok) return fail(env.code, `refused: ${env.error}`, { refused: true });
    const c = checkContent(env.header, signed.sha256, signed.bytes);
    if (!c.ok) return fail(c.code, `refused: ${c.error}`, { refused: true });
    if (env.header.kind !== kind) return fail('wrong-kind', `refused: expected a ${kind}, got a ${env.header.kind}`, { refused: true });
    const p = policyProblem(env.header.meta.policy);
    if (p !== null) return fail('policy', `refused: ${p}`, { refused: true });
    return { ok: true, value: env.header };
  }

  // -------------------------------------------------------------------------
  // Buckets mode

  private async syncBuckets(): Promise<Step<{ changed: boolean }>> {
    const cache = this.cache as BucketCache;
    cache.flushUsage(this.now() - this.cfg.bucketIdleMs);
    const held = cache.cachedKeys();
    const since = cache.version();
    let changed = false;
    // A refresh of what is cached (or, with nothing cached, the signed metadata alone).
    const r = await this.fetchBuckets(held, since, 'refresh');
    if (!r.ok) return r;
    changed ||= r.value;
    const wanted = cache.wantedKeys();
    if (wanted.length > 0) {
      const w = await this.fetchBuckets(wanted, null, 'new-buckets');
      if (!w.ok) return w;
      changed ||= w.value;
    }
    if (changed) {
      const reader = cache.reader();
      if (reader !== null) this.opts.onBaseline?.(reader);
    }
    return { ok: true, value: { changed } };
  }

  private async fetchBuckets(prefixes: string[], since: number | null, purpose: ApplyPurpose): Promise<Step<boolean>> {
    const cache = this.cache as BucketCache;
    // The signed header lists every key: 1,000 cell keys keep it near 100 KB.
    const chunk = 1_000;
    let changed = false;
    for (let i = 0; i === 0 || i < prefixes.length; i += chunk) {
      const part = prefixes.slice(i, i + chunk);
      const r = await this.call('POST', '/v1/baseline/buckets', { prefixes: part, since }, true);
      if (!r.ok) return r;
      const d = r.value;
      if (d.status === 304) continue;
      if (d.status !== 200) return this.httpFailure(d, 'bucket fetch');
      if (d.signed === null) return fail('unsigned', 'refused: the buckets are not signed', { refused: true });
      try {
        const v = this.verify(d.signed, 'buckets');
        if (!v.ok) return v;
        const want = new Set(part);
        if (!(v.value.prefixes ?? []).every((p) => want.has(p)) || (v.value.prefixes ?? []).length !== want.size) {
          return fail('bad-content', 'refused: the signed answer covers other buckets than asked for', { refused: true });
        }
        let content: unknown;
        try {
          content = JSON.parse(readFileSync(d.signed.file, 'utf8'));
        } catch {
          return fail('bad-content', 'refused: the bucket content is not JSON', { refused: true });
        }
        const a = cache.apply(v.value, content, purpose);
        if (!a.ok) return fail(a.code, a.error, { refused: true });
        changed = true;
      } finally {
        rmSync(d.signed.file, { force: true });
      }
    }
    return { ok: true, value: changed };
  }

  private scheduleBucketFetch(): void {
    if (this.stopped || this.bucketTimer !== null || this.fetchingBuckets !== null) return;
    const wait =
      this.bucketFailures === 0
        ? this.cfg.bucketFetchLingerMs
        : backoffDelayMs(
            this.bucketFailures,
            { initialMs: this.cfg.backoffInitialMs, maxMs: this.cfg.backoffMaxMs, maxRetryAfterMs: this.cfg.backoffMaxMs },
            undefined,
            this.random,
          );
    this.bucketTimer = setTimeout(() => {
      this.bucketTimer = null;
      void this.fetchWantedNow();
    }, wait);
    this.bucketTimer.unref();
  }

  /** Fetches the buckets that lookups or held events asked for; the daemon then takes the held events. */
  fetchWantedNow(): Promise<SyncOutcome> {
    if (this.fetchingBuckets !== null) return this.fetchingBuckets;
    this.fetchingBuckets = (async (): Promise<SyncOutcome> => {
      const cache = this.cache;
      if (cache === null) return { ok: true, changed: false, version: null };
      const wanted = cache.wantedKeys();
      if (wanted.length === 0) return { ok: true, changed: false, version: cache.meta()?.version ?? null };
      const cred = await this.ensureCredential();
      const r = cred.ok ? await this.fetchBuckets(wanted, null, 'new-buckets') : cred;
      if (!r.ok) {
        this.bucketFailures++;
        this.st.lastError = r.error;
        this.st.lastErrorCode = r.code;
        if (r.refused === true) this.st.refusedTotal++;
        this.log('warn', 'Buckets for newly seen processes could not be fetched; their events stay held.', {
          code: r.code,
          error: r.error,
          buckets: wanted.length,
        });
        this.saveStatus();
        return { ok: false, code: r.code, error: r.error };
      }
      this.bucketFailures = 0;
      const reader = cache.reader();
      if (reader !== null) this.opts.onBaseline?.(reader);
      return { ok: true, changed: true, version: cache.meta()?.version ?? null };
    })().finally(() => {
      this.fetchingBuckets = null;
      if ((this.cache?.wantedKeys().length ?? 0) > 0) this.scheduleBucketFetch();
    });
    return this.fetchingBuckets;
  }

  // -------------------------------------------------------------------------
  // HTTP

  private httpFailure(d: Download, what: string): Fail {
    const msg = errorMessage(d.body);
    const retryAfterMs = parseRetryAfterMs(d.headers['retry-after'] as string | undefined, this.now());
    if (d.status === 401) {
      // The credential is unknown there (server reset, or rotated): enrol again next time.
      this.credential = null;
      rmSync(join(this.opts.stateDir, CREDENTIAL_FILE), { force: true });
      return fail('unauthenticated', `${what}: the server does not know this host's credential (${msg}); it will enrol again`);
    }
    if (d.status === 403) return fail('revoked', `${what}: the server refuses this host (${msg})`);
    return fail(
      `http-${d.status}`,
      `${what}: the server answered ${d.status}${msg === '' ? '' : ` (${msg})`}`,
      retryAfterMs === undefined ? {} : { retryAfterMs },
    );
  }

  private call(
    method: string,
    path: string,
    body: unknown,
    auth: boolean,
    extraHeaders: Record<string, string> = {},
  ): Promise<Step<Download>> {
    const base = new URL(this.cfg.serverUrl as string);
    const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base.href : `${base.href}/`);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string> = { 'accept-encoding': 'gzip', ...extraHeaders };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (auth && this.credential !== null) headers.authorization = `Bearer ${this.credential.credential}`;
    const isHttps = url.protocol === 'https:';
    const requestFn = isHttps ? httpsRequest : httpRequest;
    const timeoutMs = this.cfg.requestTimeoutMs;
    const maxBytes = this.cfg.maxDownloadBytes;
    return new Promise((resolve) => {
      let settled = false;
      const tmpFiles: string[] = [];
      const finish = (r: Step<Download>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (!r.ok) for (const f of tmpFiles) rmSync(f, { force: true });
        resolve(r);
      };
      // A fresh connection each time: a kept-alive socket the server has just closed fails as "socket hang up".
      const req = requestFn(url, { method, headers, agent: false, ...(isHttps ? this.tls : {}) }, (res) => {
        const status = res.statusCode ?? 0;
        const source: Readable = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
        const signedType = String(res.headers['content-type'] ?? '').startsWith('application/x-rarecon-signed');
        if (!signedType || status !== 200) {
          const chunks: Buffer[] = [];
          let size = 0;
          source.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 1024 * 1024) chunks.push(c);
          });
          source.on('end', () => finish({ ok: true, value: { status, headers: res.headers, body: Buffer.concat(chunks), signed: null } }));
          source.on('error', (e) => finish(fail('network', `${method} ${url.pathname}: ${e.message}`)));
          res.on('aborted', () => finish(fail('network', `${method} ${url.pathname}: the connection was cut mid-answer`)));
          return;
        }
        // Signed: the envelope line in memory, the content to a temp file, hashed on the way.
        const file = join(this.opts.stateDir, `${DOWNLOAD_PREFIX}${process.pid}-${++this.downloads}`);
        tmpFiles.push(file);
        const out = createWriteStream(file, { mode: 0o600 });
        const hash = createHash('sha256');
        let envelope: Buffer | null = null;
        let head: Buffer[] = [];
        let headBytes = 0;
        let bytes = 0;
        let failed = false;
        const bad = (f: Fail): void => {
          failed = true;
          source.destroy();
          out.destroy();
          finish(f);
        };
        source.on('data', (c: Buffer) => {
          if (failed) return;
          let rest = c;
          if (envelope === null) {
            const nl = c.indexOf(0x0a);
            if (nl < 0) {
              head.push(c);
              headBytes += c.length;
              if (headBytes > MAX_ENVELOPE_LINE_BYTES)
                bad(fail('unsigned', 'refused: the answer does not start with a signature envelope', { refused: true }));
              return;
            }
            envelope = Buffer.concat([...head, c.subarray(0, nl)]);
            head = [];
            rest = c.subarray(nl + 1);
          }
          bytes += rest.length;
          if (bytes > maxBytes) {
            bad(fail('too-large', `the download passed the limit of ${maxBytes} bytes (sync.maxDownloadBytes)`));
            return;
          }
          hash.update(rest);
          if (!out.write(rest)) {
            source.pause();
            out.once('drain', () => source.resume());
          }
        });
        source.on('end', () => {
          if (failed) return;
          out.end(() => {
            if (envelope === null) {
              finish(fail('unsigned', 'refused: the answer carries no signature envelope', { refused: true }));
              return;
            }
            finish({
              ok: true,
              value: { status, headers: res.headers, body: null, signed: { envelope, file, sha256: hash.digest('hex'), bytes } },
            });
          });
        });
        const cut = (why: string): void => {
          if (failed || settled) return;
          // What arrived is kept for the check: a truncated download is refused by its digest.
          out.end(() => {
            if (envelope === null) finish(fail('network', `${method} ${url.pathname}: ${why}`));
            else
              finish({
                ok: true,
                value: { status, headers: res.headers, body: null, signed: { envelope, file, sha256: hash.digest('hex'), bytes } },
              });
          });
        };
        source.on('error', (e) => cut(e.message));
        res.on('aborted', () => cut('the connection was cut mid-download'));
      });
      // Idle sockets and a hanging server end in a timeout, retried with backoff.
      req.setTimeout(timeoutMs, () => {
        req.destroy(new Error(`no answer for ${timeoutMs} ms`));
      });
      const deadline = setTimeout(() => req.destroy(new Error(`not done after ${timeoutMs * 10} ms`)), timeoutMs * 10);
      deadline.unref();
      req.on('error', (e) =>
        finish(fail(/no answer|not done/.test(e.message) ? 'timeout' : 'network', `${method} ${url.pathname}: ${e.message}`)),
      );
      req.end(payload);
    });
  }
}
