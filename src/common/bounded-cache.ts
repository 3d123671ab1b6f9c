// A small LRU in front of every enricher. A Map keeps insertion order, so
// re-inserting on a hit moves an entry to the young end and the first key is
// always the least recently used one.

export interface BoundedCacheOptions {
  maxEntries: number;
  /** Entries older than this are misses (and are removed). Unset = no expiry. */
  ttlMs?: number | undefined;
  /** Injectable clock for tests. */
  now?: (() => number) | undefined;
}

export interface CacheStats {
  entries: number;
  maxEntries: number;
  hitsTotal: number;
  missesTotal: number;
  evictionsTotal: number;
}

interface Slot<V> {
  value: V;
  storedAtMs: number;
}

export class BoundedCache<K, V> {
  readonly maxEntries: number;
  private readonly ttlMs: number | undefined;
  private readonly now: () => number;
  private readonly map = new Map<K, Slot<V>>();
  private hitsTotal = 0;
  private missesTotal = 0;
  private evictionsTotal = 0;

  constructor(opts: BoundedCacheOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 1) {
      throw new RangeError(`BoundedCache maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    this.maxEntries = opts.maxEntries;
    this.ttlMs = opts.ttlMs;
    this.now = opts.now ?? Date.now;
  }

  /** The value for `key`, counted as a hit or a miss. */
  get(key: K): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined || this.expired(slot)) {
      if (slot !== undefined) this.map.delete(key);
      this.missesTotal++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, slot);
    this.hitsTotal++;
    return slot.value;
  }

  /** Like `get`, without counting and without refreshing recency. */
  peek(key: K): V | undefined {
    const slot = this.map.get(key);
    return slot === undefined || this.expired(slot) ? undefined : slot.value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, { value, storedAtMs: this.now() });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      this.map.delete(oldest.value);
      this.evictionsTotal++;
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }

  stats(): CacheStats {
    return {
      entries: this.map.size,
      maxEntries: this.maxEntries,
      hitsTotal: this.hitsTotal,
      missesTotal: this.missesTotal,
      evictionsTotal: this.evictionsTotal,
    };
  }

  private expired(slot: Slot<V>): boolean {
    return this.ttlMs !== undefined && this.now() - slot.storedAtMs > this.ttlMs;
  }
}
