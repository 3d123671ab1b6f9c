// Bounded caches in front of SQLite for the endpoint's lookups. Direct-mapped:
// each key has one slot and a newcomer overwrites it, so eviction costs nothing,
// memory is fixed at construction (typed arrays, no per-entry objects) and a hit
// allocates nothing. Skewed streams (a host talks to the same few combos all day)
// hit well; a slot conflict only costs one more SQLite read.
import { HEX_VALUE, SHA256_BYTES, SHA256_HEX_LENGTH } from './hex.js';

/** Returned by find() when the key is not cached. */
export const CACHE_MISS = -2;
/** A process the baseline has never seen (process() returns undefined). */
export const PROCESS_ABSENT = -1;

function slotsFor(entries: number): number {
  let n = 1;
  while (n < entries) n *= 2;
  return n;
}

export interface CacheCounters {
  hits: number;
  misses: number;
}

/** sha256 -> observers (or PROCESS_ABSENT). Keyed by the sha's own leading digits: sha256 is uniform. */
export class ProcessCache implements CacheCounters {
  hits = 0;
  misses = 0;
  private readonly mask: number;
  private readonly shas: Uint8Array;
  private readonly values: Int32Array;

  constructor(entries: number) {
    const n = slotsFor(entries);
    this.mask = n - 1;
    this.shas = new Uint8Array(n * SHA256_BYTES);
    this.values = new Int32Array(n).fill(CACHE_MISS);
  }

  get slotCount(): number {
    return this.mask + 1;
  }

  /** Slot of a sha256 hex string, -1 when it is not 64 characters long. */
  slotOf(sha256Hex: string): number {
    if (sha256Hex.length !== SHA256_HEX_LENGTH) return -1;
    let x = 0;
    for (let i = 0; i < 7; i++) x = (x << 4) | ((HEX_VALUE[sha256Hex.charCodeAt(i)] as number) & 15);
    return x & this.mask;
  }

  /** The cached value for sha256Hex in its slot, or CACHE_MISS. */
  find(slot: number, sha256Hex: string): number {
    const v = this.values[slot] as number;
    if (v !== CACHE_MISS) {
      const base = slot * SHA256_BYTES;
      const shas = this.shas;
      let same = true;
      for (let i = 0; i < SHA256_BYTES; i++) {
        const hi = HEX_VALUE[sha256Hex.charCodeAt(2 * i)] as number;
        const lo = HEX_VALUE[sha256Hex.charCodeAt(2 * i + 1)] as number;
        if ((hi | lo) < 0 || ((hi << 4) | lo) !== shas[base + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.hits++;
        return v;
      }
    }
    this.misses++;
    return CACHE_MISS;
  }

  /** Stores the value for the decoded sha256 (32 bytes) in its slot. */
  store(slot: number, sha: Uint8Array, value: number): void {
    this.shas.set(sha.subarray(0, SHA256_BYTES), slot * SHA256_BYTES);
    this.values[slot] = value;
  }
}

/** Combo hash (h1, h2: 64 bits) -> observers, or the combo table's see-exact marker. */
export class ComboCache implements CacheCounters {
  hits = 0;
  misses = 0;
  private readonly mask: number;
  private readonly h1s: Int32Array;
  private readonly h2s: Int32Array;
  private readonly values: Int32Array;

  constructor(entries: number) {
    const n = slotsFor(entries);
    this.mask = n - 1;
    this.h1s = new Int32Array(n);
    this.h2s = new Int32Array(n);
    this.values = new Int32Array(n).fill(CACHE_MISS);
  }

  get slotCount(): number {
    return this.mask + 1;
  }

  find(h1: number, h2: number): number {
    const slot = h1 & this.mask;
    const v = this.values[slot] as number;
    if (v !== CACHE_MISS && this.h1s[slot] === h1 && this.h2s[slot] === h2) {
      this.hits++;
      return v;
    }
    this.misses++;
    return CACHE_MISS;
  }

  store(h1: number, h2: number, value: number): void {
    const slot = h1 & this.mask;
    this.h1s[slot] = h1;
    this.h2s[slot] = h2;
    this.values[slot] = value;
  }
}

/** What the store has answered for one sha256 string. */
export interface ShaAnswers {
  /** Its key. */
  readonly sha: string;
  /** Process observers, PROCESS_ABSENT, or CACHE_MISS until asked. */
  process: number;
  /** The first combo answered, held inline: most processes reach one or two (a map each cost ~150 bytes). */
  root: string | null;
  port: number;
  observers: number;
  /** Further combos: root domain -> [port, observers, port, observers, ...]. */
  roots: Map<string, number[]> | null;
}

/**
 * Recent answers by the strings asked for, in front of the typed caches: a
 * Map lookup hashes in native code (~130 ns) where the combo hash and the hex
 * compare walk the string in JS (~700 ns and ~400 ns measured). Two
 * generations: when the young one holds `entriesPerGeneration` answers it
 * becomes the old one, so memory stays bounded and recent keys survive.
 */
export class RecentAnswers {
  processHits = 0;
  comboHits = 0;
  private young = new Map<string, ShaAnswers>();
  private old = new Map<string, ShaAnswers>();
  private youngAnswers = 0;

  constructor(private readonly entriesPerGeneration: number) {}

  /** Processes held now (both generations; one in both counts twice): at most twice entriesPerGeneration. */
  get held(): number {
    return this.young.size + this.old.size;
  }

  /** The answers for `sha`, created empty when it was not asked recently. */
  of(sha: string): ShaAnswers {
    const hit = this.young.get(sha);
    if (hit !== undefined) return hit;
    let a = this.old.get(sha);
    if (a === undefined) a = { sha, process: CACHE_MISS, root: null, port: 0, observers: 0, roots: null };
    this.count(1 + (a.root === null ? 0 : 1) + (a.roots === null ? 0 : a.roots.size));
    this.young.set(a.sha, a);
    return a;
  }

  /** Process observers held for `a`, or CACHE_MISS. */
  process(a: ShaAnswers): number {
    if (a.process !== CACHE_MISS) this.processHits++;
    return a.process;
  }

  storeProcess(a: ShaAnswers, value: number): void {
    a.process = value;
  }

  /** Observers of (root, port) under `a`, or CACHE_MISS. */
  combo(a: ShaAnswers, root: string, port: number): number {
    if (a.port === port && a.root === root) {
      this.comboHits++;
      return a.observers;
    }
    if (a.roots === null) return CACHE_MISS;
    const ports = a.roots.get(root);
    if (ports !== undefined) {
      for (let i = 0; i < ports.length; i += 2) {
        if (ports[i] === port) {
          this.comboHits++;
          return ports[i + 1]!;
        }
      }
    }
    return CACHE_MISS;
  }

  storeCombo(a: ShaAnswers, root: string, port: number, value: number): void {
    this.count(1);
    if (a.root === null) {
      a.root = root;
      a.port = port;
      a.observers = value;
      return;
    }
    if (a.roots === null) a.roots = new Map();
    const ports = a.roots.get(root);
    if (ports === undefined) a.roots.set(root, [port, value]);
    else ports.push(port, value);
  }

  private count(n: number): void {
    this.youngAnswers += n;
    if (this.youngAnswers < this.entriesPerGeneration) return;
    this.old = this.young;
    this.young = new Map();
    this.youngAnswers = 0;
  }
}
