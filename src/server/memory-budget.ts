// One budget of request bytes held in memory by every request together, so
// many large uploads at once cannot exhaust the server's memory: a body
// reserves its share before its bytes are kept, and gives it back when its
// answer is sent. What does not fit is answered 503 with Retry-After.

/**
 * Budget bytes a body byte costs while its request is handled: the chunks, the
 * text decoded from them, and what JSON.parse and the re-serialised rows make
 * of it (measured: a 30 MB alert batch takes ~100 MB of heap once parsed).
 */
export const BODY_MEMORY_FACTOR = 5;

export interface BudgetFigures {
  limitBytes: number;
  inUseBytes: number;
  peakBytes: number;
  refusedTotal: number;
}

export class MemoryBudget {
  private used = 0;
  private peak = 0;
  private refused = 0;

  constructor(readonly limitBytes: number) {}

  /** A reservation for one request, empty at first; release() it when the answer is done (safe twice). */
  open(): Reservation {
    return new Reservation(this);
  }

  /** @internal */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) {
      this.refused++;
      return false;
    }
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
    return true;
  }

  /** @internal */
  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  figures(): BudgetFigures {
    return { limitBytes: this.limitBytes, inUseBytes: this.used, peakBytes: this.peak, refusedTotal: this.refused };
  }
}

export class Reservation {
  private held = 0;
  private done = false;

  constructor(private readonly budget: MemoryBudget) {}

  /** Reserves room for `bodyBytes` more bytes of body; false (nothing taken) when the budget cannot hold them. */
  grow(bodyBytes: number): boolean {
    if (this.done) return false;
    const cost = bodyBytes * BODY_MEMORY_FACTOR;
    if (!this.budget.take(cost)) return false;
    this.held += cost;
    return true;
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.budget.give(this.held);
    this.held = 0;
  }
}
