// The report stage as the daemon sees it: open the outbox, build the sinks,
// run one delivery loop per sink; `enqueue` on each new alert; `shutdown`
// (safe twice) stops the loops, closes the sinks and the outbox; `reload`
// applies new sinks keeping the queue. Whatever was not delivered stays in the
// outbox for the next start.
import { join } from 'node:path';
import type { Alert } from '../model/alert.js';
import { describeSink } from './config.js';
import { type ReportConfig, type SinkConfig } from '../config/defaults.js';
import { DeliveryLoop, type DeliveryStats } from './delivery.js';
import { silentLog, type LogFn } from '../common/log.js';
import { Outbox, type DeadLetter, type EnqueueResult, type OutboxStats } from './outbox.js';
import type { AlertSink } from './sink.js';
import { createSink, type SinkEnvironment } from './sinks.js';

export interface ReporterOptions extends SinkEnvironment {
  /** The outbox goes to `<stateDir>/outbox.db` unless `report.outbox.path` says otherwise. */
  stateDir: string;
  log?: LogFn;
  /** Sinks built by the caller, by name, in place of those the config would build (tests, embedding). */
  sinks?: ReadonlyMap<string, AlertSink>;
}

export interface ReportStats {
  outbox: OutboxStats;
  delivery: DeliveryStats[];
}

/** One configured sink and its delivery loop. */
interface Lane {
  /** The sink's settings and the loop's, as JSON: equal keys mean the lane can run on through a reload. */
  key: string;
  cfg: SinkConfig;
  sink: AlertSink;
  loop: DeliveryLoop;
}

export type ReloadResult =
  { ok: true; added: string[]; removed: string[]; changed: string[]; kept: string[] } | { ok: false; error: string };

export class Reporter {
  private shuttingDown: Promise<void> | null = null;
  private reloading: Promise<ReloadResult> | null = null;

  private constructor(
    readonly outbox: Outbox,
    private lanes: Lane[],
    private cfg: ReportConfig,
    private readonly opts: ReporterOptions,
    private readonly log: LogFn,
  ) {}

  private static laneKey(s: SinkConfig, cfg: ReportConfig): string {
    return JSON.stringify({ s, pollMs: cfg.pollMs, backoff: cfg.backoff });
  }

  private static lane(s: SinkConfig, sink: AlertSink, outbox: Outbox, cfg: ReportConfig, log: LogFn): Lane {
    const loop = new DeliveryLoop(
      outbox,
      sink,
      {
        batchMaxAlerts: s.batchMaxAlerts,
        lingerMs: s.lingerMs,
        pollMs: cfg.pollMs,
        backoff: cfg.backoff,
        maxAttempts: cfg.backoff.maxAttempts,
      },
      log,
    );
    return { key: Reporter.laneKey(s, cfg), cfg: s, sink, loop };
  }

  /** Throws on start-up failures (unusable outbox path, unreadable TLS files, missing token). */
  static start(cfg: ReportConfig, opts: ReporterOptions): Reporter {
    const log = opts.log ?? silentLog;
    const sinks: AlertSink[] = [];
    let outbox: Outbox;
    try {
      for (const s of cfg.sinks) sinks.push(opts.sinks?.get(s.name) ?? createSink(s, opts));
      outbox = Outbox.open({
        path: Reporter.outboxPath(cfg, opts),
        sinks: cfg.sinks.map((s) => s.name),
        maxRows: cfg.outbox.maxRows,
        maxBytes: cfg.outbox.maxBytes,
        synchronous: cfg.outbox.synchronous,
        deadLetterMaxRows: cfg.outbox.deadLetterMaxRows,
        log,
      });
    } catch (err) {
      for (const s of sinks) void s.close();
      throw err;
    }
    const lanes = cfg.sinks.map((s, i) => Reporter.lane(s, sinks[i]!, outbox, cfg, log));
    for (const l of lanes) l.loop.start();
    const held = outbox.size;
    for (const s of cfg.sinks) log('info', 'Delivering alerts to a sink.', describeSink(s));
    if (held.rows > 0) log('info', 'Alerts left from an earlier run are queued for delivery.', { alerts: held.rows });
    return new Reporter(outbox, lanes, cfg, opts, log);
  }

  private static outboxPath(cfg: ReportConfig, opts: ReporterOptions): string {
    return cfg.outbox.path ?? join(opts.stateDir, 'outbox.db');
  }

  /**
   * Applies a new report config (SIGHUP) without losing queued alerts: the
   * outbox stays open, unchanged sinks keep delivering, a changed sink (same
   * name) delivers its queue with the new settings, a removed sink's queue is
   * dropped, an added sink gets alerts from now on. When a new sink cannot be
   * built (a missing token, an unreadable certificate) nothing changes.
   * A new outbox path needs a restart.
   */
  reload(cfg: ReportConfig): Promise<ReloadResult> {
    const run = async (): Promise<ReloadResult> => {
      if (this.shuttingDown !== null) return { ok: false, error: 'the report stage is shutting down' };
      const log = this.log;
      const old = new Map(this.lanes.map((l) => [l.cfg.name, l]));
      const fresh = new Map<string, AlertSink>();
      try {
        for (const s of cfg.sinks) {
          const was = old.get(s.name);
          if (was !== undefined && was.key === Reporter.laneKey(s, cfg)) continue;
          fresh.set(s.name, this.opts.sinks?.get(s.name) ?? createSink(s, this.opts));
        }
      } catch (err) {
        for (const sink of fresh.values()) void sink.close();
        return { ok: false, error: (err as Error).message };
      }
      const next = new Set(cfg.sinks.map((s) => s.name));
      const stopping = this.lanes.filter((l) => !next.has(l.cfg.name) || fresh.has(l.cfg.name));
      // Stop the loops that go or change; their unsent alerts stay in the outbox.
      await Promise.all(stopping.map((l) => l.loop.shutdown()));
      await Promise.all(stopping.filter((l) => l.sink !== fresh.get(l.cfg.name)).map((l) => l.sink.close()));
      if (Reporter.outboxPath(cfg, this.opts) !== Reporter.outboxPath(this.cfg, this.opts)) {
        log('warn', 'A new outbox path takes a restart; the running outbox stays in use.', {
          path: Reporter.outboxPath(this.cfg, this.opts),
        });
      }
      const r = this.outbox.reconfigure({
        sinks: cfg.sinks.map((s) => s.name),
        maxRows: cfg.outbox.maxRows,
        maxBytes: cfg.outbox.maxBytes,
        deadLetterMaxRows: cfg.outbox.deadLetterMaxRows,
        synchronous: cfg.outbox.synchronous,
      });
      if (!r.ok)
        log('error', 'The outbox could not take the new sinks in full; it tries again at the next start.', {
          reason: r.reason,
          error: r.error,
        });
      const lanes: Lane[] = [];
      const result = { added: [] as string[], removed: [] as string[], changed: [] as string[], kept: [] as string[] };
      for (const s of cfg.sinks) {
        const was = old.get(s.name);
        const sink = fresh.get(s.name);
        if (sink === undefined && was !== undefined) {
          lanes.push(was);
          result.kept.push(s.name);
          continue;
        }
        const lane = Reporter.lane(s, sink as AlertSink, this.outbox, cfg, log);
        lane.loop.start();
        lanes.push(lane);
        (was === undefined ? result.added : result.changed).push(s.name);
        log(
          'info',
          was === undefined ? 'Delivering alerts to a new sink.' : 'Delivering alerts to a sink with new settings.',
          describeSink(s),
        );
      }
      for (const name of old.keys()) if (!next.has(name)) result.removed.push(name);
      this.lanes = lanes;
      this.cfg = { ...cfg, outbox: { ...cfg.outbox, path: this.cfg.outbox.path } };
      return { ok: true, ...result };
    };
    // One reload at a time: a second SIGHUP waits for the first.
    const p = (this.reloading ?? Promise.resolve()).then(run, run);
    this.reloading = p;
    return p;
  }

  enqueue(alert: Alert): EnqueueResult {
    return this.outbox.enqueue(alert);
  }

  enqueueMany(alerts: readonly Alert[]): EnqueueResult {
    return this.outbox.enqueueMany(alerts);
  }

  stats(): ReportStats {
    return { outbox: this.outbox.stats(), delivery: this.lanes.map((l) => l.loop.stats()) };
  }

  deadLetters(limit = 100): DeadLetter[] {
    return this.outbox.deadLetters(limit);
  }

  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      await this.reloading?.catch(() => undefined);
      await Promise.all(this.lanes.map((l) => l.loop.shutdown()));
      await Promise.all(this.lanes.map((l) => l.sink.close()));
      this.outbox.close();
    })();
    return this.shuttingDown;
  }
}
