// A bounded async queue between pipeline stages: when full it drops the new
// item and counts it, rather than growing without bound.
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiter: (() => void) | null = null;
  private closed = false;
  droppedTotal = 0;
  enqueuedTotal = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** false when the item was dropped because the queue is full or closed. */
  push(item: T): boolean {
    if (this.closed || this.size >= this.capacity) {
      this.droppedTotal++;
      return false;
    }
    this.items.push(item);
    this.enqueuedTotal++;
    const w = this.waiter;
    this.waiter = null;
    w?.();
    return true;
  }

  close(): void {
    this.closed = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.head < this.items.length) {
        const item = this.items[this.head]!;
        this.items[this.head] = undefined as T;
        this.head++;
        if (this.head > 4096 && this.head * 2 > this.items.length) {
          this.items.splice(0, this.head);
          this.head = 0;
        }
        yield item;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}
