// Buckets mode: what the bucket cache holds is refreshed with the signed
// changes since its version on the sync schedule, and the buckets and cells
// that lookups or held events want are fetched soon after they are first
// wanted (lingering briefly so one request carries many), with backoff while
// the server fails. Each signed answer must cover exactly the keys asked for.
import type { KeyObject } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import type { BaselineReader } from '../model/baseline.js';
import type { SyncConfig } from '../config/defaults.js';
import type { LogFn } from '../common/log.js';
import type { ApplyPurpose, BucketCache } from './bucket-cache.js';
import type { ServerCalls } from './http-client.js';
import { retryDelayMs } from './schedule.js';
import { verifySigned } from './signed-answer.js';
import type { SyncStatus } from './status.js';
import { fail, olderThanEnrolment, type Changed, type Step, type SyncOutcome } from './step.js';

/** The signed header lists every key: 1,000 cell keys keep it near 100 KB. */
const KEYS_PER_REQUEST = 1_000;

export interface BucketFetchOptions {
  cfg: Pick<SyncConfig, 'bucketIdleMs' | 'bucketFetchLingerMs' | 'backoffInitialMs' | 'backoffMaxMs'>;
  /** The cache; null once the client closed it. */
  cache: () => BucketCache | null;
  http: ServerCalls;
  key: KeyObject;
  ensureCredential: () => Promise<Step<unknown>>;
  /** The oldest version this host takes (named by the server at enrolment). */
  minVersion: () => number | null;
  onBaseline?: (reader: BaselineReader) => void;
  /** Where a failed fetch of wanted keys shows. */
  status: Pick<SyncStatus, 'lastError' | 'lastErrorCode' | 'refusedTotal'>;
  saveStatus: () => void;
  log: LogFn;
  now: () => number;
  random: () => number;
}

export class BucketFetch {
  private fetching: Promise<SyncOutcome> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopped = false;

  constructor(private readonly opts: BucketFetchOptions) {}

  /** The scheduled sync's part: refresh what is cached, then fetch what is wanted. */
  async refresh(): Promise<Changed> {
    const cache = this.opts.cache() as BucketCache;
    cache.flushUsage(this.opts.now() - this.opts.cfg.bucketIdleMs);
    const held = cache.cachedKeys();
    const since = cache.version();
    let changed = false;
    // A refresh of what is cached (or, with nothing cached, the signed metadata alone).
    const r = await this.fetch(held, since, 'refresh');
    if (!r.ok) return r;
    changed ||= r.value;
    const wanted = cache.wantedKeys();
    if (wanted.length > 0) {
      const w = await this.fetch(wanted, null, 'new-buckets');
      if (!w.ok) return w;
      changed ||= w.value;
    }
    if (changed) {
      const reader = cache.reader();
      if (reader !== null) this.opts.onBaseline?.(reader);
    }
    return { ok: true, value: { changed } };
  }

  /** Fetches `keys` (complete, or changes since `since`) and applies them; true when anything was applied. */
  private async fetch(keys: string[], since: number | null, purpose: ApplyPurpose): Promise<Step<boolean>> {
    const cache = this.opts.cache() as BucketCache;
    let changed = false;
    // With no keys, one request still runs: it brings the signed metadata.
    for (let i = 0; i === 0 || i < keys.length; i += KEYS_PER_REQUEST) {
      const part = keys.slice(i, i + KEYS_PER_REQUEST);
      const r = await this.opts.http.call('POST', '/v1/baseline/buckets', { prefixes: part, since }, true);
      if (!r.ok) return r;
      const d = r.value;
      if (d.status === 304) continue;
      if (d.status !== 200) return this.opts.http.failure(d, 'bucket fetch');
      if (d.signed === null) return fail('unsigned', 'refused: the buckets are not signed', { refused: true });
      try {
        const v = verifySigned(this.opts.key, d.signed, 'buckets');
        if (!v.ok) return v;
        const floor = this.opts.minVersion();
        if (floor !== null && v.value.meta.version < floor) return olderThanEnrolment(v.value.meta.version, floor);
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

  /** Sets the timer for fetching what is wanted (the cache's onWant listener); one at a time. */
  schedule(): void {
    if (this.stopped || this.timer !== null || this.fetching !== null) return;
    const wait =
      this.failures === 0 ? this.opts.cfg.bucketFetchLingerMs : retryDelayMs(this.opts.cfg, this.failures, undefined, this.opts.random);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.fetchWantedNow();
    }, wait);
    this.timer.unref();
  }

  /** Fetches the buckets that lookups or held events asked for; the daemon then takes the held events. */
  fetchWantedNow(): Promise<SyncOutcome> {
    if (this.fetching !== null) return this.fetching;
    this.fetching = this.fetchWanted().finally(() => {
      this.fetching = null;
      if ((this.opts.cache()?.wantedKeys().length ?? 0) > 0) this.schedule();
    });
    return this.fetching;
  }

  private async fetchWanted(): Promise<SyncOutcome> {
    const cache = this.opts.cache();
    if (cache === null) return { ok: true, changed: false, version: null };
    const wanted = cache.wantedKeys();
    if (wanted.length === 0) return { ok: true, changed: false, version: cache.meta()?.version ?? null };
    const cred = await this.opts.ensureCredential();
    const r = cred.ok ? await this.fetch(wanted, null, 'new-buckets') : cred;
    if (!r.ok) {
      this.failures++;
      const st = this.opts.status;
      st.lastError = r.error;
      st.lastErrorCode = r.code;
      if (r.refused === true) st.refusedTotal++;
      this.opts.log('warn', 'Buckets for newly seen processes could not be fetched; their events stay held.', {
        code: r.code,
        error: r.error,
        buckets: wanted.length,
      });
      this.opts.saveStatus();
      return { ok: false, code: r.code, error: r.error };
    }
    this.failures = 0;
    const reader = cache.reader();
    if (reader !== null) this.opts.onBaseline?.(reader);
    return { ok: true, changed: true, version: cache.meta()?.version ?? null };
  }

  /** A fetch in progress, for stop() to wait on. */
  inProgress(): Promise<SyncOutcome> | null {
    return this.fetching;
  }

  /** No fetch is scheduled any more (one in progress runs to its end). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
