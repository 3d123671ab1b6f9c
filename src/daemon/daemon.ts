// The daemon's lifecycle: it opens the state folder, the reporter and the
// baseline, starts the pipeline (pipeline.ts) on the live source, writes its
// status every few seconds, applies a new config on SIGHUP and stops cleanly
// on SIGTERM. Local state, sightings and the outbox are SQLite files in the
// state folder.
import { normalizePin } from '../common/tls-pin.js';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from '../common/logger.js';
import { openOutputStream, preparePrivateFolder } from '../common/private-files.js';
import type { RareconConfig } from '../config/defaults.js';
import { hostKeyOf } from '../detect/dedup.js';
import { Scorer } from '../detect/scorer.js';
import { StateStore } from '../detect/state-store.js';
import { hostIdentity } from '../enrich/host-identity.js';
import { DAY_MS, type BaselineReader } from '../model/baseline.js';
import type { HostRef } from '../model/records.js';
import { Reporter } from '../report/reporter.js';
import { openLiveSource } from '../sources/live-source.js';
import type { LiveSource } from '../sources/source.js';
import { SightingsStore } from '../sync/sightings-store.js';
import { readHostCredential } from '../sync/enrolment.js';
import { BaselineSupply } from './baseline-supply.js';
import { reloadedConfig } from './config.js';
import { serveMetrics } from './metrics.js';
import { NO_BASELINE, Pipeline, WRITE_BATCH_MS } from './pipeline.js';
import { StateHealth } from './state-health.js';
import { STATUS_FILE, type DaemonStatus } from './status.js';
import { buildStatus, writeStatusFile } from './status-writer.js';
import { processSample, Watchdog } from './watchdog.js';

/** Exit status at the hard memory limit: non-zero, so systemd's Restart=on-failure restarts the daemon. */
export const EXIT_HARD_MEMORY_LIMIT = 70;

/** How long start() waits for the source to be capturing. */
const SOURCE_READY_TIMEOUT_MS = 30_000;
/** How long stop() waits for the enrichments in flight. */
const STOP_SETTLE_MS = 3000;

export interface DaemonOptions {
  config: RareconConfig;
  /** Reads the config file again on SIGHUP; null when running on the embedded default. */
  reloadConfig: (() => RareconConfig | string) | null;
  baselinePath: string | null;
  alertsPath: string | null;
  recordPath: string | null;
  log: Logger;
  /** The live source, opened (its helper started) before the daemon: by default start() opens it. */
  source?: Promise<LiveSource>;
  /** The daemon cannot go on (hard memory limit): the caller stops it and exits with `code`. */
  onFatal?: (code: number, reason: string) => void;
}

export class Daemon {
  private config: RareconConfig;
  private readonly log: Logger;
  private readonly host: HostRef;
  private readonly state: StateStore;
  private readonly reporter: Reporter;
  private readonly watchdog: Watchdog;
  private readonly health: StateHealth;
  private readonly sightings: SightingsStore;
  private readonly pipeline: Pipeline;
  private readonly baselines: BaselineSupply;
  private reloading: Promise<void> = Promise.resolve();
  private source: LiveSource | null = null;
  private timer: NodeJS.Timeout | null = null;
  private metricsServer: Server | null = null;
  private lastStatusMs = 0;
  private readonly startedMs = Date.now();
  private stopping: Promise<void> | null = null;
  private starting: Promise<void> | null = null;
  private stopAsked = false;
  private wakeStart: () => void = () => {};
  /** Settles when stop() is asked: start-up waits no longer for the source then. */
  private readonly stopAsk = new Promise<void>((resolve) => {
    this.wakeStart = resolve;
  });
  private reloadsTotal = 0;

  constructor(private readonly opts: DaemonOptions) {
    this.config = opts.config;
    this.log = opts.log;
    const c = this.config;
    const folder = preparePrivateFolder(c.stateDir, 'the state folder');
    if (!folder.ok) throw new Error(folder.error);
    if (folder.tightened !== null)
      this.log.warn('The state folder was open to other users; rarecon tightened it.', { path: c.stateDir, ...folder.tightened });
    // Opened before anything starts, so a symbolic link or another user's file refuses the start at once.
    const alertsOut = opts.alertsPath === null ? null : openOutputStream(opts.alertsPath, 'the alerts file (--alerts)');
    const recordOut = opts.recordPath === null ? null : openOutputStream(opts.recordPath, 'the record file (--record)');
    this.host = hostIdentity(c.host.org, c.host.id);
    this.state = StateStore.open(c.stateDir, {
      batchWrites: true,
      batchDelayMs: WRITE_BATCH_MS,
      onWriteError: (err, rows) =>
        this.log.warn('Dedup state could not be saved; it is tried again with the next write.', { rows, error: err.message }),
    });
    // The host is enrolled as soon as its state opens, before anything else may fail.
    const scorer = new Scorer({ baseline: NO_BASELINE, config: c.detect, state: this.state, nowMs: Date.now() });
    scorer.enrol(hostKeyOf(this.host), Date.now());
    const serverUrl = c.sync.serverUrl;
    this.reporter = Reporter.start(c.report, {
      stateDir: c.stateDir,
      log: (level, msg, fields) => this.log[level](msg, fields),
      ...(serverUrl === null
        ? {}
        : {
            server: {
              url: serverUrl.replace(/\/+$/, ''),
              caFile: c.sync.caFile,
              serverName: c.sync.serverName,
              certSha256: c.sync.serverCertSha256 === null ? null : normalizePin(c.sync.serverCertSha256),
              credential: () => readHostCredential(c.stateDir, serverUrl),
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
    this.pipeline = new Pipeline({
      config: c,
      log: this.log,
      host: this.host,
      state: this.state,
      scorer,
      reporter: this.reporter,
      sightings: this.sightings,
      watchdog: this.watchdog,
      health: this.health,
      alertsOut,
      recordOut,
    });
    this.baselines = new BaselineSupply({
      path: opts.baselinePath,
      config: c,
      host: this.host,
      log: this.log,
      sightings: this.sightings,
      onBaseline: (reader) => this.useBaseline(reader),
      onBucketCache: (cache) => this.pipeline.useBucketCache(cache),
    });
  }

  /**
   * Starts the helper first (its programs take the longest to load), reads what it captures into the
   * queue while the baseline opens, then enriches and scores; resolves once capture runs, or early
   * when stop() is asked meanwhile.
   */
  start(): Promise<void> {
    // Stopped before it started: nothing to start.
    if (this.stopAsked) return this.starting ?? Promise.resolve();
    this.starting ??= this.startNow();
    return this.starting;
  }

  private async startNow(): Promise<void> {
    this.source = await (this.opts.source ?? openLiveSource(this.config.source, this.host, this.log));
    if (this.stopAsked) return;
    this.pipeline.capture(this.source);
    this.baselines.open();
    this.pipeline.process();
    // Say "watching" only once it is true: the helper attaches its programs after it starts.
    await this.untilCapturing(this.source, SOURCE_READY_TIMEOUT_MS);
    if (this.stopAsked) return;
    this.log.info('rarecon is watching outbound connections.', {
      host: hostKeyOf(this.host),
      source: this.source.name,
      sourceReason: this.source.reason,
      baselineVersion: this.pipeline.baseline.meta().version,
      stateDir: this.config.stateDir,
      // From the process start: what a restart leaves unwatched.
      startUpMs: Math.round(process.uptime() * 1000),
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
      // Asked to stop while it bound: stop() may have run past the close already.
      if (this.stopAsked) this.metricsServer?.close();
    }
    this.writeStatus();
  }

  /** Waits for the source to capture, or for a stop; a source that ended fails start(), a slow one is only logged. */
  private async untilCapturing(source: LiveSource, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    try {
      const r = await Promise.race([source.ready.then(() => 'ready' as const), late, this.stopAsk.then(() => 'stop' as const)]);
      if (r === 'late')
        this.log.warn(`The event source is not capturing yet after ${timeoutMs / 1000} s; starting anyway.`, { source: source.name });
    } catch (err) {
      // Stopped while starting: the source ends because it was told to, not a failure.
      if (!this.stopAsked) throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private useBaseline(reader: BaselineReader): void {
    this.pipeline.useBaseline(reader);
    const m = reader.meta();
    this.log.info('A baseline is in force.', {
      version: m.version,
      unit: m.observerUnit,
      windowStart: new Date(m.windowStartMs).toISOString(),
      windowEnd: new Date(m.windowEndMs).toISOString(),
    });
  }

  private tick(): void {
    this.pipeline.retryHeld();
    this.pipeline.dropClosed();
    this.health.settle();
    this.pipeline.releaseHeld();
    if (Date.now() - this.lastStatusMs >= this.config.statusIntervalMs) {
      this.pipeline.flushState();
      this.writeStatus();
    }
  }

  status(): DaemonStatus {
    const now = Date.now();
    return buildStatus(
      {
        ...this.pipeline.stats(now),
        startedMs: this.startedMs,
        host: hostKeyOf(this.host),
        baselinePath: this.opts.baselinePath,
        source: this.source?.stats() ?? null,
        reloadsTotal: this.reloadsTotal,
        alertsLast24h: this.state.alertsSince(now - DAY_MS),
        report: this.reporter.stats(),
        sync: this.baselines.status(),
        watchdog: this.watchdog.stats(),
        stateDir: this.health.stats(),
      },
      now,
    );
  }

  private writeStatus(): void {
    this.lastStatusMs = Date.now();
    writeStatusFile(join(this.config.stateDir, STATUS_FILE), this.status(), this.health);
  }

  /**
   * SIGHUP: a new config (sinks and report settings, detection, watchdog budgets, log level) and the
   * baseline file again. A bad file, or sinks that cannot be built, keep the whole running config.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading
      // A reload asked during start-up applies once it is done.
      .then(() => this.starting?.catch(() => {}))
      .then(() => (this.stopAsked ? undefined : this.reloadNow()))
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
      const { config, needRestart } = reloadedConfig(this.config, next);
      if (needRestart.length > 0)
        this.log.warn('Some changed settings take a restart; the running values stay until then.', { settings: needRestart });
      this.config = config;
      this.watchdog.setConfig(next.watchdog);
      this.log.setLevel?.(next.logLevel);
    }
    this.pipeline.reconfigure(this.config);
    this.baselines.reopen();
    this.reloadsTotal++;
    this.log.info('Config reloaded.', { reloads: this.reloadsTotal, ...(sinks === null ? {} : { sinks }) });
  }

  /** SIGTERM: stop capture, finish what is in flight, write state. Safe twice, and at any point of start(). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopAsked = true;
      this.wakeStart();
      // The start-up step in progress finishes first (an SQLite open, the source's probe), then all is closed.
      await this.starting?.catch(() => {});
      this.pipeline.halt();
      this.watchdog.stop();
      if (this.timer !== null) clearInterval(this.timer);
      await this.reloading;
      // A source opened for the daemon but never started by it is stopped too.
      const source = this.source ?? (await this.opts.source?.catch(() => null)) ?? null;
      await source?.shutdown();
      await this.pipeline.settle(STOP_SETTLE_MS);
      this.pipeline.flushState();
      this.pipeline.closeWrites();
      this.writeStatus();
      await this.baselines.stopSync();
      this.metricsServer?.close();
      await this.reporter.shutdown();
      this.baselines.closeFile();
      this.sightings.close();
      this.state.close();
      await this.pipeline.closeOutputs();
      const counts = this.pipeline.counters;
      this.log.info('rarecon stopped.', { scored: counts.scoredTotal, alerts: counts.alertsTotal });
    })();
    return this.stopping;
  }
}
