// A baseline file from distinct-observer counts made elsewhere (the
// PostgreSQL aggregation counts inside the database): the same file the
// BaselineBuilder writes from sightings, rows in the same order, through the
// same writer, so an endpoint cannot tell which store built it.
import { comboCheck, comboHash, comboKey, hashComboBytes } from '../baseline/combo-key.js';
import { writeBaselineFile } from '../baseline/file-writer.js';
import { DEFAULT_COMBO_KEY_BITS } from '../baseline/format.js';
import { SHA256_BYTES } from '../baseline/hex.js';
import { radixSort } from '../baseline/radix-sort.js';
import { DAY_MS, type BaselineMeta, type ObserverUnit, type RootDomainPolicy, type TierThresholds } from '../model/baseline.js';

export interface CountedProcesses {
  /** 32 bytes a process, process i at i * 32. */
  shaBytes: Uint8Array;
  /** Distinct observers of process i in the window (> 0). */
  observers: Int32Array;
}

export interface CountedCombos {
  /** Index of the combo's process in CountedProcesses. */
  sha: Int32Array;
  /** Index into `roots`. */
  root: Int32Array;
  port: Uint16Array;
  /** Distinct observers in the window (>= 1; single-observer combos already left out when omitted). */
  observers: Int32Array;
  roots: readonly string[];
}

export interface CountedWindow {
  unit: ObserverUnit;
  thresholds: TierThresholds;
  policy: RootDomainPolicy;
  omitsSingleObserverCombos: boolean;
  /** Epoch days: the window's first (the first day with a sighting, or endDay - windowDays) and the day after its last. */
  startDay: number;
  endDay: number;
  populationSize: number;
  version: number;
  builtAtMs: number;
  serverMeta: Pick<BaselineMeta, 'observerMinUploadDays' | 'nextBuildByMs'>;
}

export type CountsWriteResult = { ok: true; meta: BaselineMeta; sizeBytes: number } | { ok: false; error: string };

export function writeCountedBaseline(outPath: string, w: CountedWindow, p: CountedProcesses, c: CountedCombos): CountsWriteResult {
  const shaBytes = p.shaBytes;
  const procCount = p.observers.length;
  // Processes ordered by their sha's first 6 bytes, as the builder orders them.
  const pHi = new Uint32Array(procCount);
  const pLo = new Uint32Array(procCount);
  const pIdx = new Uint32Array(procCount);
  for (let i = 0; i < procCount; i++) {
    const o = i * SHA256_BYTES;
    pHi[i] = ((shaBytes[o] as number) << 8) | (shaBytes[o + 1] as number);
    pLo[i] =
      (((shaBytes[o + 2] as number) << 24) |
        ((shaBytes[o + 3] as number) << 16) |
        ((shaBytes[o + 4] as number) << 8) |
        (shaBytes[o + 5] as number)) >>>
      0;
    pIdx[i] = i;
  }
  const procSorted = radixSort({ hi: pHi, lo: pLo, idx: pIdx });

  const comboCount = c.observers.length;
  const cHi = new Uint32Array(comboCount);
  const cLo = new Uint32Array(comboCount);
  const cIdx = new Uint32Array(comboCount);
  const chk = new Uint16Array(comboCount);
  const bits = DEFAULT_COMBO_KEY_BITS;
  for (let i = 0; i < comboCount; i++) {
    hashComboBytes(shaBytes, (c.sha[i] as number) * SHA256_BYTES, c.roots[c.root[i] as number] as string, c.port[i] as number);
    const h1 = comboHash[0] as number;
    const h2 = comboHash[1] as number;
    const key = comboKey(h1, h2, bits);
    cHi[i] = Math.floor(key / 4_294_967_296);
    cLo[i] = key >>> 0;
    cIdx[i] = i;
    chk[i] = comboCheck(h2);
  }
  const comboSorted = radixSort({ hi: cHi, lo: cLo, idx: cIdx });

  const meta: BaselineMeta = Object.freeze({
    version: w.version,
    builtAtMs: w.builtAtMs,
    windowStartMs: w.startDay * DAY_MS,
    windowEndMs: w.endDay * DAY_MS,
    observerUnit: w.unit,
    populationSize: w.populationSize,
    policy: w.policy,
    thresholds: w.thresholds,
    omitsSingleObserverCombos: w.omitsSingleObserverCombos,
    processCount: procCount,
    comboCount,
    ...w.serverMeta,
  });
  const written = writeBaselineFile(
    outPath,
    meta,
    bits,
    { order: procSorted.idx, observers: p.observers, shaBytes },
    {
      keyHi: comboSorted.hi,
      keyLo: comboSorted.lo,
      ids: comboSorted.idx,
      chk,
      observers: c.observers,
      shaId: c.sha,
      rootId: c.root,
      port: c.port,
      roots: c.roots,
      shaBytes,
    },
  );
  if (!written.ok) return written;
  return { ok: true, meta, sizeBytes: written.sizeBytes };
}
