// The live pipeline: source -> enrich -> detect -> report, one direction.
// DNS answers go straight into the scorer's name cache; connections wait in a
// bounded queue for enrichment (a few at once), then are scored in the order
// their enrichment finishes. Local state, sightings and the outbox are SQLite
// files in the state folder.
import {
  closeSync,
  createWriteStream,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  writeFileSync,
  writeSync,
  type WriteStream,
} from 'node:fs';
import { join } from 'node:path';
import type { RareconConfig } from '../config/defaults.js';
import { openBaseline, type SqliteBaseline } from '../baseline/store.js';
import { SyncClient, readHostCredential } from '../sync/sync-client.js';
import { SightingsStore } from '../sync/sightings-store.js';
import type { BucketCache } from '../sync/bucket-cache.js';
import { Scorer, type ScoreOutcome } from '../detect/scorer.js';
import { StateStore } from '../detect/state-store.js';
import { hostKeyOf } from '../detect/dedup.js';
import { SightingExtractor } from '../detect/sightings.js';
import type { Alert } from '../model/alert.js';
import type { BaselineMeta, BaselineReader, Sighting } from '../model/baseline.js';
import { DAY_MS } from '../model/baseline.js';
import type { ConnectionEvent, HostRef, SourceRecord } from '../model/records.js';
import { toEcs } from '../model/ecs.js';
import { toOcsf } from '../model/ocsf.js';
import { RepeatedLog } from '../common/log.js';
import { Reporter } from '../report/reporter.js';
import { toRareconRecord } from '../sources/replay/ndjson-reader.js';
import { DEFAULT_POLICY, rootDomainOf } from '../model/root-domain.js';
import { DEFAULT_THRESHOLDS } from '../config/defaults.js';
import { BoundedQueue } from './bounded-queue.js';
import { ConnectionEnricher } from '../enrich/connection-enricher.js';
import { hostIdentity } from '../enrich/host-identity.js';
import { openLiveSource, type LiveConnect, type LiveSource } from '../sources/live-source.js';
import type { Logger } from '../common/logger.js';
import type { Server } from 'node:http';
import { serveMetrics } from './metrics.js';
import { STATUS_FILE, type CacheCounts, type DaemonStatus } from './status.js';
import { processSample, Watchdog } from './watchdog.js';
import { StateHealth } from './state-health.js';
import { BoundedCache } from '../common/bounded-cache.js';
import type { BaselineCacheStats } from '../baseline/store.js';

/** Alerts that could not be stored are held in memory and stored later; past this many, new ones are still held but an operator is told. */
const HELD_ALERTS_WARN = 10_000;
/** Sightings held while the state folder is full; beyond this the oldest go (counted). */
const HELD_SIGHTINGS_MAX = 50_000;
/** The config sections SIGHUP applies to a running daemon. */
const APPLIED_ON_RELOAD: ReadonlySet<keyof RareconConfig> = new Set([
  'detect',
  'alertFormat',
  'statusIntervalMs',
  'report',
  'watchdog',
  'logLevel',
] as const);
/** Exit status at the hard memory limit: non-zero, so systemd's Restart=on-failure restarts the daemon. */
export const EXIT_HARD_MEMORY_LIMIT = 70;

/** How long start() waits for the source to be capturing. */
const SOURCE_READY_TIMEOUT_MS = 30_000;

/** Until a baseline arrives nothing is common and the detector says it is waiting for one. */
const NO_BASELINE: BaselineReader = {
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

export interface DaemonOptions {
  config: RareconConfig;
  /** Reads the config file again on SIGHUP; null when running on the embedded default. */
  reloadConfig: (() => RareconConfig | string) | null;
  baselinePath: string | null;
  alertsPath: string | null;
  recordPath: string | null;
  log: Logger;
  /** The daemon cannot go on (hard memory limit): the caller stops it and exits with `code`. */
  onFatal?: (code: number, reason: string) => void;
}

export class Daemon {
  private config: RareconConfig;
  private readonly log: Logger;
  /** Enrichment failures can come per connection: a line a minute at most, with the count left out. */
  private readonly enrichFailLog: RepeatedLog;
  private readonly host: HostRef;
  private readonly state: StateStore;
  private scorer: Scorer;
  private readonly reporter: Reporter;
  private readonly watchdog: Watchdog;
  private readonly health: StateHealth;
  /** Whether a process image (pid and start) is common in the baseline, from its last scored connection. */
  private readonly commonByProcess = new BoundedCache<string, boolean>({ maxEntries: 4096, ttlMs: 60_000 });
  /** The same by image (device:inode), so a new process of a judged image is not sampled out. */
  private readonly commonByImage = new BoundedCache<string, boolean>({ maxEntries: 4096, ttlMs: 60_000 });
  /** Alerts and sightings the state folder did not take yet (full disk): stored again on each tick. */
  private heldAlerts: Alert[] = [];
  private heldSightings: Sighting[] = [];
  private reloading: Promise<void> = Promise.resolve();
  private readonly sightings: SightingsStore;
  private readonly extractor: SightingExtractor;
  private readonly enricher: ConnectionEnricher;
  private readonly queue: BoundedQueue<LiveConnect>;
  private sync: SyncClient | null = null;
  private fileBaseline: SqliteBaseline | null = null;
  private baseline: BaselineReader = NO_BASELINE;
  private bucketCache: BucketCache | null = null;
  private source: LiveSource | null = null;
  private readonly abort = new AbortController();
  private readonly alertsOut: WriteStream | null;
  private readonly recordOut: WriteStream | null;
  private timer: NodeJS.Timeout | null = null;
  private metricsServer: Server | null = null;
  private lastStatusMs = 0;
  private readonly startedMs = Date.now();
  private stopping: Promise<void> | null = null;
  private inFlight = 0;
  private readonly ownPids = new Set<number>([process.pid]);
  private readonly counts = {
    alertsTotal: 0,
    heldTotal: 0,
    heldExpiredTotal: 0,
    selfSkippedTotal: 0,
    scoredTotal: 0,
    reloadsTotal: 0,
    stateWriteFailedTotal: 0,
  };
  private lastAlertMs: number | null = null;
  // Sightings and alerts for the outbox are written once per event-loop turn,
  // in one SQLite transaction each: under load that is many events a commit.
  private pendingSightings: Sighting[] = [];
  private pendingAlerts: Alert[] = [];
  private flushScheduled = false;

  constructor(private readonly opts: DaemonOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.enrichFailLog = new RepeatedLog(
      (level, msg, fields) => this.log[level](msg, fields),
      'warn',
      'A connection could not be enriched.',
    );
    const c = this.config;
    mkdirSync(c.stateDir, { recursive: true, mode: 0o700 });
    this.host = hostIdentity(c.host.org, c.host.id);
    this.state = StateStore.open(c.stateDir, {
      batchWrites: true,
      onWriteError: (err, rows) =>
        this.log.warn('Dedup state could not be saved; it is tried again with the next write.', { rows, error: err.message }),
    });
    this.scorer = new Scorer({ baseline: NO_BASELINE, config: c.detect, state: this.state, nowMs: Date.now() });
    this.scorer.enrol(hostKeyOf(this.host), Date.now());
    const serverUrl = c.sync.serverUrl?.replace(/\/+$/, '') ?? null;
    this.reporter = Reporter.start(c.report, {
      stateDir: c.stateDir,
      log: (level, msg, fields) => this.log[level](msg, fields),
      ...(serverUrl === null
        ? {}
        : {
            server: {
              url: serverUrl,
              caFile: c.sync.caFile,
              serverName: c.sync.serverName,
              credential: () => readHostCredential(c.stateDir, c.sync.serverUrl as string),
            },
          }),
    });
    this.health = new StateHealth(this.log, c.stateDir);
    this.watchdog = new Watchdog(c.watchdog, {
      sample: processSample,
      log: this.log,
      onHardLimit: (rss) => opts.onFatal?.(EXIT_HARD_MEMORY_LIMIT, `resident memory ${rss} bytes reached watchdog.hardMemoryBytes`),
    });
    this.sightings = new SightingsStore(join(c.stateDir, 'sightings.db'));
    this.extractor = new SightingExtractor('day', DEFAULT_POLICY, c.detect);
    this.enricher = new ConnectionEnricher(c.enrich, this.host);
    this.queue = new BoundedQueue(c.source.queueMaxEvents);
    this.alertsOut = opts.alertsPath === null ? null : createWriteStream(opts.alertsPath, { flags: 'a' });
    this.recordOut = opts.recordPath === null ? null : createWriteStream(opts.recordPath, { flags: 'a' });
  }

  /** Opens the baseline, the source and the loops; resolves once capture runs. */
  async start(): Promise<void> {
    this.openBaseline();
    this.source = await openLiveSource(this.config.source, this.host, this.log);
    void this.sourceLoop(this.source);
    void this.enrichLoop();
    // Say "watching" only once it is true: the helper attaches its programs after it starts.
    await this.untilCapturing(this.source, SOURCE_READY_TIMEOUT_MS);
    this.log.info('rarecon is watching outbound connections.', {
      host: hostKeyOf(this.host),
      source: this.source.name,
      sourceReason: this.source.reason,
      baselineVersion: this.baseline.meta().version,
      stateDir: this.config.stateDir,
    });
    this.timer = setInterval(() => this.tick(), 250);
    this.watchdog.start();
    const m = this.config.metrics;
    if (m.enabled) {
      try {
        this.metricsServer = await serveMetrics(m.host, m.port, () => this.status());
        const at = this.metricsServer.address();
        // The port actually bound (port 0 = any free one).
        if (at !== null && typeof at === 'object')
          this.log.info('Metrics and health are served.', { url: `http://${m.host}:${at.port}/metrics` });
      } catch (err) {
        this.log.warn('The metrics endpoint could not listen; the daemon runs without it.', {
          host: m.host,
          port: m.port,
          error: (err as Error).message,
        });
      }
    }
    this.writeStatus();
  }

  /** Waits for the source to capture; a source that ended fails start(), a slow one is only logged. */
  private async untilCapturing(source: LiveSource, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    try {
      const r = await Promise.race([source.ready.then(() => 'ready' as const), late]);
      if (r === 'late')
        this.log.warn(`The event source is not capturing yet after ${timeoutMs / 1000} s; starting anyway.`, { source: source.name });
    } finally {
      clearTimeout(timer);
    }
  }

  private openBaseline(): void {
    if (this.opts.baselinePath !== null) {
      const b = openBaseline(this.opts.baselinePath, this.config.baselineStore);
      if (!b.ok) throw new Error(b.error);
      this.fileBaseline?.close();
      this.fileBaseline = b.baseline;
      this.useBaseline(b.baseline);
      return;
    }
    if (this.sync !== null) return;
    this.sync = new SyncClient({
      cfg: this.config.sync,
      stateDir: this.config.stateDir,
      hostId: this.host.id,
      hostName: this.host.name ?? null,
      log: (level, msg, fields) => this.log[level](msg, fields),
      sightings: this.sightings,
      storeCfg: this.config.baselineStore,
      onBaseline: (reader) => this.useBaseline(reader),
    });
    this.bucketCache = this.sync.bucketCache();
    this.sync.start();
  }

  private useBaseline(reader: BaselineReader): void {
    this.baseline = reader;
    this.scorer.setBaseline(reader);
    const m = reader.meta();
    this.log.info('A baseline is in force.', {
      version: m.version,
      unit: m.observerUnit,
      windowStart: new Date(m.windowStartMs).toISOString(),
      windowEnd: new Date(m.windowEndMs).toISOString(),
    });
  }

  private async sourceLoop(source: LiveSource): Promise<void> {
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
        // Over budget: the lowest-value work goes first (see watchdog.ts), counted by reason.
        if (this.watchdog.level >= 1) {
          // Connections of a common process may alert: kept. Of a process not common: dropped (UDP
          // first). Not judged yet: sampled at level 2.
          const common = this.judged(r);
          if (common === false && this.watchdog.sheds(r.protocol === 'udp' ? 'udp_flow_not_common' : 'connection_not_common')) continue;
          if (common === undefined && this.watchdog.samplesOut()) continue;
        }
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
      while (this.inFlight >= max) await new Promise<void>((resolve) => waiters.push(resolve));
      let c = queued;
      // A process the baseline does not hold as common cannot alert: its stack scan is the first optional work to go.
      if (c.stackScan.length > 0 && this.judged(c) === false && this.watchdog.sheds('injection_scan_ineligible')) {
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
    const observers = this.baseline.process(sha);
    // In bucket mode an unknown sha256 may only be not loaded yet: say nothing then.
    if (observers === undefined && this.bucketCache !== null) return;
    const min = this.config.detect.thresholds.commonProcessMinObservers ?? this.baseline.meta().thresholds.commonProcessMinObservers;
    const common = (observers ?? 0) >= min;
    if (c.processStartBootNs !== null) this.commonByProcess.set(processKey(c), common);
    if (c.exe !== null) this.commonByImage.set(imageKey(c.exe), common);
  }

  private scoreLive(e: ConnectionEvent): void {
    const sha = e.process.sha256;
    const cache = this.bucketCache;
    const meta = cache?.meta() ?? null;
    if (cache !== null && meta !== null && sha !== null) {
      const name = this.scorer.hostnameOf(e);
      const rd = name === null ? null : rootDomainOf(name, meta.policy, this.config.detect.internalDomains);
      const root = rd !== null && rd.ok ? rd.rootDomain : null;
      // Bucket mode: the part of the baseline for this sha256 may still be on its way.
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
    const s = this.extractor.extract(rec);
    if (s.length > 0) {
      for (const x of s) {
        // Over budget, a sighting the store holds already today is not even queued (the store would skip it anyway).
        if (this.watchdog.level >= 1 && this.sightings.has(x) && this.watchdog.sheds('sighting_repeat')) continue;
        this.pendingSightings.push(x);
      }
      if (this.pendingSightings.length > 0) this.scheduleFlush();
    }
    let out: ScoreOutcome;
    try {
      out = this.scorer.handle(rec);
    } catch (err) {
      // The dedup state could not be written (a full disk): the record is counted as not scored.
      this.health.failed('state', err);
      this.counts.stateWriteFailedTotal++;
      return;
    }
    if (rec.type === 'connection') this.counts.scoredTotal++;
    if (out.kind === 'new' || out.kind === 'health') this.emit(out.alert);
  }

  private emit(a: Alert): void {
    this.counts.alertsTotal++;
    this.lastAlertMs = Date.now();
    const render = this.config.alertFormat === 'ecs' ? toEcs : toOcsf;
    this.alertsOut?.write(JSON.stringify(render(a)) + '\n');
    this.pendingAlerts.push(a);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushPending());
  }

  private flushPending(): void {
    this.flushScheduled = false;
    const sightings = this.pendingSightings;
    const alerts = this.pendingAlerts;
    this.pendingSightings = [];
    this.pendingAlerts = [];
    if (sightings.length > 0) this.storeSightings(sightings);
    if (alerts.length > 0) this.storeAlerts(alerts);
  }

  /** Sightings go to SQLite; on a full disk they wait in memory (bounded, the oldest go first, counted). */
  private storeSightings(batch: Sighting[]): void {
    const all = this.heldSightings.length === 0 ? batch : [...this.heldSightings, ...batch];
    try {
      // A write of repeats only touches no page: it proves nothing unless it carried the held ones.
      if (this.sightings.add(all) > 0 || all.length > batch.length) this.health.ok('sightings');
      this.heldSightings = [];
    } catch (err) {
      this.health.failed('sightings', err);
      const over = all.length - HELD_SIGHTINGS_MAX;
      if (over > 0) this.health.held.sightingsLost += over;
      this.heldSightings = over > 0 ? all.slice(over) : all;
    }
    this.health.held.sightings = this.heldSightings.length;
  }

  /** Alerts go to the outbox; when it cannot take them they wait in memory and are stored again: an alert raised is never dropped. */
  private storeAlerts(batch: Alert[]): void {
    const all = this.heldAlerts.length === 0 ? batch : [...this.heldAlerts, ...batch];
    const r = this.reporter.enqueueMany(all);
    if (r.ok) {
      this.heldAlerts = [];
      this.health.ok('outbox');
    } else if (r.reason !== 'closed') {
      if (this.heldAlerts.length < HELD_ALERTS_WARN && all.length >= HELD_ALERTS_WARN) {
        this.log.error('Many alerts wait in memory for the outbox; they are lost if the daemon stops before the state folder takes them.', {
          alerts: all.length,
        });
      }
      this.health.failed('outbox', r);
      this.heldAlerts = all;
    }
    this.health.held.alerts = this.heldAlerts.length;
  }

  private tick(): void {
    if (this.heldAlerts.length > 0) this.storeAlerts([]);
    if (this.heldSightings.length > 0) this.storeSightings([]);
    this.health.settle();
    const cache = this.bucketCache;
    if (cache !== null) {
      const { ready, expired } = cache.takeHeld<ConnectionEvent>();
      for (const h of ready) this.handle(h.payload, true);
      for (const h of expired) {
        // Its bucket never came: scored with what the cache has (not common), and counted.
        this.counts.heldExpiredTotal++;
        this.handle(h.payload, true);
      }
    }
    const now = Date.now();
    if (now - this.lastStatusMs >= this.config.statusIntervalMs) {
      this.flushState();
      this.writeStatus();
    }
  }

  private flushState(): void {
    try {
      this.scorer.flush();
      this.health.ok('state');
    } catch (err) {
      this.health.failed('state', err);
    }
  }

  private caches(): Record<string, CacheCounts> {
    const out: Record<string, CacheCounts> = {};
    const dns = this.scorer.dns.stats();
    out['dns'] = { hitsTotal: dns.hitsTotal, missesTotal: dns.missesTotal };
    const e = this.enricher.stats() as {
      hash?: { cache: CacheCounts };
      signer?: { cache: CacheCounts };
      injection?: { mapsCache: CacheCounts };
    };
    if (e.hash) out['image_hash'] = pick(e.hash.cache);
    if (e.signer) out['signer'] = pick(e.signer.cache);
    if (e.injection) out['injection_maps'] = pick(e.injection.mapsCache);
    const b = (this.baseline as { cacheStats?: () => BaselineCacheStats }).cacheStats?.();
    if (b !== undefined) {
      out['baseline_process'] = { hitsTotal: b.processHits, missesTotal: b.processMisses };
      out['baseline_combo'] = { hitsTotal: b.comboHits, missesTotal: b.comboMisses };
    }
    return out;
  }

  status(): DaemonStatus {
    const now = Date.now();
    const meta = this.baseline.meta();
    const learning = this.scorer.learningHosts(now).find((h) => h.hostKey === hostKeyOf(this.host));
    return {
      pid: process.pid,
      startedMs: this.startedMs,
      updatedMs: now,
      host: hostKeyOf(this.host),
      source: this.source?.stats() ?? null,
      queue: { size: this.queue.size, capacity: this.queue.capacity, droppedTotal: this.queue.droppedTotal, inFlight: this.inFlight },
      counters: { ...this.counts },
      score: this.scorer.counters,
      enrich: this.enricher.stats(),
      learningDaysLeft: learning?.daysLeft ?? 0,
      baseline:
        meta.version === 0
          ? null
          : {
              version: meta.version,
              builtAtMs: meta.builtAtMs,
              ageMs: now - meta.builtAtMs,
              unit: meta.observerUnit,
              windowStartMs: meta.windowStartMs,
              windowEndMs: meta.windowEndMs,
              path: this.opts.baselinePath,
            },
      alertsLast24h: this.state.alertsSince(now - DAY_MS),
      lastAlertMs: this.lastAlertMs,
      report: this.reporter.stats(),
      sync: this.sync?.status() ?? null,
      rssBytes: process.memoryUsage().rss,
      cpu: process.cpuUsage(),
      watchdog: this.watchdog.stats(),
      stateDir: this.health.stats(),
      caches: this.caches(),
    };
  }

  private writeStatus(): void {
    this.lastStatusMs = Date.now();
    const file = join(this.config.stateDir, STATUS_FILE);
    const text = JSON.stringify(this.status(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
    // Padded to whole 4 KiB pages plus one (JSON allows trailing spaces), so on a full disk the
    // file can still be rewritten in place in the blocks it already holds.
    const padded = text.padEnd((Math.ceil(text.length / 4096) + 1) * 4096, ' ');
    try {
      writeFileSync(file + '.tmp', padded);
      renameSync(file + '.tmp', file);
      this.health.ok('status');
    } catch (err) {
      this.health.failed('status', err);
      try {
        const fd = openSync(file, 'r+');
        try {
          // Within the size it has: no new block is needed.
          const size = fstatSync(fd).size;
          if (text.length <= size) {
            writeSync(fd, text.padEnd(size, ' '), 0);
          }
        } finally {
          closeSync(fd);
        }
      } catch {
        // Counted and logged above; the metrics endpoint still tells.
      }
    }
  }

  /**
   * SIGHUP: a new config (sinks and report settings, detection, watchdog budgets, log level) and the
   * baseline file again. A bad file, or sinks that cannot be built, keep the whole running config.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.reloadNow())
      .catch((err: unknown) => {
        this.log.error('Reload failed unexpectedly; the running config stays.', { error: (err as Error).message });
      });
    return this.reloading;
  }

  private async reloadNow(): Promise<void> {
    let sinks: Record<string, string[]> | null = null;
    if (this.opts.reloadConfig === null) {
      this.log.info('Reload asked; running on the embedded default, so only the baseline file is read again.');
    } else {
      const next = this.opts.reloadConfig();
      if (typeof next === 'string') {
        this.log.error('The config file has problems; the running config stays.', { problems: next });
        return;
      }
      const r = await this.reporter.reload(next.report);
      if (!r.ok) {
        this.log.error('The new sinks could not be set up; the running config stays.', { problem: r.error });
        return;
      }
      sinks = { added: r.added, removed: r.removed, changed: r.changed, kept: r.kept };
      // Every other section takes a restart (the `server` one is not the daemon's): say which changed.
      const moved = (Object.keys(next) as (keyof RareconConfig)[]).filter(
        (k) => !APPLIED_ON_RELOAD.has(k) && k !== 'server' && JSON.stringify(next[k]) !== JSON.stringify(this.config[k]),
      );
      if (moved.length > 0) this.log.warn('Some changed settings take a restart; the running values stay until then.', { settings: moved });
      this.config = {
        ...this.config,
        detect: next.detect,
        alertFormat: next.alertFormat,
        statusIntervalMs: next.statusIntervalMs,
        report: next.report,
        watchdog: next.watchdog,
        logLevel: next.logLevel,
      };
      this.watchdog.setConfig(next.watchdog);
      this.log.setLevel?.(next.logLevel);
    }
    this.flushState();
    this.scorer = new Scorer({ baseline: this.baseline, config: this.config.detect, state: this.state, nowMs: Date.now() });
    if (this.opts.baselinePath !== null) {
      try {
        this.openBaseline();
      } catch (err) {
        this.log.error('The baseline file could not be opened again; the previous one stays in force.', { error: (err as Error).message });
      }
    }
    this.counts.reloadsTotal++;
    this.log.info('Config reloaded.', { reloads: this.counts.reloadsTotal, ...(sinks === null ? {} : { sinks }) });
  }

  /** SIGTERM: stop capture, finish what is in flight, write state. Safe twice. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      this.queue.close();
      this.watchdog.stop();
      if (this.timer !== null) clearInterval(this.timer);
      await this.reloading;
      await this.source?.shutdown();
      const deadline = Date.now() + 3000;
      while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      this.flushState();
      this.flushPending();
      if (this.heldAlerts.length > 0)
        this.log.error('Alerts the outbox could not take are lost at this stop.', { alerts: this.heldAlerts.length });
      this.writeStatus();
      await this.sync?.stop();
      this.sync?.close();
      this.metricsServer?.close();
      await this.reporter.shutdown();
      this.fileBaseline?.close();
      this.sightings.close();
      this.state.close();
      await Promise.all([this.alertsOut, this.recordOut].map((s) => (s === null ? Promise.resolve() : new Promise<void>((r) => s.end(r)))));
      this.log.info('rarecon stopped.', { scored: this.counts.scoredTotal, alerts: this.counts.alertsTotal });
    })();
    return this.stopping;
  }
}

/** A process image by pid and start time (eBPF only; the /proc source has no stack to scan). */
function processKey(c: LiveConnect): string {
  return `${c.pid}:${c.processStartBootNs}`;
}

function imageKey(exe: { dev: number; ino: bigint }): string {
  return `${exe.dev}:${exe.ino}`;
}

function pick(c: CacheCounts): CacheCounts {
  return { hitsTotal: c.hitsTotal, missesTotal: c.missesTotal };
}
