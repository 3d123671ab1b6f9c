// The report stage as the daemon sees it: open the outbox, build the sinks,
// run one delivery loop per sink; `enqueue` on each new alert; `shutdown`
// (safe twice) stops the loops, closes the sinks and the outbox. Whatever was
// not delivered stays in the outbox for the next start.
import { join } from 'node:path';
import type { Alert } from '../model/alert.js';
import { describeSink, type ReportConfig } from './config.js';
import { DeliveryLoop, type DeliveryStats } from './delivery.js';
import { silentLog, type LogFn } from './log.js';
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

export class Reporter {
  private shuttingDown: Promise<void> | null = null;

  private constructor(
    readonly outbox: Outbox,
    private readonly sinks: readonly AlertSink[],
    private readonly loops: readonly DeliveryLoop[],
  ) {}

  /** Throws on start-up failures (unusable outbox path, unreadable TLS files, missing token). */
  static start(cfg: ReportConfig, opts: ReporterOptions): Reporter {
    const log = opts.log ?? silentLog;
    const sinks: AlertSink[] = [];
    let outbox: Outbox;
    try {
      for (const s of cfg.sinks) sinks.push(opts.sinks?.get(s.name) ?? createSink(s, opts));
      outbox = Outbox.open({
        path: cfg.outbox.path ?? join(opts.stateDir, 'outbox.db'),
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
    const loops = cfg.sinks.map(
      (s, i) =>
        new DeliveryLoop(
          outbox,
          sinks[i]!,
          {
            batchMaxAlerts: s.batchMaxAlerts,
            lingerMs: s.lingerMs,
            pollMs: cfg.pollMs,
            backoff: cfg.backoff,
            maxAttempts: cfg.backoff.maxAttempts,
          },
          log,
        ),
    );
    for (const l of loops) l.start();
    const held = outbox.size;
    for (const s of cfg.sinks) log('info', 'Delivering alerts to a sink.', describeSink(s));
    if (held.rows > 0) log('info', 'Alerts left from an earlier run are queued for delivery.', { alerts: held.rows });
    return new Reporter(outbox, sinks, loops);
  }

  enqueue(alert: Alert): EnqueueResult {
    return this.outbox.enqueue(alert);
  }

  enqueueMany(alerts: readonly Alert[]): EnqueueResult {
    return this.outbox.enqueueMany(alerts);
  }

  stats(): ReportStats {
    return { outbox: this.outbox.stats(), delivery: this.loops.map((l) => l.stats()) };
  }

  deadLetters(limit = 100): DeadLetter[] {
    return this.outbox.deadLetters(limit);
  }

  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      await Promise.all(this.loops.map((l) => l.shutdown()));
      await Promise.all(this.sinks.map((s) => s.close()));
      this.outbox.close();
    })();
    return this.shuttingDown;
  }
}
