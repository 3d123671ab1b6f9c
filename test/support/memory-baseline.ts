// An in-memory BaselineReader for tests of the detector: same contract as the SQLite store.
import type { BaselineMeta, BaselineReader } from '../../src/model/baseline.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';

export function memoryBaseline(
  processes: Record<string, number>,
  combos: Array<[sha256: string, root: string, port: number, observers: number]>,
  meta: Partial<BaselineMeta> = {},
): BaselineReader {
  const comboMap = new Map(combos.map(([s, r, p, n]) => [`${s}|${r}|${p}`, n]));
  const windowEndMs = Date.UTC(2026, 9, 1);
  const m: BaselineMeta = {
    version: 1,
    builtAtMs: windowEndMs,
    windowStartMs: windowEndMs - 30 * DAY_MS,
    windowEndMs,
    observerUnit: 'host',
    populationSize: 20,
    policy: DEFAULT_POLICY,
    thresholds: DEFAULT_THRESHOLDS,
    omitsSingleObserverCombos: false,
    processCount: Object.keys(processes).length,
    comboCount: combos.length,
    ...meta,
  };
  return {
    process: (sha) => processes[sha],
    combo: (sha, root, port) => comboMap.get(`${sha}|${root}|${port}`) ?? 0,
    meta: () => m,
  };
}
