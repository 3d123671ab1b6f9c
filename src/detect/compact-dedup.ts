// Deduplication for offline runs that keep no state (`rarecon score` without
// --state): the same rules and the same order of output as dedup.ts, with each
// open alert held compactly. Its key, name, host, count and first/last seen sit
// in typed arrays (~60 bytes an alert); its record waits as JSON text in
// AlertBodies (bounded in memory, then a temporary SQLite file) until its
// window closes. A held DetectionAlert object cost ~2 KiB, so 150,000 open
// alerts took ~300 MiB.
import { comboHash, hashCombo } from '../baseline/combo-key.js';
import { VARIATIONS, type DetectionAlert } from '../model/alert.js';
import { AlertBodies, DEFAULT_HELD_BODY_BYTES } from './alert-bodies.js';
import {
  alertUid,
  comboKeyOf,
  countTowardValve,
  hostKeyOf,
  valveHealthAlert,
  valvePausedUntil,
  type Admission,
  type DedupOptions,
} from './dedup.js';
import type { ValveRow } from './state-store.js';

/** One host's clock and open alerts (ids in the order they opened). */
export class CompactHostWindows {
  latestMs = Number.NEGATIVE_INFINITY;
  nextExpiryMs = Number.POSITIVE_INFINITY;
  open: number[] = [];
  constructor(
    readonly hostKey: string,
    readonly index: number,
  ) {}
}

const EMPTY = -1;

export interface CompactDedupOptions extends DedupOptions {
  /** Bytes of alert records held in memory before they go to a temporary file. */
  maxHeldBodyBytes?: number;
}

export class CompactDeduper {
  private readonly hosts = new Map<string, CompactHostWindows>();
  private readonly hostList: CompactHostWindows[] = [];
  private readonly valves = new Map<string, ValveRow>();
  private readonly bodies: AlertBodies;
  /** Ids of alerts whose window closed, in the order they closed, until taken. */
  private closed: number[] = [];

  // The held alerts, by id (struct of arrays; ids are reused once an alert is taken).
  private capacity = 0;
  private h1 = new Int32Array(0);
  private h2 = new Int32Array(0);
  private variation = new Uint8Array(0);
  private hostOf = new Int32Array(0);
  private first = new Float64Array(0);
  private last = new Float64Array(0);
  private count = new Float64Array(0);
  private readonly free: number[] = [];
  private used = 0;

  /** Open alerts by key: linear probing over ids, EMPTY where none. */
  private slots = new Int32Array(1024).fill(EMPTY);
  private slotsUsed = 0;

  constructor(private readonly opts: CompactDedupOptions) {
    this.bodies = new AlertBodies(opts.maxHeldBodyBytes ?? DEFAULT_HELD_BODY_BYTES);
  }

  /** Bytes held for open and closed-but-not-taken alerts: the index arrays and the records in memory. */
  get heldBytes(): number {
    const perId = 4 + 4 + 1 + 4 + 8 + 8 + 8;
    return this.capacity * perId + this.slots.byteLength + this.bodies.heldBytes;
  }

  /** Alerts held now (open, or closed and not yet taken). */
  get heldAlerts(): number {
    return this.used - this.free.length;
  }

  host(hostKey: string): CompactHostWindows {
    let h = this.hosts.get(hostKey);
    if (h === undefined) {
      h = new CompactHostWindows(hostKey, this.hostList.length);
      this.hosts.set(hostKey, h);
      this.hostList.push(h);
    }
    return h;
  }

  advance(h: CompactHostWindows, timeMs: number): void {
    if (!(timeMs > h.latestMs)) return;
    h.latestMs = timeMs;
    if (timeMs >= h.nextExpiryMs) this.closeEnded(h);
  }

  private closeEnded(h: CompactHostWindows): void {
    const nowMs = h.latestMs;
    const windowMs = this.opts.windowMs;
    h.nextExpiryMs = Number.POSITIVE_INFINITY;
    const done: number[] = [];
    const still: number[] = [];
    for (const id of h.open) {
      const end = this.first[id]! + windowMs;
      if (end <= nowMs) done.push(id);
      else {
        still.push(id);
        if (end < h.nextExpiryMs) h.nextExpiryMs = end;
      }
    }
    if (done.length === 0) return;
    h.open = still;
    // Stable: alerts first seen at the same time keep the order they opened in (as dedup.ts).
    done.sort((a, b) => this.first[a]! - this.first[b]!);
    for (const id of done) {
      this.unslot(id);
      this.closed.push(id);
    }
  }

  isPaused(hostKey: string, nowMs: number): number | null {
    return valvePausedUntil(this.valves, hostKey, nowMs);
  }

  /**
   * As AlertDeduper.admit. The alert given back is the candidate: for a repeat,
   * with the held alert's uid, count and first/last seen.
   */
  admit(candidate: DetectionAlert, nowMs: number, windows?: CompactHostWindows): Admission {
    const hostKey = hostKeyOf(candidate.host);
    const h = windows ?? this.host(hostKey);
    this.advance(h, nowMs);
    const pausedUntil = this.isPaused(hostKey, nowMs);
    if (pausedUntil !== null) return { kind: 'paused', pausedUntilMs: pausedUntil };

    const sha = candidate.process.sha256 ?? '';
    const { rootDomain, port } = candidate.connection;
    // The full 64 bits of the combo hash over host and sha256, root domain and port, with the host's
    // index and the name: two open alerts of one host and name share them with odds of 2^-64 a pair.
    hashCombo(`${hostKey}|${sha}`, rootDomain, port);
    const k1 = comboHash[0]!;
    const k2 = comboHash[1]!;
    const v = variationIndex(candidate.variation);
    const found = this.find(k1, k2, v, h.index);
    if (found !== EMPTY) {
      this.count[found]!++;
      if (nowMs > this.last[found]!) this.last[found] = nowMs;
      candidate.count = this.count[found]!;
      candidate.firstSeenMs = this.first[found]!;
      candidate.lastSeenMs = this.last[found]!;
      candidate.uid = alertUid(`${comboKeyOf(hostKey, sha, rootDomain, port)}|${candidate.name}`, candidate.firstSeenMs);
      return { kind: 'repeat', alert: candidate };
    }

    const valve = countTowardValve(this.valves, hostKey, nowMs, this.opts);
    if (valve.pausedUntilMs > 0) return { kind: 'valve-tripped', health: valveHealthAlert(candidate.host, valve, nowMs, this.opts) };

    candidate.uid = alertUid(`${comboKeyOf(hostKey, sha, rootDomain, port)}|${candidate.name}`, candidate.firstSeenMs);
    const id = this.allocate();
    this.h1[id] = k1;
    this.h2[id] = k2;
    this.variation[id] = v;
    this.hostOf[id] = h.index;
    this.first[id] = candidate.firstSeenMs;
    this.last[id] = candidate.lastSeenMs;
    this.count[id] = candidate.count;
    this.bodies.put(id, JSON.stringify(candidate));
    this.slot(id);
    h.open.push(id);
    const end = candidate.firstSeenMs + this.opts.windowMs;
    if (end < h.nextExpiryMs) h.nextExpiryMs = end;
    return { kind: 'new', alert: candidate };
  }

  /** Alerts whose window has closed since the last call, in the order they closed. */
  takeClosed(): DetectionAlert[] {
    const ids = this.closed;
    this.closed = [];
    return ids.map((id) => this.materialise(id));
  }

  /**
   * The end of a run: the closed alerts not yet taken and every open one, in
   * the order AlertDeduper gives them (Scorer.finish()), `batch` at a time so
   * no more than that many records are rebuilt at once.
   */
  *finishInBatches(batch: number): Generator<DetectionAlert[]> {
    // The closed, then the open host by host, in one typed array (three arrays of numbers took ~7 MiB at
    // 300,000 alerts), ordered by first seen and, at the same time, by place in it: the order a stable
    // sort of the closed followed by the open sorted host by host gives (dedup.ts's).
    let n = this.closed.length;
    for (const h of this.hostList) n += h.open.length;
    const ids = new Int32Array(n);
    let k = 0;
    for (const id of this.closed) ids[k++] = id;
    for (const h of this.hostList) {
      for (const id of h.open) {
        this.unslot(id);
        ids[k++] = id;
      }
      h.open = [];
    }
    this.closed = [];
    const first = this.first;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => first[ids[a]!]! - first[ids[b]!]! || a - b);
    for (let i = 0; i < n; i += batch) {
      const out: DetectionAlert[] = [];
      for (let j = i; j < Math.min(n, i + batch); j++) out.push(this.materialise(ids[order[j]!]!));
      yield out;
    }
  }

  /** The held record of `id` with its final count and last seen; frees the id. */
  private materialise(id: number): DetectionAlert {
    const a = JSON.parse(this.bodies.take(id)) as DetectionAlert;
    a.count = this.count[id]!;
    a.lastSeenMs = this.last[id]!;
    this.free.push(id);
    return a;
  }

  close(): void {
    this.bodies.close();
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  private grow(): void {
    // By half again: doubling left up to half of the index unused (7 MiB at 150,000 held alerts).
    const cap = Math.max(1024, Math.ceil(this.capacity * 1.5));
    const more = <T extends Int32Array | Uint8Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const next = make(cap);
      next.set(old);
      return next;
    };
    this.h1 = more(this.h1, (n) => new Int32Array(n));
    this.h2 = more(this.h2, (n) => new Int32Array(n));
    this.variation = more(this.variation, (n) => new Uint8Array(n));
    this.hostOf = more(this.hostOf, (n) => new Int32Array(n));
    this.first = more(this.first, (n) => new Float64Array(n));
    this.last = more(this.last, (n) => new Float64Array(n));
    this.count = more(this.count, (n) => new Float64Array(n));
    this.capacity = cap;
  }

  // The open-alert index: linear probing, at most half full, deletion by backward shift.

  private home(k1: number): number {
    return (Math.imul(k1, 0x9e3779b1) >>> 0) & (this.slots.length - 1);
  }

  private find(k1: number, k2: number, v: number, host: number): number {
    const mask = this.slots.length - 1;
    for (let i = this.home(k1); ; i = (i + 1) & mask) {
      const id = this.slots[i]!;
      if (id === EMPTY) return EMPTY;
      if (this.h1[id] === k1 && this.h2[id] === k2 && this.variation[id] === v && this.hostOf[id] === host) return id;
    }
  }

  private slot(id: number): void {
    if ((this.slotsUsed + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    this.place(id);
    this.slotsUsed++;
  }

  private place(id: number): void {
    const mask = this.slots.length - 1;
    let i = this.home(this.h1[id]!);
    while (this.slots[i] !== EMPTY) i = (i + 1) & mask;
    this.slots[i] = id;
  }

  private rehash(size: number): void {
    const old = this.slots;
    this.slots = new Int32Array(size).fill(EMPTY);
    for (const id of old) if (id !== EMPTY) this.place(id);
  }

  private unslot(id: number): void {
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = this.home(this.h1[id]!);
    while (slots[i] !== id) {
      if (slots[i] === EMPTY) return;
      i = (i + 1) & mask;
    }
    // Backward shift: pull later entries of the run into the hole unless their home lies after it.
    let hole = i;
    for (let j = (i + 1) & mask; slots[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.home(this.h1[slots[j]!]!);
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        slots[hole] = slots[j]!;
        hole = j;
      }
    }
    slots[hole] = EMPTY;
    this.slotsUsed--;
  }
}

function variationIndex(id: DetectionAlert['variation']): number {
  for (let i = 0; i < VARIATIONS.length; i++) if (VARIATIONS[i]!.id === id) return i;
  return VARIATIONS.length;
}
