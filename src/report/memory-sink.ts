// An in-memory sink, shipped beside the real ones as a test double: it records
// every batch and can be told to fail a number of times, for ever, or to ask
// for a Retry-After, or to be slow.
import type { Alert } from '../model/alert.js';
import type { AlertSink, SendResult } from './sink.js';

export interface MemoryFailure {
  status: 'retryable' | 'failure';
  message?: string;
  retryAfterMs?: number;
}

export class MemorySink implements AlertSink {
  readonly batches: Alert[][] = [];
  /** Calls of send, failed ones included. */
  calls = 0;
  private failuresLeft = 0;
  private failWith: MemoryFailure | null = null;
  private delayMs = 0;
  private refuse: ((a: Alert) => boolean) | null = null;
  closed = false;

  constructor(readonly name = 'memory') {}

  /** Every alert delivered, in order (duplicates included). */
  get alerts(): Alert[] {
    return this.batches.flat();
  }

  /** The next `times` sends fail this way. */
  failNext(times: number, how: MemoryFailure = { status: 'retryable' }): this {
    this.failuresLeft = times;
    this.failWith = how;
    return this;
  }

  failForever(how: MemoryFailure = { status: 'retryable' }): this {
    return this.failNext(Number.POSITIVE_INFINITY, how);
  }

  /** A batch holding an alert that matches fails for good (as a 400 for one bad record would). */
  refuseWhen(match: ((a: Alert) => boolean) | null): this {
    this.refuse = match;
    return this;
  }

  heal(): this {
    this.failuresLeft = 0;
    this.failWith = null;
    return this;
  }

  slow(delayMs: number): this {
    this.delayMs = delayMs;
    return this;
  }

  async send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    this.calls++;
    if (this.delayMs > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, this.delayMs);
        signal.addEventListener('abort', done, { once: true });
      });
    }
    if (signal.aborted) return { status: 'retryable', error: new Error('aborted') };
    if (this.failuresLeft > 0 && this.failWith !== null) {
      this.failuresLeft--;
      const f = this.failWith;
      const error = new Error(f.message ?? `memory sink told to fail (${f.status})`);
      if (f.status === 'failure') return { status: 'failure', error };
      return f.retryAfterMs === undefined ? { status: 'retryable', error } : { status: 'retryable', error, retryAfterMs: f.retryAfterMs };
    }
    if (this.refuse !== null && batch.some(this.refuse)) return { status: 'failure', error: new Error('memory sink refused an alert') };
    this.batches.push([...batch]);
    return { status: 'success' };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
