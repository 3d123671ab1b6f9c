// Puts events back in time order per host. A Windows Event Collector forwards
// hosts in bursts, so one host's events may lag another's by minutes while each
// host's own stream is out of order by only a second or two: a watermark per
// host keeps the window short without holding up the others.

interface Entry<T> {
  item: T;
  timeMs: number;
  rank: number;
  seq: number;
}

function before<T>(a: Entry<T>, b: Entry<T>): boolean {
  if (a.timeMs !== b.timeMs) return a.timeMs < b.timeMs;
  if (a.rank !== b.rank) return a.rank < b.rank;
  return a.seq < b.seq;
}

/** A binary min-heap by (time, rank, arrival). */
class TimeHeap<T> {
  private readonly a: Entry<T>[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): Entry<T> | undefined {
    return this.a[0];
  }

  push(e: Entry<T>): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as Entry<T>;
      if (!before(e, parent)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = e;
  }

  pop(): Entry<T> | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const left = a[l] as Entry<T>;
      const right = a[r];
      const c = right !== undefined && before(right, left) ? r : l;
      const child = a[c] as Entry<T>;
      if (!before(child, last)) break;
      a[i] = child;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

interface HostQueue<T> {
  heap: TimeHeap<T>;
  /** Latest event time seen for the host. */
  watermarkMs: number;
  /** Time of the last item released; an item older than this arrived too late to sort. */
  releasedMs: number;
}

export interface ReorderStats {
  /** Items that arrived after later items of their host had been released. */
  lateTotal: number;
  /** Times a host's items started over much earlier (another stretch of its log, e.g. an older rotated file read after a newer one). */
  rewindTotal: number;
  /** Items released early because a host's buffer was full. */
  overflowTotal: number;
}

export class ReorderBuffer<T> {
  private readonly hosts = new Map<string, HostQueue<T>>();
  private seq = 0;
  private readonly counts: ReorderStats = { lateTotal: 0, overflowTotal: 0, rewindTotal: 0 };

  /**
   * `rewindMs`: an item older than the window's start (its host's latest
   * time less `windowMs`) by more than this is not a straggler but the start
   * of another stretch of that host's log: what is held goes out and sorting
   * starts over from it.
   */
  constructor(
    private readonly windowMs: number,
    private readonly maxPerHost: number,
    private readonly rewindMs: number = Infinity,
  ) {}

  /**
   * Adds an item; appends to `out` whatever of its host is now older than the
   * window. `rank` breaks ties at equal times (lower first).
   */
  push(hostKey: string, timeMs: number, rank: number, item: T, out: T[]): void {
    let q = this.hosts.get(hostKey);
    if (q === undefined) {
      q = { heap: new TimeHeap<T>(), watermarkMs: timeMs, releasedMs: -Infinity };
      this.hosts.set(hostKey, q);
    }
    if (timeMs < q.watermarkMs - this.windowMs - this.rewindMs) {
      // Files given newest first: the older one is sorted in its own right rather than passed on unsorted.
      this.counts.rewindTotal++;
      this.release(q, Infinity, out);
      q.watermarkMs = timeMs;
      q.releasedMs = -Infinity;
    } else if (timeMs < q.releasedMs) {
      // Too late to sort in: pass it on now rather than drop it.
      this.counts.lateTotal++;
      out.push(item);
      return;
    }
    q.heap.push({ item, timeMs, rank, seq: this.seq++ });
    if (timeMs > q.watermarkMs) q.watermarkMs = timeMs;
    this.release(q, q.watermarkMs - this.windowMs, out);
    while (q.heap.size > this.maxPerHost) {
      this.counts.overflowTotal++;
      this.releaseOne(q, out);
    }
  }

  /** Everything still held, each host in time order. */
  flush(out: T[]): void {
    for (const q of this.hosts.values()) this.release(q, Infinity, out);
    this.hosts.clear();
  }

  get size(): number {
    let n = 0;
    for (const q of this.hosts.values()) n += q.heap.size;
    return n;
  }

  stats(): ReorderStats {
    return { ...this.counts };
  }

  private release(q: HostQueue<T>, upToMs: number, out: T[]): void {
    for (let top = q.heap.peek(); top !== undefined && top.timeMs <= upToMs; top = q.heap.peek()) this.releaseOne(q, out);
  }

  private releaseOne(q: HostQueue<T>, out: T[]): void {
    const e = q.heap.pop();
    if (e === undefined) return;
    if (e.timeMs > q.releasedMs) q.releasedMs = e.timeMs;
    out.push(e.item);
  }
}
