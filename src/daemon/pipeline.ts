// The live pipeline: source -> enrich -> detect -> report, one direction.
// DNS answers go straight into the enrich stage's name cache (ConnectionNames);
// connections wait in a bounded queue for enrichment (a few at once), then are
// named and scored in the order their enrichment finishes. Over budget, what
// the watchdog sheds is decided here, where the value of each piece of work is
// known.
import type { WriteStream } from 'node:fs';
import { SqliteBaseline, type BaselineCacheStats } from '../baseline/store.js';
import { BoundedCache } from '../common/bounded-cache.js';
import { RepeatedLog } from '../common/log.js';
import type { Logger } from '../common/logger.js';
import { DEFAULT_THRESHOLDS, type RareconConfig } from '../config/defaults.js';
import { hostKeyOf } from '../detect/dedup.js';
import { Scorer, type ScoreCounters, type ScoreOutcome } from '../detect/scorer.js';
import { SightingExtractor } from '../detect/sightings.js';
import type { StateStore } from '../detect/state-store.js';
import { ConnectionEnricher, type ConnectionEnricherStats } from '../enrich/connection-enricher.js';
import { ConnectionNames } from '../enrich/connection-names.js';
import type { Alert } from '../model/alert.js';
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import { toEcs } from '../model/ecs.js';
import { toOcsf } from '../model/ocsf.js';
import { isoTime } from '../model/time-text.js';
import type { ConnectionEvent, HostRef, SourceRecord } from '../model/records.js';
import { DEFAULT_POLICY } from '../model/root-domain.js';
import type { Reporter } from '../report/reporter.js';
import type { LiveConnect, LiveSource } from '../sources/source.js';
import { toRareconRecord } from '../model/rarecon-record.js';
import type { BucketCache } from '../sync/bucket-cache.js';
import type { SightingsStore } from '../sync/sightings-store.js';
import { BoundedQueue } from './bounded-queue.js';
import { HeldWrites } from './held-writes.js';
import { LineBatch } from './line-batch.js';
import type { StateHealth } from './state-health.js';
import type { CacheCounts, DaemonStatus } from './status.js';
import type { Watchdog } from './watchdog.js';

/**
 * How long an alert, a sighting or a dedup row waits for others to go in one SQLite commit: at a
 * thousand alerts a second, a commit each (three an alert) was a third of the daemon's time. A crash
 * loses at most this much, as it loses the outbox's rows of the moment.
 */
export const WRITE_BATCH_MS = 20;

/** How long a --record line waits for others to go in one write. */
const RECORD_FLUSH_MS = 100;

/**
 * How long scoring runs before it lets the event loop turn, so the helper's pipe is read: scored
 * without a break, an alert storm left the pipe unread for seconds, the helper blocked on it and the
 * kernel's ring buffer dropped connections unseen and unchosen. Read at once, a connection waits in
 * the bounded queue, where what cannot wait is shed by value and counted.
 */
export const SCORE_SLICE_MS = 10;

/** Until a baseline arrives nothing is common and the detector says it is waiting for one. */
export const NO_BASELINE: BaselineReader = {
  process: () => undefined,
  combo: () => 0,
  meta: (): BaselineMeta => ({
    version: 0,
    builtAtMs: 0,
    windowStartMs: 0,
    windowEndMs: 0,
    observerUnit: 'day',
    populationSize: 0,
    policy: DEFAULT_POLICY,
    thresholds: DEFAULT_THRESHOLDS,
    omitsSingleObserverCombos: false,
    processCount: 0,
    comboCount: 0,
  }),
};

export interface PipelineOptions {
  config: RareconConfig;
  log: Logger;
  host: HostRef;
  state: StateStore;
  /** Built (and the host enrolled) by the daemon as it opens the state; a reload replaces it. */
  scorer: Scorer;
  reporter: Reporter;
  sightings: SightingsStore;
  watchdog: Watchdog;
  health: StateHealth;
  /** The --alerts and --record files, opened by the daemon before anything else starts. */
  alertsOut: WriteStream | null;
  recordOut: WriteStream | null;
}

export interface PipelineCounters {
  alertsTotal: number;
  /** Connections held until their baseline bucket arrives. */
  heldTotal: number;
  /** Held connections scored without their bucket, which never came. */
  heldExpiredTotal: number;
  /** Connections of the daemon itself, not scored. */
  selfSkippedTotal: number;
  scoredTotal: number;
  /** Records not scored because the dedup state could not be written. */
  stateWriteFailedTotal: number;
  /** Connections the safety valve paused the host for: counted only, neither enriched, recorded nor scored. */
  valveCountedTotal: number;
}

/** The pipeline's part of the daemon's status. */
export interface PipelineStats {
  queue: DaemonStatus['queue'];
  counters: PipelineCounters;
  score: ScoreCounters;
  learningDaysLeft: number;
  enrich: ConnectionEnricherStats;
  dns: CacheCounts;
  baseline: BaselineMeta;
  /** Hits of the baseline file's own cache; null for a baseline without one (none yet, bucket mode). */
  baselineCache: BaselineCacheStats | null;
  lastAlertMs: number | null;
}

export class Pipeline {
  private config: RareconConfig;
  private readonly log: Logger;
  /** Enrichment failures can come per connection: a line a minute at most, with the count left out. */
  private readonly enrichFailLog: RepeatedLog;
  private scorer: Scorer;
  private readonly extractor: SightingExtractor;
  private readonly enricher: ConnectionEnricher;
  /** The one DNS cache: names each connection (and its root domain) for the sightings, the scorer and the bucket hold. */
  private readonly names: ConnectionNames;
  private readonly queue: BoundedQueue<LiveConnect>;
  private readonly writes: HeldWrites;
  /** Whether a process image (pid and start) is common in the baseline, from its last scored connection. */
  private readonly commonByProcess = new BoundedCache<string, boolean>({ maxEntries: 4096, ttlMs: 60_000 });
  /** The same by image (device:inode), so a new process of a judged image is not sampled out. */
  private readonly commonByImage = new BoundedCache<string, boolean>({ maxEntries: 4096, ttlMs: 60_000 });
  private baselineReader: BaselineReader = NO_BASELINE;
  private bucketCache: BucketCache | null = null;
  private readonly abort = new AbortController();
  private readonly alertsOut: LineBatch | null;
  private readonly recordOut: LineBatch | null;
  private inFlight = 0;
  private processing = false;
  /** performance.now() when scoring began in this turn of the event loop; 0 when it has not. */
  private sliceStartMs = 0;
  private readonly ownPids = new Set<number>([process.pid]);
  private readonly counts: PipelineCounters = {
    alertsTotal: 0,
    heldTotal: 0,
    heldExpiredTotal: 0,
    selfSkippedTotal: 0,
    scoredTotal: 0,
    stateWriteFailedTotal: 0,
    valveCountedTotal: 0,
  };
  private readonly hostKey: string;
  private lastAlertMs: number | null = null;

  constructor(private readonly opts: PipelineOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.enrichFailLog = new RepeatedLog(
      (level, msg, fields) => this.log[level](msg, fields),
      'warn',
      'A connection could not be enriched.',
    );
    this.scorer = opts.scorer;
    this.extractor = new SightingExtractor('day', DEFAULT_POLICY, opts.config.detect);
    this.enricher = new ConnectionEnricher(opts.config.enrich, opts.host);
    this.names = new ConnectionNames(opts.config.detect, NO_BASELINE.meta().policy);
    // Full, the queue sheds the oldest of its least valuable connections: those that cannot alert first.
    this.queue = new BoundedQueue(opts.config.source.queueMaxEvents, (c) => valueOf(this.judged(c)));
    this.hostKey = hostKeyOf(opts.host);
    this.writes = new HeldWrites({
      reporter: opts.reporter,
      sightings: opts.sightings,
      health: opts.health,
      log: opts.log,
      flushDelayMs: WRITE_BATCH_MS,
    });
    this.alertsOut = opts.alertsOut === null ? null : new LineBatch(opts.alertsOut);
    // The record file is read later, not watched: its lines may wait a moment for others.
    this.recordOut = opts.recordOut === null ? null : new LineBatch(opts.recordOut, RECORD_FLUSH_MS);
  }

  get baseline(): BaselineReader {
    return this.baselineReader;
  }

  get counters(): Readonly<PipelineCounters> {
    return this.counts;
  }

  /** Starts reading the source and enriching; both run until halt(). */
  run(source: LiveSource): void {
    this.capture(source);
    this.process();
  }

  /** Starts reading the source into the bounded queue, where connections wait until process() (start-up buffers them). */
  capture(source: LiveSource): void {
    // The package databases load while the rest starts, not on the first connection.
    void this.enricher.warm();
    void this.sourceLoop(source);
  }

  /** Starts enriching and scoring what the queue holds, and all after; once the baseline is open. */
  process(): void {
    if (this.processing) return;
    this.processing = true;
    void this.enrichLoop();
  }

  useBaseline(reader: BaselineReader): void {
    this.baselineReader = reader;
    this.scorer.setBaseline(reader);
    // Root domains are worked out once, under the policy of the baseline that judges them.
    this.names.setPolicy(reader.meta().policy);
  }

  /** Bucket mode: connections whose bucket is on its way wait in this cache. */
  useBucketCache(cache: BucketCache | null): void {
    this.bucketCache = cache;
  }

  /** A reload: the new settings, and a scorer built on them (the dedup state is written first). */
  reconfigure(config: RareconConfig): void {
    this.config = config;
    // The DNS answers held stay: the names they give are still true.
    this.names.configure(config.detect);
    this.flushState();
    this.scorer = new Scorer({ baseline: this.baselineReader, config: config.detect, state: this.opts.state, nowMs: Date.now() });
  }

  /** Stores again the alerts and sightings the state folder did not take yet. */
  retryHeld(): void {
    this.writes.retry();
  }

  /**
   * The tick: alerts whose dedup window closed are let go. The daemon raised each when first seen
   * and its final count is in the state; held on, they were memory that grew with the alert rate.
   */
  dropClosed(): void {
    this.scorer.takeClosed();
  }

  /** Scores the connections held for a baseline bucket that came, or that waited too long. */
  releaseHeld(): void {
    const cache = this.bucketCache;
    if (cache === null) return;
    const { ready, expired } = cache.takeHeld<ConnectionEvent>();
    for (const h of ready) this.handle(h.payload, true);
    for (const h of expired) {
      // Its bucket never came: scored with what the cache has (not common), and counted.
      this.counts.heldExpiredTotal++;
      this.handle(h.payload, true);
    }
  }

  flushState(): void {
    try {
      this.scorer.flush();
      this.opts.health.ok('state');
    } catch (err) {
      this.opts.health.failed('state', err);
    }
  }

  /** Stops capture and enrichment: the loops end, queued connections are dropped. */
  halt(): void {
    this.abort.abort();
    this.queue.close();
  }

  /** Waits (at most `timeoutMs`) for the enrichments in flight to be scored. */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** At stop: what is pending goes to the state folder now. */
  closeWrites(): void {
    this.writes.close();
  }

  /** At stop, last: ends the alert and record files. */
  async closeOutputs(): Promise<void> {
    await Promise.all([this.alertsOut, this.recordOut].map((s) => (s === null ? Promise.resolve() : s.end())));
  }

  stats(nowMs: number): PipelineStats {
    const hostKey = this.hostKey;
    const learning = this.scorer.learningHosts(nowMs).find((h) => h.hostKey === hostKey);
    const dns = this.names.stats();
    const b = this.baselineReader;
    return {
      queue: {
        size: this.queue.size,
        capacity: this.queue.capacity,
        droppedTotal: this.queue.droppedTotal,
        inFlight: this.inFlight,
        shedOldestTotal: this.queue.shedOldestTotal,
        droppedByValue: {
          notCommon: this.queue.droppedByValue[0] ?? 0,
          notJudged: this.queue.droppedByValue[1] ?? 0,
          common: this.queue.droppedByValue[2] ?? 0,
        },
      },
      counters: { ...this.counts },
      score: this.scorer.counters,
      learningDaysLeft: learning?.daysLeft ?? 0,
      enrich: this.enricher.stats(),
      dns: { hitsTotal: dns.hitsTotal, missesTotal: dns.missesTotal },
      baseline: b.meta(),
      baselineCache: b instanceof SqliteBaseline ? b.cacheStats() : null,
      lastAlertMs: this.lastAlertMs,
    };
  }

  private async sourceLoop(source: LiveSource): Promise<void> {
    const watchdog = this.opts.watchdog;
    try {
      for await (const r of source.run(this.abort.signal)) {
        if (r.kind === 'dns') {
          this.handle(r.answer);
          continue;
        }
        if (this.ownPids.has(r.pid)) {
          this.counts.selfSkippedTotal++;
          continue;
        }
        // The safety valve pauses this host: its connections are counted, nothing more (a storm costs less than normal traffic).
        if (this.paused(r.timeMs)) continue;
        // Over budget: the lowest-value work goes first (see watchdog.ts), counted by reason.
        if (watchdog.level >= 1) {
          // Connections of a common process may alert: kept. Of a process not common: dropped (UDP
          // first). Not judged yet: sampled at level 2.
          const common = this.judged(r);
          if (common === false && watchdog.sheds(r.protocol === 'udp' ? 'udp_flow_not_common' : 'connection_not_common')) continue;
          if (common === undefined && watchdog.samplesOut()) continue;
        }
        // A repeat with nothing queued before it is scored here and now (no queue, no await), unless
        // scoring has had this turn: then it queues, and the pipe is read on.
        if (this.processing && this.queue.size === 0 && !this.sliceSpent() && this.answerRepeat(r)) continue;
        this.queue.push(r);
      }
    } catch (err) {
      if (!this.abort.signal.aborted)
        this.log.error('The event source stopped; no connections are seen until rarecon restarts.', { error: (err as Error).message });
    }
  }

  private async enrichLoop(): Promise<void> {
    const max = this.config.enrich.concurrency;
    const waiters: Array<() => void> = [];
    for await (const queued of this.queue.drain()) {
      // Scoring has had its turn: the event loop reads the pipe (into the queue) before it goes on.
      if (this.sliceSpent()) await nextTurn();
      // Queued before the valve closed: counted, not enriched.
      if (this.paused(queued.timeMs)) continue;
      if (this.answerRepeat(queued)) continue;
      while (this.inFlight >= max) await new Promise<void>((resolve) => waiters.push(resolve));
      if (this.paused(queued.timeMs)) continue;
      let c = queued;
      // A process the baseline does not hold as common cannot alert: its stack scan is the first optional work to go.
      if (c.stackScan.length > 0 && this.judged(c) === false && this.opts.watchdog.sheds('injection_scan_ineligible')) {
        c = { ...c, stackScan: [] };
      }
      this.inFlight++;
      this.enricher
        .enrich(c, this.abort.signal)
        .then((e) => {
          this.noteCommon(c, e.process.sha256);
          this.scoreLive(e);
        })
        .catch((err: unknown) => this.enrichFailLog.note({ pid: c.pid, error: (err as Error).message }))
        .finally(() => {
          this.inFlight--;
          waiters.shift()?.();
        });
    }
  }

  /**
   * A repeat of a process instance's code path already judged is answered at once (no /proc read,
   * no enrichment slot) and scored; false when the connection needs enriching.
   */
  private answerRepeat(c: LiveConnect): boolean {
    const repeat = this.enricher.enrichRepeat(c);
    if (repeat === null) return false;
    try {
      if (this.judged(c) === undefined) this.noteCommon(c, repeat.process.sha256);
      this.scoreLive(repeat);
    } catch (err) {
      this.enrichFailLog.note({ pid: c.pid, error: (err as Error).message });
    }
    return true;
  }

  /** Whether scoring has run SCORE_SLICE_MS in this turn of the event loop (the first call of a turn starts its slice). */
  private sliceSpent(): boolean {
    const now = performance.now();
    if (this.sliceStartMs === 0) {
      this.sliceStartMs = now;
      setImmediate(() => (this.sliceStartMs = 0));
      return false;
    }
    return now - this.sliceStartMs > SCORE_SLICE_MS;
  }

  /** Whether the safety valve pauses this host at the connection's time; a paused connection is counted here. */
  private paused(timeMs: number): boolean {
    if (this.scorer.pausedUntil(this.hostKey, timeMs) === null) return false;
    this.counts.valveCountedTotal++;
    return true;
  }

  /**
   * Whether the baseline holds this connection's process as common, as far as a recent enrichment of
   * the same process, or of another process of the same image (device and inode), tells; undefined
   * when not judged yet. A new process of a known image (a second curl) is judged at once.
   */
  private judged(c: LiveConnect): boolean | undefined {
    const byProcess = c.processStartBootNs === null ? undefined : this.commonByProcess.peek(processKey(c));
    if (byProcess !== undefined || c.exe === null) return byProcess;
    return this.commonByImage.peek(imageKey(c.exe));
  }

  /** Remembers whether the image of this connection is common, for shedding its next stack scans. */
  private noteCommon(c: LiveConnect, sha: string | null): void {
    if (sha === null) return;
    const observers = this.baselineReader.process(sha);
    // In bucket mode an unknown sha256 may only be not loaded yet: say nothing then.
    if (observers === undefined && this.bucketCache !== null) return;
    const min = this.config.detect.thresholds.commonProcessMinObservers ?? this.baselineReader.meta().thresholds.commonProcessMinObservers;
    const common = (observers ?? 0) >= min;
    if (c.processStartBootNs !== null) this.commonByProcess.set(processKey(c), common);
    if (c.exe !== null) this.commonByImage.set(imageKey(c.exe), common);
  }

  private scoreLive(e: ConnectionEvent): void {
    const sha = e.process.sha256;
    const cache = this.bucketCache;
    const meta = cache?.meta() ?? null;
    if (cache !== null && meta !== null && sha !== null) {
      const rd = this.names.rootDomainOf(e, meta.policy);
      const root = rd !== null && rd.ok ? rd.rootDomain : null;
      // Bucket mode: the part of the baseline for this sha256 may still be on its way. A held event keeps its name.
      if (!cache.readyFor(sha, root) && cache.hold(sha, root, e)) {
        this.counts.heldTotal++;
        this.recordOnly(e);
        return;
      }
    }
    this.handle(e);
  }

  private recordOnly(rec: SourceRecord): void {
    this.recordOut?.write(JSON.stringify(toRareconRecord(rec)) + '\n');
  }

  private handle(rec: SourceRecord, alreadyRecorded = false): void {
    if (!alreadyRecorded) this.recordOnly(rec);
    // A DNS answer into the cache; a connection named (once: a held one came back with its name, unless held by an older version).
    this.names.see(rec);
    const s = this.extractor.extract(rec);
    if (s.length > 0) {
      const { watchdog, sightings } = this.opts;
      for (const x of s) {
        // A sighting the store holds already today is not queued: the store would skip it, after a transaction
        // per turn for nothing. Over budget that is counted as shed work, as it always was.
        if (sightings.has(x)) {
          if (watchdog.level >= 1) watchdog.sheds('sighting_repeat');
          continue;
        }
        this.writes.addSighting(x);
      }
    }
    let out: ScoreOutcome;
    try {
      out = this.scorer.handle(rec);
    } catch (err) {
      // The dedup state could not be written (a full disk): the record is counted as not scored.
      this.opts.health.failed('state', err);
      this.counts.stateWriteFailedTotal++;
      return;
    }
    if (rec.type === 'connection') this.counts.scoredTotal++;
    if (out.kind === 'health') {
      const a = out.alert;
      this.log.warn(
        'This host raised more alerts than the safety valve allows in 24 h: the detector pauses for it and raises one health alert; its connections are counted, not enriched or scored, until the pause ends.',
        {
          host: this.hostKey,
          alertsInWindow: a.alertsInWindow,
          maxAlertsPerHostPerDay: this.config.detect.maxAlertsPerHostPerDay,
          pausedUntil: isoTime(a.pausedUntilMs),
        },
      );
    }
    if (out.kind === 'new' || out.kind === 'health') this.emit(out.alert);
  }

  private emit(a: Alert): void {
    this.counts.alertsTotal++;
    this.lastAlertMs = Date.now();
    const render = this.config.alertFormat === 'ecs' ? toEcs : toOcsf;
    this.alertsOut?.write(JSON.stringify(render(a)) + '\n');
    this.writes.addAlert(a);
  }
}

/** After the I/O of this turn of the event loop (the helper's pipe among it). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A process image by pid and start time (eBPF only; the /proc source has no stack to scan). */
function processKey(c: LiveConnect): string {
  return `${c.pid}:${c.processStartBootNs}`;
}

/** A queued connection's worth when the queue is full: one that cannot alert (not common) goes first, then one not judged yet. */
function valueOf(common: boolean | undefined): number {
  return common === false ? 0 : common === undefined ? 1 : 2;
}

function imageKey(exe: { dev: number; ino: bigint }): string {
  return `${exe.dev}:${exe.ino}`;
}
