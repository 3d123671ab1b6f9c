// Builds a baseline file from sightings (DETECTION.md sections 4 and 9). Shared
// by `rarecon baseline build` and the baseline server, so memory is per distinct
// thing, in typed arrays: a sha256 is 32 bytes once, a combo ~16 bytes, an
// (observer, entity) pair 8 bytes inline or ~16-24 in the pair table, each pair
// with its first and last day so the window can be cut when writing.
import {
  DAY_MS,
  type BaselineMeta,
  type ObserverUnit,
  type RootDomainPolicy,
  type Sighting,
  type TierThresholds,
} from '../model/baseline.js';
import { comboCheck, comboHash, comboKey, hashComboBytes } from './combo-key.js';
import { ComboTable } from './combo-table.js';
import { DEFAULT_COMBO_KEY_BITS } from './format.js';
import { writeBaselineFile, type HostHistoryRows } from './file-writer.js';
import { SHA256_BYTES } from './hex.js';
import { grownUint16 } from './int-hash.js';
import { ObserverSets } from './observer-sets.js';
import { radixSort } from './radix-sort.js';
import { ShaTable } from './sha-table.js';

export interface BaselineBuilderOptions {
  unit: ObserverUnit;
  /** The training period: the window covers at most this many days before its end. */
  windowDays: number;
  thresholds: TierThresholds;
  policy: RootDomainPolicy;
  /** Leave out combos seen by one observer (honoured only when thresholds.veryRareMaxObservers >= 1). */
  omitSingleObserverCombos?: boolean;
  /** Bits of the combo key. Tests lower it to force key collisions; files for use keep 53. */
  comboKeyBits?: number;
  /**
   * Record each observer's first day (table host_history) for offline
   * enrolment: `rarecon baseline build --unit host`. Only with unit host; a
   * server's baseline leaves it off, so it carries no host identities.
   */
  recordHostHistory?: boolean;
}

export interface WriteOptions {
  /** Monotonic baseline version, a positive integer. */
  version: number;
  builtAtMs: number;
  /** End of the window (rounded up to a day boundary). Default: the day after the latest sighting. */
  windowEndMs?: number;
  /** Stamped into the meta as given (the server's observer rule and schedule promise). */
  serverMeta?: Pick<BaselineMeta, 'observerMinUploadDays' | 'nextBuildByMs'>;
}

export interface BuilderStats {
  acceptedTotal: number;
  rejectedTotal: number;
  rejected: { observer: number; day: number; sha256: number; combo: number };
  observers: number;
  processes: number;
  combos: number;
  rootDomains: number;
  /** Distinct (observer, sha256) and (observer, combo) pairs. */
  processObserverPairs: number;
  comboObserverPairs: number;
  firstDayMs: number | null;
  lastDayMs: number | null;
  /** Typed arrays held; the observer and root-domain maps come on top. */
  arrayBytes: number;
}

export type WriteResult =
  | {
      ok: true;
      path: string;
      meta: BaselineMeta;
      sizeBytes: number;
      sightingsInWindow: number;
      droppedOutsideWindowTotal: number;
      omittedSingleObserverCombos: number;
      /** Keys shared by several combos, and the combos stored exactly because of it. */
      collidingComboKeys: number;
      exactCombos: number;
      /**
       * Pairs seen before and after the window but not known to be seen in it,
       * counted in. Only possible when windowEndMs cuts the data short: the builder
       * keeps a pair's first and last day, not every day.
       */
      pairsSpanningWindow: number;
      elapsedMs: number;
    }
  | { ok: false; error: string };

const UNITS: readonly ObserverUnit[] = ['org', 'host', 'day'];
const MAX_DAY = 65_535; // days are kept as Uint16 epoch days: 1970 to 2149
/** Start of the last day a baseline file can hold (2149-06-06): a sighting after it is rejected. */
export const LAST_BASELINE_DAY_MS = MAX_DAY * DAY_MS;

function requireCount(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`baseline builder: ${name} must be a non-negative integer, got ${String(v)}`);
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 0 && p <= 65_535;
}

export class BaselineBuilder {
  private readonly unit: ObserverUnit;
  private readonly windowDays: number;
  private readonly thresholds: TierThresholds;
  private readonly policy: RootDomainPolicy;
  private readonly omitSingles: boolean;
  private readonly keyBits: number;
  private readonly recordHostHistory: boolean;
  /** Observer -> first epoch day of any of its records, sightings or not (seeHost()). */
  private readonly hostFirstDays = new Map<string, number>();

  private readonly observerIds = new Map<string, number>();
  private obsMin = new Uint16Array(256);
  private obsMax = new Uint16Array(256);
  private lastObserver = '';
  private lastObserverId = -1;

  private readonly rootIds = new Map<string, number>();
  private readonly roots: string[] = [];
  private readonly shas = new ShaTable();
  private readonly combos = new ComboTable();
  private readonly processSets = new ObserverSets();
  private readonly comboSets = new ObserverSets();
  private readonly sightingsPerDay = new Float64Array(MAX_DAY + 1);
  private firstDay = MAX_DAY + 1;
  private lastDay = -1;

  private accepted = 0;
  private readonly rejected = { observer: 0, day: 0, sha256: 0, combo: 0 };

  /** Throws RangeError for an invalid option: a configuration failure. */
  constructor(opts: BaselineBuilderOptions) {
    if (!UNITS.includes(opts.unit)) throw new RangeError(`baseline builder: unit must be org, host or day, got ${String(opts.unit)}`);
    requireCount('windowDays', opts.windowDays);
    if (opts.windowDays < 1 || opts.windowDays > MAX_DAY) throw new RangeError(`baseline builder: windowDays must be 1..${MAX_DAY}`);
    const t = opts.thresholds;
    requireCount('thresholds.uncommonBelowObservers', t.uncommonBelowObservers);
    requireCount('thresholds.rareMaxObservers', t.rareMaxObservers);
    requireCount('thresholds.veryRareMaxObservers', t.veryRareMaxObservers);
    requireCount('thresholds.commonProcessMinObservers', t.commonProcessMinObservers);
    if (
      typeof opts.policy.allowPrivateDomains !== 'boolean' ||
      typeof opts.policy.pslVersion !== 'string' ||
      opts.policy.pslVersion === ''
    ) {
      throw new RangeError('baseline builder: policy needs allowPrivateDomains (boolean) and pslVersion (string)');
    }
    const bits = opts.comboKeyBits ?? DEFAULT_COMBO_KEY_BITS;
    if (!Number.isInteger(bits) || bits < 1 || bits > 53) throw new RangeError('baseline builder: comboKeyBits must be 1..53');
    this.unit = opts.unit;
    this.windowDays = opts.windowDays;
    this.thresholds = Object.freeze({ ...t });
    this.policy = Object.freeze({ allowPrivateDomains: opts.policy.allowPrivateDomains, pslVersion: opts.policy.pslVersion });
    this.omitSingles = (opts.omitSingleObserverCombos ?? false) && t.veryRareMaxObservers >= 1;
    this.keyBits = bits;
    if (opts.recordHostHistory === true && opts.unit !== 'host') throw new RangeError('baseline builder: host history needs unit host');
    this.recordHostHistory = opts.recordHostHistory === true;
  }

  /**
   * Learns one sighting; false (and counted) when it is malformed. A sighting
   * with a root domain counts for its combo and for its sha256; one without
   * (rootDomain null) counts for the sha256 only. The root domain is kept as
   * given (rootDomainOf() already lower-cases and punycodes it) and matched
   * exactly on lookup; the sha256 may be in either case.
   */
  add(s: Sighting): boolean {
    const observer = s.observer;
    if (typeof observer !== 'string' || observer === '') {
      this.rejected.observer++;
      return false;
    }
    const dayMs = s.dayMs;
    const day = typeof dayMs === 'number' ? Math.floor(dayMs / DAY_MS) : NaN;
    if (!(day >= 0 && day <= MAX_DAY)) {
      this.rejected.day++;
      return false;
    }
    const root = s.rootDomain;
    const port = s.port;
    if (root !== null && (typeof root !== 'string' || root === '' || !isPort(port))) {
      this.rejected.combo++;
      return false;
    }
    const shaId = this.shas.intern(s.sha256);
    if (shaId < 0) {
      this.rejected.sha256++;
      return false;
    }
    this.addIds(observer, day, shaId, root === null ? -1 : this.rootIdOf(root), port as number);
    return true;
  }

  /**
   * The builder's id of a sha256 (64 hex digits, either case), interned; -1
   * when it is not one. With rootIdOf() and addIds(), for a reader that keeps
   * ids of its own (the native scanner's) and maps each once.
   */
  shaIdOf(hex: string): number {
    return this.shas.intern(hex);
  }

  /** The builder's id of a root domain (kept as given, as add() keeps it). */
  rootIdOf(root: string): number {
    let rootId = this.rootIds.get(root);
    if (rootId === undefined) {
      rootId = this.roots.length;
      this.roots.push(root);
      this.rootIds.set(root, rootId);
    }
    return rootId;
  }

  /**
   * add() of a sighting already checked: a non-empty observer, an epoch day
   * 0..65535, ids from shaIdOf() and rootIdOf() (rootId -1: the sha256 run
   * alone), and a port 0..65535 when there is a root domain.
   */
  addIds(observer: string, day: number, shaId: number, rootId: number, port: number): void {
    const obs = this.observerIdOf(observer, day);
    this.processSets.add(shaId, obs, day);
    if (rootId >= 0) this.comboSets.add(this.combos.intern(shaId, rootId, port), obs, day);
    this.sightingsPerDay[day] = (this.sightingsPerDay[day] as number) + 1;
    if (day < this.firstDay) this.firstDay = day;
    if (day > this.lastDay) this.lastDay = day;
    this.accepted++;
  }

  private observerIdOf(observer: string, day: number): number {
    let id: number;
    if (observer === this.lastObserver) {
      id = this.lastObserverId;
    } else {
      const known = this.observerIds.get(observer);
      if (known === undefined) {
        id = this.observerIds.size;
        this.observerIds.set(observer, id);
        if (id >= this.obsMin.length) {
          this.obsMin = grownUint16(this.obsMin, this.obsMin.length * 2);
          this.obsMax = grownUint16(this.obsMax, this.obsMax.length * 2);
        }
        this.obsMin[id] = day;
        this.obsMax[id] = day;
      } else {
        id = known;
      }
      this.lastObserver = observer;
      this.lastObserverId = id;
    }
    if (day < (this.obsMin[id] as number)) this.obsMin[id] = day;
    else if (day > (this.obsMax[id] as number)) this.obsMax[id] = day;
    return id;
  }

  /**
   * Notes a record of the host `observer` (unit host) on the day of `dayMs`,
   * whether or not it made a sighting: a host whose logs held nothing hashed
   * is still enrolled from its first day. No-op unless host history is recorded.
   */
  seeHost(observer: string, dayMs: number): void {
    if (!this.recordHostHistory || observer === '') return;
    const day = Math.floor(dayMs / DAY_MS);
    if (!(day >= 0 && day <= MAX_DAY)) return;
    const first = this.hostFirstDays.get(observer);
    if (first === undefined || day < first) this.hostFirstDays.set(observer, day);
  }

  /** Each host seen before endDay and the start of its first day, by host; null unless recorded. */
  private hostHistory(endDay: number): HostHistoryRows | null {
    if (!this.recordHostHistory) return null;
    const firstDays = new Map(this.hostFirstDays);
    for (const [observer, id] of this.observerIds) {
      const first = this.obsMin[id] as number;
      const seen = firstDays.get(observer);
      if (seen === undefined || first < seen) firstDays.set(observer, first);
    }
    const rows: Array<readonly [string, number]> = [];
    for (const [observer, first] of firstDays) if (first < endDay) rows.push([observer, first * DAY_MS]);
    return rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  stats(): BuilderStats {
    const r = this.rejected;
    return {
      acceptedTotal: this.accepted,
      rejectedTotal: r.observer + r.day + r.sha256 + r.combo,
      rejected: { ...r },
      observers: this.observerIds.size,
      processes: this.shas.count,
      combos: this.combos.count,
      rootDomains: this.roots.length,
      processObserverPairs: this.processSets.pairCount,
      comboObserverPairs: this.comboSets.pairCount,
      firstDayMs: this.lastDay < 0 ? null : this.firstDay * DAY_MS,
      lastDayMs: this.lastDay < 0 ? null : this.lastDay * DAY_MS,
      arrayBytes:
        this.shas.byteLength +
        this.combos.byteLength +
        this.processSets.byteLength +
        this.comboSets.byteLength +
        this.obsMin.byteLength +
        this.obsMax.byteLength +
        this.sightingsPerDay.byteLength,
    };
  }

  /**
   * Writes the baseline of the window to outPath, atomically. The builder is not
   * changed: more sightings can be added and written again. Synchronous (SQLite):
   * run it off the event loop of a process that must stay responsive.
   */
  write(outPath: string, opts: WriteOptions): WriteResult {
    const started = performance.now();
    if (!Number.isSafeInteger(opts.version) || opts.version < 1)
      return { ok: false, error: `baseline version must be a positive integer, got ${String(opts.version)}` };
    if (!Number.isSafeInteger(opts.builtAtMs))
      return { ok: false, error: `builtAtMs must be a time in epoch ms, got ${String(opts.builtAtMs)}` };
    let endDay: number;
    if (opts.windowEndMs !== undefined) {
      if (!Number.isFinite(opts.windowEndMs))
        return { ok: false, error: `windowEndMs must be a time in epoch ms, got ${String(opts.windowEndMs)}` };
      endDay = Math.ceil(opts.windowEndMs / DAY_MS);
    } else if (this.lastDay >= 0) {
      endDay = this.lastDay + 1;
    } else {
      return { ok: false, error: 'no sightings to build a baseline from, and no windowEndMs to date an empty one' };
    }
    const earliest = this.lastDay >= 0 ? this.firstDay : endDay - this.windowDays;
    const startDay = Math.min(endDay, Math.max(earliest, endDay - this.windowDays));

    let inWindow = 0;
    for (let d = Math.max(0, startDay); d < Math.min(endDay, MAX_DAY + 1); d++) inWindow += this.sightingsPerDay[d] as number;

    let population = 0;
    for (let o = 0; o < this.observerIds.size; o++) {
      if ((this.obsMin[o] as number) < endDay && (this.obsMax[o] as number) >= startDay) population++;
    }

    // Processes: observers in the window, rows ordered by the sha's first 6 bytes.
    const shaCount = this.shas.count;
    const procObservers = new Int32Array(shaCount);
    let spanning = this.processSets.countInWindow(shaCount, startDay, endDay, procObservers);
    const shaBytes = this.shas.bytes();
    let procRows = 0;
    for (let i = 0; i < shaCount; i++) if ((procObservers[i] as number) > 0) procRows++;
    const pHi = new Uint32Array(procRows);
    const pLo = new Uint32Array(procRows);
    const pIdx = new Uint32Array(procRows);
    for (let i = 0, k = 0; i < shaCount; i++) {
      if ((procObservers[i] as number) === 0) continue;
      const o = i * SHA256_BYTES;
      pHi[k] = ((shaBytes[o] as number) << 8) | (shaBytes[o + 1] as number);
      pLo[k] =
        (((shaBytes[o + 2] as number) << 24) |
          ((shaBytes[o + 3] as number) << 16) |
          ((shaBytes[o + 4] as number) << 8) |
          (shaBytes[o + 5] as number)) >>>
        0;
      pIdx[k++] = i;
    }
    const procSorted = radixSort({ hi: pHi, lo: pLo, idx: pIdx });

    // Combos: observers in the window, the omission rule, keys, rows ordered by key.
    const comboCount = this.combos.count;
    const comboObservers = new Int32Array(comboCount);
    spanning += this.comboSets.countInWindow(comboCount, startDay, endDay, comboObservers);
    const minObservers = this.omitSingles ? 2 : 1;
    let comboRows = 0;
    let omitted = 0;
    for (let i = 0; i < comboCount; i++) {
      const n = comboObservers[i] as number;
      if (n >= minObservers) comboRows++;
      else if (n === 1) omitted++;
    }
    const cHi = new Uint32Array(comboRows);
    const cLo = new Uint32Array(comboRows);
    const cIdx = new Uint32Array(comboRows);
    const chk = new Uint16Array(comboCount);
    const { sha: cSha, root: cRoot, port: cPort } = this.combos;
    for (let i = 0, k = 0; i < comboCount; i++) {
      if ((comboObservers[i] as number) < minObservers) continue;
      hashComboBytes(shaBytes, (cSha[i] as number) * SHA256_BYTES, this.roots[cRoot[i] as number] as string, cPort[i] as number);
      const h1 = comboHash[0] as number;
      const h2 = comboHash[1] as number;
      const key = comboKey(h1, h2, this.keyBits);
      cHi[k] = Math.floor(key / 4_294_967_296);
      cLo[k] = key >>> 0;
      cIdx[k++] = i;
      chk[i] = comboCheck(h2);
    }
    const comboSorted = radixSort({ hi: cHi, lo: cLo, idx: cIdx });
    const hostHistory = this.hostHistory(endDay);

    const meta: BaselineMeta = Object.freeze({
      version: opts.version,
      builtAtMs: opts.builtAtMs,
      windowStartMs: startDay * DAY_MS,
      windowEndMs: endDay * DAY_MS,
      observerUnit: this.unit,
      populationSize: population,
      policy: this.policy,
      thresholds: this.thresholds,
      omitsSingleObserverCombos: this.omitSingles,
      processCount: procRows,
      comboCount: comboRows,
      ...opts.serverMeta,
      ...(hostHistory !== null && hostHistory.length > 0 ? { hostHistoryCount: hostHistory.length } : {}),
    });
    const written = writeBaselineFile(
      outPath,
      meta,
      this.keyBits,
      { order: procSorted.idx, observers: procObservers, shaBytes },
      {
        keyHi: comboSorted.hi,
        keyLo: comboSorted.lo,
        ids: comboSorted.idx,
        chk,
        observers: comboObservers,
        shaId: cSha,
        rootId: cRoot,
        port: cPort,
        roots: this.roots,
        shaBytes,
      },
      hostHistory,
    );
    if (!written.ok) return written;
    return {
      ok: true,
      path: outPath,
      meta,
      sizeBytes: written.sizeBytes,
      sightingsInWindow: inWindow,
      droppedOutsideWindowTotal: this.accepted - inWindow,
      omittedSingleObserverCombos: this.omitSingles ? omitted : 0,
      collidingComboKeys: written.collidingKeys,
      exactCombos: written.exactCombos,
      pairsSpanningWindow: spanning,
      elapsedMs: Math.round(performance.now() - started),
    };
  }
}
