// Checks a sightings upload (POST /v1/sightings) before anything is stored: a
// malformed batch is refused whole, with the path of the first bad row and
// field, so an endpoint's bug is visible instead of half a day going missing.
import { DAY_MS } from '../model/baseline.js';
import { rootDomainOf } from '../model/root-domain.js';
import type { ServerLimits } from '../config/defaults.js';

export interface DayBatch {
  dayMs: number;
  /** Distinct sha256 (lower-case hex) run that day. */
  processes: string[];
  /** Distinct (sha256, root domain, port) of that day. */
  combos: Array<{ sha256: string; rootDomain: string; port: number }>;
}

export type BatchResult =
  { ok: true; days: DayBatch[]; skippedDays: string[]; duplicates: number } | { ok: false; status: 400 | 413; error: string };

const SHA_RE = /^[0-9a-fA-F]{64}$/;

// Root-domain checks repeat across batches (the same few thousand domains): remembered per policy, bounded.
const ROOT_CACHE_MAX = 500_000;
const rootCaches = new Map<boolean, Map<string, string | null>>();

function rootCache(allowPrivateDomains: boolean): Map<string, string | null> {
  let c = rootCaches.get(allowPrivateDomains);
  if (c === undefined || c.size >= ROOT_CACHE_MAX) {
    c = new Map();
    rootCaches.set(allowPrivateDomains, c);
  }
  return c;
}
const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const ROOT_RE = /^[a-z0-9-]+(\.[a-z0-9-]+)+$/;

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 80 ? `${s.slice(0, 77)}...` : s}`;
}

export function parseDay(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = DAY_RE.exec(v);
  if (m === null) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(ms).toISOString().slice(0, 10) === v ? ms : null;
}

export interface BatchRules {
  limits: ServerLimits;
  allowPrivateDomains: boolean;
  nowMs: number;
  /** Days before this are accepted but not stored (outside any future window). */
  oldestUsefulDayMs: number;
}

/** Validates a parsed JSON body. */
export function checkSightingsBatch(body: unknown, rules: BatchRules): BatchResult {
  const bad = (path: string, msg: string, status: 400 | 413 = 400): BatchResult => ({ ok: false, status, error: `${path}: ${msg}` });
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return bad('(body)', `expected an object {"days": [...]}, got ${describe(body)}`);
  const days = (body as Record<string, unknown>).days;
  if (!Array.isArray(days)) return bad('days', `expected a list of host-days, got ${describe(days)}`);
  if (days.length > rules.limits.maxDaysPerBatch)
    return bad('days', `${days.length} days in one batch, the limit is ${rules.limits.maxDaysPerBatch}`, 413);
  const out: DayBatch[] = [];
  const skippedDays: string[] = [];
  const seenDays = new Set<number>();
  const rootOk = rootCache(rules.allowPrivateDomains);
  let duplicates = 0;
  const latestDayMs = Math.floor(rules.nowMs / DAY_MS) * DAY_MS + DAY_MS;
  for (let i = 0; i < days.length; i++) {
    const at = `days[${i}]`;
    const d = days[i] as Record<string, unknown>;
    if (d === null || typeof d !== 'object' || Array.isArray(d))
      return bad(at, `expected an object {"day", "processes", "combos"}, got ${describe(d)}`);
    const dayMs = parseDay(d.day);
    if (dayMs === null) return bad(`${at}.day`, `expected a date like 2026-10-01, got ${describe(d.day)}`);
    if (dayMs > latestDayMs) return bad(`${at}.day`, `${String(d.day)} is in the future`);
    if (seenDays.has(dayMs)) return bad(`${at}.day`, `${String(d.day)} appears twice in the batch`);
    seenDays.add(dayMs);
    const procs = d.processes ?? [];
    const combos = d.combos ?? [];
    if (!Array.isArray(procs)) return bad(`${at}.processes`, `expected a list of sha256, got ${describe(procs)}`);
    if (!Array.isArray(combos)) return bad(`${at}.combos`, `expected a list of {sha256, rootDomain, port}, got ${describe(combos)}`);
    if (procs.length > rules.limits.maxProcessesPerDay)
      return bad(`${at}.processes`, `${procs.length} processes, the limit is ${rules.limits.maxProcessesPerDay} a day`, 413);
    if (combos.length > rules.limits.maxCombosPerDay)
      return bad(`${at}.combos`, `${combos.length} combos, the limit is ${rules.limits.maxCombosPerDay} a day`, 413);
    const procSet = new Set<string>();
    for (let j = 0; j < procs.length; j++) {
      const p = procs[j];
      if (typeof p !== 'string' || !SHA_RE.test(p))
        return bad(`${at}.processes[${j}]`, `expected a sha256 (64 hex digits), got ${describe(p)}`);
      const k = p.toLowerCase();
      if (procSet.has(k)) duplicates++;
      else procSet.add(k);
    }
    const comboKeys = new Set<string>();
    const dayCombos: DayBatch['combos'] = [];
    for (let j = 0; j < combos.length; j++) {
      const ca = `${at}.combos[${j}]`;
      const c = combos[j] as Record<string, unknown>;
      if (c === null || typeof c !== 'object' || Array.isArray(c))
        return bad(ca, `expected an object {sha256, rootDomain, port}, got ${describe(c)}`);
      if (typeof c.sha256 !== 'string' || !SHA_RE.test(c.sha256))
        return bad(`${ca}.sha256`, `expected a sha256 (64 hex digits), got ${describe(c.sha256)}`);
      const root = c.rootDomain;
      if (typeof root !== 'string' || root.length > 253 || !ROOT_RE.test(root)) {
        return bad(`${ca}.rootDomain`, `expected a lower-case registrable domain like example.com, got ${describe(root)}`);
      }
      let expected = rootOk.get(root);
      if (expected === undefined) {
        const r = rootDomainOf(root, { allowPrivateDomains: rules.allowPrivateDomains });
        expected = r.ok ? r.rootDomain : null;
        rootOk.set(root, expected);
      }
      if (expected !== root) {
        return bad(
          `${ca}.rootDomain`,
          `"${root}" is not a root domain under this server's policy${expected === null ? '' : ` (its root domain is "${expected}")`}`,
        );
      }
      const port = c.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535)
        return bad(`${ca}.port`, `expected a port 0..65535, got ${describe(port)}`);
      const sha = c.sha256.toLowerCase();
      const key = `${sha}|${root}|${port}`;
      if (comboKeys.has(key)) {
        duplicates++;
        continue;
      }
      comboKeys.add(key);
      dayCombos.push({ sha256: sha, rootDomain: root, port });
    }
    if (dayMs < rules.oldestUsefulDayMs) {
      skippedDays.push(d.day as string);
      continue;
    }
    out.push({ dayMs, processes: [...procSet], combos: dayCombos });
  }
  return { ok: true, days: out, skippedDays, duplicates };
}
