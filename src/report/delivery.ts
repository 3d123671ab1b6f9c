// One delivery loop per sink: pull the sink's next batch from the outbox in
// queue order, send it, then mark it done (ack or dead letter) or back off.
// One batch is in flight per sink, and a failed batch is sent again before
// anything behind it, so each sink sees every host's alerts in order.
import type { Outbox, OutboxItem, StoreFailure } from './outbox.js';
import type { AlertSink, SendResult } from './sink.js';
import { backoffDelayMs, type BackoffOptions } from '../common/backoff.js';
import { errorText } from './sink.js';
import { silentLog, type LogFn } from '../common/log.js';

export interface DeliveryOptions {
  batchMaxAlerts: number;
  /** How long to wait for a batch to fill once alerts are waiting. */
  lingerMs: number;
  /** Fallback poll when idle, in case an alert was stored by another process. */
  pollMs: number;
  backoff: BackoffOptions;
  /** Retryable failures before an alert is dead-lettered; 0 retries for ever. */
  maxAttempts: number;
  random?: () => number;
  now?: () => number;
}

export type DeliveryState = 'idle' | 'sending' | 'backing-off' | 'stopped';

export interface DeliveryStats {
  sink: string;
  state: DeliveryState;
  batchesSentTotal: number;
  consecutiveFailures: number;
  /** When the next attempt may start after a failure (epoch ms), or null. */
  nextAttemptMs: number | null;
  /** Alerts sent whose completion could not yet be written (disk full). */
  unsavedDone: number;
}

function abortableSleep(ms: number, signal: AbortSignal, wake?: (resolve: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
    wake?.(done);
  });
}

export class DeliveryLoop {
  private readonly abort = new AbortController();
  private readonly log: LogFn;
  private readonly now: () => number;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private state: DeliveryState = 'idle';
  private failures = 0;
  private failingSinceMs = 0;
  private nextAttemptMs = 0;
  private batchesSent = 0;
  /** Highest seq this loop has finished with (sent and acked, or dead-lettered), saved or not. */
  private cursor = 0;
  /** Finished work the outbox could not write yet (e.g. a full disk); retried before each batch. */
  private readonly unsaved: Array<{ kind: 'ack' | 'dead'; seqs: number[]; reason: string }> = [];
  /** After a batch failed for good, its alerts go one by one so only the bad ones are dead-lettered. */
  private isolateThroughSeq = 0;
  private storeFailing = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly sink: AlertSink,
    private readonly opts: DeliveryOptions,
    log: LogFn = silentLog,
  ) {
    this.log = log;
    this.now = opts.now ?? Date.now;
  }

  /** Starts the loop; aborting `signal` (the daemon's) stops it like `shutdown()`. */
  start(signal?: AbortSignal): void {
    if (this.running !== null || this.abort.signal.aborted) return;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.abort.abort();
        return;
      }
      signal.addEventListener('abort', () => void this.shutdown(), { once: true });
    }
    this.unsubscribe = this.outbox.onEnqueue(() => this.wake?.());
    this.running = this.run().finally(() => {
      this.state = 'stopped';
    });
  }

  /** Stops after the batch in flight is abandoned or settled; safe to call twice. */
  async shutdown(): Promise<void> {
    this.abort.abort();
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.wake?.();
    if (this.running !== null) await this.running;
    this.state = 'stopped';
    this.saveUnsaved();
  }

  stats(): DeliveryStats {
    return {
      sink: this.sink.name,
      state: this.state,
      batchesSentTotal: this.batchesSent,
      consecutiveFailures: this.failures,
      nextAttemptMs: this.failures > 0 ? this.nextAttemptMs : null,
      unsavedDone: this.unsaved.reduce((n, op) => n + op.seqs.length, 0),
    };
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let lingered = false;
    while (!signal.aborted) {
      try {
        this.saveUnsaved();
        const waitMs = this.nextAttemptMs - this.now();
        if (waitMs > 0) {
          this.state = 'backing-off';
          await abortableSleep(waitMs, signal);
          continue;
        }
        const limit = this.cursor < this.isolateThroughSeq ? 1 : this.opts.batchMaxAlerts;
        const got = this.outbox.next(this.sink.name, limit, this.cursor);
        if (!got.ok) {
          if (got.reason === 'closed') return;
          this.storeProblem('be read', got);
          this.pause();
          continue;
        }
        if (this.unsaved.length === 0) this.storeOk();
        if (got.items.length === 0) {
          this.state = 'idle';
          lingered = false;
          await abortableSleep(this.opts.pollMs, signal, (w) => (this.wake = w));
          this.wake = null;
          continue;
        }
        if (got.items.length < limit && this.opts.lingerMs > 0 && !lingered) {
          lingered = true;
          await abortableSleep(this.opts.lingerMs, signal);
          continue;
        }
        lingered = false;
        await this.deliver(got.items, signal);
      } catch (err) {
        // A throw here is a bug in rarecon, not an upstream problem: say so and keep going.
        this.log('error', 'The delivery loop hit an unexpected error; it will try again.', { sink: this.sink.name, error: errorText(err) });
        this.pause();
      }
    }
  }

  private async send(items: readonly OutboxItem[], signal: AbortSignal): Promise<SendResult> {
    try {
      return await this.sink.send(
        items.map((i) => i.alert),
        signal,
      );
    } catch (err) {
      this.log('error', 'A sink threw instead of returning a result; treating it as retryable.', {
        sink: this.sink.name,
        error: errorText(err),
      });
      return { status: 'retryable', error: err instanceof Error ? err : new Error(String(err)) };
    }
  }

  private async deliver(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    this.state = 'sending';
    const seqs = items.map((i) => i.seq);
    const lastSeq = seqs[seqs.length - 1] ?? this.cursor;
    const result = await this.send(items, signal);
    if (result.status === 'success') {
      this.batchesSent++;
      this.cursor = lastSeq;
      this.done('ack', seqs);
      if (this.failures > 0) {
        this.log('info', 'The sink accepts alerts again.', {
          sink: this.sink.name,
          failedAttempts: this.failures,
          downMs: this.now() - this.failingSinceMs,
        });
      }
      this.failures = 0;
      this.nextAttemptMs = 0;
      return;
    }
    // Abandoned by shutdown: the alerts stay queued for the next start.
    if (signal.aborted) return;
    const message = errorText(result.error);
    if (result.status === 'failure') {
      if (items.length > 1) {
        this.isolateThroughSeq = lastSeq;
        this.log('warn', 'The sink refused a batch; sending its alerts one at a time to find the ones it refuses.', {
          sink: this.sink.name,
          alerts: items.length,
          error: message,
        });
        return;
      }
      this.cursor = lastSeq;
      this.done('dead', seqs, message);
      this.log('error', 'The sink refused an alert for good; it was moved to the dead-letter table.', {
        sink: this.sink.name,
        uid: items[0]?.uid,
        reason: message,
      });
      return;
    }
    // Retryable.
    if (this.opts.maxAttempts > 0) {
      const spent = items.filter((i) => i.attempts + 1 >= this.opts.maxAttempts);
      if (spent.length > 0 && spent[0] === items[0]) {
        // Only a prefix may go, so order holds for what stays.
        const prefix: OutboxItem[] = [];
        for (const i of items) {
          if (i.attempts + 1 < this.opts.maxAttempts) break;
          prefix.push(i);
        }
        const reason = `gave up after ${this.opts.maxAttempts} attempts: ${message}`;
        this.cursor = prefix[prefix.length - 1]?.seq ?? this.cursor;
        this.done(
          'dead',
          prefix.map((i) => i.seq),
          reason,
        );
        this.log('error', 'Alerts ran out of delivery attempts and were moved to the dead-letter table.', {
          sink: this.sink.name,
          alerts: prefix.length,
          reason,
        });
      }
    }
    const marked = this.outbox.retry(
      this.sink.name,
      seqs.filter((s) => s > this.cursor),
      message,
    );
    // The attempt count only feeds maxAttempts and the dead-letter record: not worth an alarm of its own.
    if (!marked.ok && marked.reason !== 'closed') {
      this.log('debug', 'The outbox could not count a failed attempt.', { sink: this.sink.name, reason: marked.reason });
    }
    if (this.failures === 0) {
      this.failingSinceMs = this.now();
      this.log('warn', 'The sink is not accepting alerts; they stay in the outbox and will be retried.', {
        sink: this.sink.name,
        error: message,
      });
    } else {
      this.log('debug', 'The sink failed again.', { sink: this.sink.name, error: message, failures: this.failures + 1 });
    }
    this.backOff(result.retryAfterMs);
  }

  /** A local problem (not the sink's): wait a little without counting it against the sink. */
  private pause(): void {
    this.nextAttemptMs = this.now() + this.opts.backoff.initialMs;
  }

  private backOff(retryAfterMs: number | undefined): void {
    this.failures++;
    this.nextAttemptMs = this.now() + backoffDelayMs(this.failures, this.opts.backoff, retryAfterMs, this.opts.random);
  }

  private done(kind: 'ack' | 'dead', seqs: number[], reason = ''): void {
    if (seqs.length === 0) return;
    this.unsaved.push({ kind, seqs, reason });
    this.saveUnsaved();
  }

  /** Writes finished work to the outbox in order; on a full disk it stays here and delivery goes on past it. */
  private saveUnsaved(): void {
    if (this.unsaved.length === 0) return;
    while (this.unsaved.length > 0) {
      const op = this.unsaved[0]!;
      const r = op.kind === 'ack' ? this.outbox.ack(this.sink.name, op.seqs) : this.outbox.deadLetter(this.sink.name, op.seqs, op.reason);
      if (!r.ok) {
        if (r.reason !== 'closed') this.storeProblem('mark alerts done', r);
        return;
      }
      this.unsaved.shift();
    }
    this.storeOk();
  }

  private storeOk(): void {
    if (!this.storeFailing) return;
    this.storeFailing = false;
    this.log('info', 'The outbox can be read and written again.', { sink: this.sink.name });
  }

  private storeProblem(what: string, f: StoreFailure): void {
    if (this.storeFailing) return;
    this.storeFailing = true;
    this.log('error', `The outbox could not ${what}; delivered alerts may be sent again after a restart.`, {
      sink: this.sink.name,
      reason: f.reason,
      error: f.error,
    });
  }
}
