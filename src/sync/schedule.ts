// When syncs run: a cron schedule (UTC) whose ticks are spread by a random
// jitter so a fleet does not sync in step, and one retry timer that a failure
// sets with exponential backoff. Timers are unref'd: they never keep the
// process alive.
import cron, { type ScheduledTask } from 'node-cron';
import { backoffDelayMs } from '../common/backoff.js';
import type { SyncConfig } from '../config/defaults.js';

/** The wait before retry number `failures`, never shorter than the server's Retry-After (cut to backoffMaxMs). */
export function retryDelayMs(
  cfg: Pick<SyncConfig, 'backoffInitialMs' | 'backoffMaxMs'>,
  failures: number,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  return backoffDelayMs(
    failures,
    { initialMs: cfg.backoffInitialMs, maxMs: cfg.backoffMaxMs, maxRetryAfterMs: cfg.backoffMaxMs },
    retryAfterMs,
    random,
  );
}

export interface SyncScheduleOptions {
  cfg: Pick<SyncConfig, 'syncCron' | 'jitterMs'>;
  /** Starts a sync (not awaited). */
  run: () => void;
  now: () => number;
  random: () => number;
}

export class SyncSchedule {
  private task: ScheduledTask | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private jitterTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: SyncScheduleOptions) {}

  /** True while the cron schedule runs (failures then set a retry). */
  get active(): boolean {
    return this.task !== null;
  }

  /** Starts the cron schedule; false when started already or stopped. Throws for a bad cron expression. */
  start(): boolean {
    if (this.task !== null || this.stopped) return false;
    const { syncCron, jitterMs } = this.opts.cfg;
    if (!cron.validate(syncCron)) throw new Error(`sync.syncCron "${syncCron}" is not a cron expression`);
    this.task = cron.schedule(
      syncCron,
      () => {
        if (this.jitterTimer !== null) return;
        this.jitterTimer = setTimeout(
          () => {
            this.jitterTimer = null;
            this.opts.run();
          },
          Math.floor(this.opts.random() * jitterMs),
        );
        this.jitterTimer.unref();
      },
      { timezone: 'UTC', noOverlap: true },
    );
    return true;
  }

  /** Runs a sync in `ms` (replacing a retry already set); the time it will run, or null once stopped. */
  retryIn(ms: number): number | null {
    if (this.stopped) return null;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const at = this.opts.now() + ms;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.opts.run();
    }, ms);
    this.retryTimer.unref();
    return at;
  }

  /** Clears the timers at once, then waits for the cron task to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.retryTimer, this.jitterTimer]) if (t !== null) clearTimeout(t);
    if (this.task !== null) {
      await this.task.stop();
      await this.task.destroy();
      this.task = null;
    }
  }
}
