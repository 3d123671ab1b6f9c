// Distinct observers per entity (an interned sha256 or combo), each with the
// first and last day it was seen, in typed arrays sized for ~100M sightings.
// Most combos have one observer, so the first one lives inline with the entity
// (8 bytes); only a second and later observer goes to a shared open-addressing
// table of (entity, observer) pairs (12 bytes a slot, at most 3/4 full).
import { grownInt32, grownUint16, mix3, pow2AtLeast } from './int-hash.js';

const EMPTY = -1;
const MAX_LOAD = 0.75;

/** A pair seen on days [min, max] is in the window [start, end) when it overlaps it. */
function overlaps(min: number, max: number, startDay: number, endDay: number): boolean {
  return min < endDay && max >= startDay;
}

export class ObserverSets {
  private size = 0;
  private firstObs = new Int32Array(1024).fill(EMPTY);
  private firstMin = new Uint16Array(1024);
  private firstMax = new Uint16Array(1024);

  private inlinePairs = 0;
  private pairs = 0;
  private mask = 1023;
  private pEntity = new Int32Array(1024).fill(EMPTY);
  private pObs = new Int32Array(1024);
  private pMin = new Uint16Array(1024);
  private pMax = new Uint16Array(1024);

  /** Distinct (entity, observer) pairs held. */
  get pairCount(): number {
    return this.inlinePairs + this.pairs;
  }

  get byteLength(): number {
    return (
      this.firstObs.byteLength +
      this.firstMin.byteLength +
      this.firstMax.byteLength +
      this.pEntity.byteLength +
      this.pObs.byteLength +
      this.pMin.byteLength +
      this.pMax.byteLength
    );
  }

  /** Records that observer saw entity on day (an epoch day number, 0..65535). Entities are numbered from 0 without gaps. */
  add(entity: number, observer: number, day: number): void {
    if (entity >= this.size) this.grow(entity + 1);
    const first = this.firstObs[entity] as number;
    if (first === observer || first === EMPTY) {
      if (first === EMPTY) {
        this.inlinePairs++;
        this.firstObs[entity] = observer;
        this.firstMin[entity] = day;
        this.firstMax[entity] = day;
      } else if (day < (this.firstMin[entity] as number)) this.firstMin[entity] = day;
      else if (day > (this.firstMax[entity] as number)) this.firstMax[entity] = day;
      return;
    }
    const mask = this.mask;
    let i = mix3(entity, observer, 0) & mask;
    for (;;) {
      const e = this.pEntity[i] as number;
      if (e === EMPTY) break;
      if (e === entity && this.pObs[i] === observer) {
        if (day < (this.pMin[i] as number)) this.pMin[i] = day;
        else if (day > (this.pMax[i] as number)) this.pMax[i] = day;
        return;
      }
      i = (i + 1) & mask;
    }
    this.pEntity[i] = entity;
    this.pObs[i] = observer;
    this.pMin[i] = day;
    this.pMax[i] = day;
    if (++this.pairs > (mask + 1) * MAX_LOAD) this.rehash();
  }

  /**
   * out[e] = observers of entity e seen in [startDay, endDay), for e < entityCount.
   * Returns how many pairs were counted in while seen before and after the window
   * but not known to be seen inside it (only possible when the window's end cuts the data).
   */
  countInWindow(entityCount: number, startDay: number, endDay: number, out: Int32Array): number {
    out.fill(0, 0, entityCount);
    let spanning = 0;
    const n = Math.min(entityCount, this.size);
    for (let e = 0; e < n; e++) {
      if (this.firstObs[e] === EMPTY) continue;
      const min = this.firstMin[e] as number;
      const max = this.firstMax[e] as number;
      if (overlaps(min, max, startDay, endDay)) {
        out[e] = (out[e] as number) + 1;
        if (min < startDay && max >= endDay) spanning++;
      }
    }
    const cap = this.mask + 1;
    for (let i = 0; i < cap; i++) {
      const e = this.pEntity[i] as number;
      if (e === EMPTY || e >= entityCount) continue;
      const min = this.pMin[i] as number;
      const max = this.pMax[i] as number;
      if (overlaps(min, max, startDay, endDay)) {
        out[e] = (out[e] as number) + 1;
        if (min < startDay && max >= endDay) spanning++;
      }
    }
    return spanning;
  }

  private grow(minSize: number): void {
    const cap = this.firstObs.length;
    if (minSize > cap) {
      const next = Math.max(cap * 2, pow2AtLeast(minSize));
      this.firstObs = grownInt32(this.firstObs, next, EMPTY);
      this.firstMin = grownUint16(this.firstMin, next);
      this.firstMax = grownUint16(this.firstMax, next);
    }
    this.size = minSize;
  }

  private rehash(): void {
    const oldE = this.pEntity;
    const oldO = this.pObs;
    const oldMin = this.pMin;
    const oldMax = this.pMax;
    const cap = (this.mask + 1) * 2;
    const mask = cap - 1;
    const e2 = new Int32Array(cap).fill(EMPTY);
    const o2 = new Int32Array(cap);
    const min2 = new Uint16Array(cap);
    const max2 = new Uint16Array(cap);
    for (let j = 0; j < oldE.length; j++) {
      const e = oldE[j] as number;
      if (e === EMPTY) continue;
      const o = oldO[j] as number;
      let i = mix3(e, o, 0) & mask;
      while (e2[i] !== EMPTY) i = (i + 1) & mask;
      e2[i] = e;
      o2[i] = o;
      min2[i] = oldMin[j] as number;
      max2[i] = oldMax[j] as number;
    }
    this.pEntity = e2;
    this.pObs = o2;
    this.pMin = min2;
    this.pMax = max2;
    this.mask = mask;
  }
}
