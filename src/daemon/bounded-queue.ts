// A bounded async queue between pipeline stages: it never grows past its
// capacity. When full, the oldest work of the lowest value goes to make room
// (the oldest is the furthest from a timely alert), counted; without a value
// function, the new item is dropped.
/** How far from the head a full queue looks for the item of least value: a push stays O(1). */
const SHED_SCAN = 64;

export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiter: (() => void) | null = null;
  private closed = false;
  /** Items lost at this queue: the new one, or an older one that made room for it. */
  droppedTotal = 0;
  /** Of droppedTotal: older items shed to make room for a new one of at least their value. */
  shedOldestTotal = 0;
  /** droppedTotal by the value of the item lost (index = value). */
  readonly droppedByValue: number[] = [];
  enqueuedTotal = 0;

  /** `valueOf`: a small integer, higher is worth more (kept longer); called only when the queue is full. */
  constructor(
    readonly capacity: number,
    private readonly valueOf: ((item: T) => number) | null = null,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** false when the new item was dropped (the queue is full of work worth more, or closed). */
  push(item: T): boolean {
    if (this.closed) {
      this.droppedTotal++;
      return false;
    }
    if (this.size >= this.capacity && !this.makeRoom(item)) return false;
    this.items.push(item);
    this.enqueuedTotal++;
    const w = this.waiter;
    this.waiter = null;
    w?.();
    return true;
  }

  /** Sheds the oldest item of least value among the oldest few, unless the new one is worth less than all of them. */
  private makeRoom(item: T): boolean {
    const valueOf = this.valueOf;
    const newValue = valueOf === null ? Number.NEGATIVE_INFINITY : valueOf(item);
    let victim = -1;
    let least = newValue;
    const end = Math.min(this.items.length, this.head + SHED_SCAN);
    if (valueOf !== null && this.capacity > 0)
      for (let i = this.head; i < end; i++) {
        const v = valueOf(this.items[i]!);
        // Ties go to the oldest: the first met, and an older item rather than the new one.
        if (victim === -1 ? v <= least : v < least) {
          victim = i;
          least = v;
        }
      }
    this.droppedTotal++;
    const lost = valueOf === null ? 0 : least;
    this.droppedByValue[lost] = (this.droppedByValue[lost] ?? 0) + 1;
    if (victim === -1) return false;
    // Close the gap from the head side: at most SHED_SCAN moves.
    for (let i = victim; i > this.head; i--) this.items[i] = this.items[i - 1]!;
    this.items[this.head] = undefined as T;
    this.head++;
    this.shedOldestTotal++;
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
