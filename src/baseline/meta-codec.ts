// BaselineMeta <-> the meta table (key -> JSON value), with every problem of a
// file's meta reported at once rather than the first one only.
import type { BaselineMeta, ObserverUnit, RootDomainPolicy, TierThresholds } from '../model/baseline.js';
import { COMBO_KEY_HASH, FORMAT_VERSION } from './format.js';

export interface StoredMeta {
  meta: BaselineMeta;
  comboKeyBits: number;
}

export function encodeMeta(meta: BaselineMeta, comboKeyBits: number): Array<[string, string]> {
  const m = meta;
  const policy: RootDomainPolicy = { allowPrivateDomains: m.policy.allowPrivateDomains, pslVersion: m.policy.pslVersion };
  const thresholds: TierThresholds = {
    uncommonBelowObservers: m.thresholds.uncommonBelowObservers,
    rareMaxObservers: m.thresholds.rareMaxObservers,
    veryRareMaxObservers: m.thresholds.veryRareMaxObservers,
    commonProcessMinObservers: m.thresholds.commonProcessMinObservers,
  };
  const fields: Record<string, unknown> = {
    formatVersion: FORMAT_VERSION,
    version: m.version,
    builtAtMs: m.builtAtMs,
    windowStartMs: m.windowStartMs,
    windowEndMs: m.windowEndMs,
    observerUnit: m.observerUnit,
    populationSize: m.populationSize,
    policy,
    thresholds,
    omitsSingleObserverCombos: m.omitsSingleObserverCombos,
    processCount: m.processCount,
    comboCount: m.comboCount,
    ...(m.hostHistoryCount !== undefined && m.hostHistoryCount > 0 ? { hostHistoryCount: m.hostHistoryCount } : {}),
    comboKeyHash: COMBO_KEY_HASH,
    comboKeyBits,
  };
  // Written only when set: files without them read exactly as before.
  if (m.observerMinUploadDays !== undefined) fields.observerMinUploadDays = m.observerMinUploadDays;
  if (m.nextBuildByMs !== undefined) fields.nextBuildByMs = m.nextBuildByMs;
  return Object.entries(fields).map(([k, v]) => [k, JSON.stringify(v)]);
}

const UNITS: readonly ObserverUnit[] = ['org', 'host', 'day'];

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isTimeMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses the meta rows. The caller has already checked formatVersion (it decides
 * which decoder applies); problems lists every missing or malformed field.
 */
export function decodeMeta(rows: ReadonlyMap<string, string>): { ok: true; value: StoredMeta } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const values = new Map<string, unknown>();
  for (const [k, raw] of rows) {
    try {
      values.set(k, JSON.parse(raw) as unknown);
    } catch {
      problems.push(`${k} is not valid JSON`);
    }
  }
  const field = <T>(name: string, ok: (v: unknown) => v is T, what: string): T | undefined => {
    if (!values.has(name)) {
      if (!problems.some((p) => p.startsWith(`${name} `))) problems.push(`${name} is missing`);
      return undefined;
    }
    const v = values.get(name);
    if (!ok(v)) {
      problems.push(`${name} is not ${what}`);
      return undefined;
    }
    return v;
  };

  const version = field('version', (v): v is number => isCount(v) && v > 0, 'a positive integer');
  const builtAtMs = field('builtAtMs', isTimeMs, 'a time in epoch ms');
  const windowStartMs = field('windowStartMs', isTimeMs, 'a time in epoch ms');
  const windowEndMs = field('windowEndMs', isTimeMs, 'a time in epoch ms');
  const observerUnit = field('observerUnit', (v): v is ObserverUnit => UNITS.includes(v as ObserverUnit), 'one of org, host, day');
  const populationSize = field('populationSize', isCount, 'a count');
  const omits = field('omitsSingleObserverCombos', (v): v is boolean => typeof v === 'boolean', 'a boolean');
  const processCount = field('processCount', isCount, 'a count');
  const comboCount = field('comboCount', isCount, 'a count');
  const keyHash = field('comboKeyHash', (v): v is string => v === COMBO_KEY_HASH, `"${COMBO_KEY_HASH}"`);
  const keyBits = field('comboKeyBits', (v): v is number => isCount(v) && v >= 1 && v <= 53, 'an integer from 1 to 53');
  // Optional: only a local build with unit host records host history.
  const hostHistoryCount = values.has('hostHistoryCount') ? field('hostHistoryCount', isCount, 'a count') : undefined;

  const optional = <T>(name: string, ok: (v: unknown) => v is T, what: string): T | undefined =>
    values.has(name) ? field(name, ok, what) : undefined;
  const minUploadDays = optional('observerMinUploadDays', (v): v is number => isCount(v) && v >= 1, 'a count of at least 1');
  const nextBuildByMs = optional('nextBuildByMs', isTimeMs, 'a time in epoch ms');

  const rawPolicy = field('policy', isRecord, 'an object');
  let policy: RootDomainPolicy | undefined;
  if (rawPolicy !== undefined) {
    const allow = rawPolicy['allowPrivateDomains'];
    const psl = rawPolicy['pslVersion'];
    if (typeof allow !== 'boolean') problems.push('policy.allowPrivateDomains is not a boolean');
    if (typeof psl !== 'string' || psl === '') problems.push('policy.pslVersion is not a non-empty string');
    if (typeof allow === 'boolean' && typeof psl === 'string' && psl !== '') policy = { allowPrivateDomains: allow, pslVersion: psl };
  }

  const rawThresholds = field('thresholds', isRecord, 'an object');
  let thresholds: TierThresholds | undefined;
  if (rawThresholds !== undefined) {
    const names = ['uncommonBelowObservers', 'rareMaxObservers', 'veryRareMaxObservers', 'commonProcessMinObservers'] as const;
    const t: Partial<TierThresholds> = {};
    for (const n of names) {
      const v = rawThresholds[n];
      if (isCount(v)) t[n] = v;
      else problems.push(`thresholds.${n} is not a count`);
    }
    if (names.every((n) => t[n] !== undefined)) thresholds = t as TierThresholds;
  }

  if (windowStartMs !== undefined && windowEndMs !== undefined && windowStartMs > windowEndMs) {
    problems.push('windowStartMs is after windowEndMs');
  }

  if (
    problems.length > 0 ||
    version === undefined ||
    builtAtMs === undefined ||
    windowStartMs === undefined ||
    windowEndMs === undefined ||
    observerUnit === undefined ||
    populationSize === undefined ||
    omits === undefined ||
    processCount === undefined ||
    comboCount === undefined ||
    keyHash === undefined ||
    keyBits === undefined ||
    policy === undefined ||
    thresholds === undefined
  ) {
    return { ok: false, problems };
  }
  const meta: BaselineMeta = Object.freeze({
    version,
    builtAtMs,
    windowStartMs,
    windowEndMs,
    observerUnit,
    populationSize,
    policy: Object.freeze(policy),
    thresholds: Object.freeze(thresholds),
    omitsSingleObserverCombos: omits,
    processCount,
    comboCount,
    ...(minUploadDays === undefined ? {} : { observerMinUploadDays: minUploadDays }),
    ...(nextBuildByMs === undefined ? {} : { nextBuildByMs }),
    ...(hostHistoryCount !== undefined && hostHistoryCount > 0 ? { hostHistoryCount } : {}),
  });
  return { ok: true, value: { meta, comboKeyBits: keyBits } };
}
