// Synthetic data for the scoring benchmark: a fleet baseline of N combos whose
// root domains are real registrable names (so the scorer's tldts step finds
// them), and an NDJSON day of events drawn with a Zipf-like skew.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { BaselineBuilder } from '../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../src/config/defaults.js';
import { DEFAULT_POLICY } from '../src/model/root-domain.js';
import { DAY_MS, type Sighting } from '../src/model/baseline.js';
import {
  BENCH_DAY0_MS,
  BENCH_DAYS,
  BENCH_ORGS,
  comboParts,
  mix32,
  observersOf,
  processCountFor,
  shaHex,
  type ComboParts,
} from './baseline-data.js';

export const EVENTS_DAY_MS = BENCH_DAY0_MS + BENCH_DAYS * DAY_MS + 8 * 3_600_000;
export const rootOf = (r: number): string => `r${r.toString(36)}-shop${r % 10}.com`;

export interface BuiltBaseline {
  sightings: number;
  seconds: number;
}

export function buildScoreBaseline(path: string, combos: number): BuiltBaseline {
  const shas = processCountFor(combos);
  const shaPool = Array.from({ length: shas }, (_, j) => shaHex(j));
  const orgs = Array.from({ length: BENCH_ORGS }, (_, o) => `org-${o}`);
  const builder = new BaselineBuilder({ unit: 'org', windowDays: BENCH_DAYS, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };
  const parts: ComboParts = { sha: 0, root: 0, port: 0 };
  const roots = new Map<number, string>();
  let sightings = 0;
  const t0 = performance.now();
  for (let i = 0; i < combos; i++) {
    comboParts(i, combos, parts);
    let root = roots.get(parts.root);
    if (root === undefined) roots.set(parts.root, (root = rootOf(parts.root)));
    s.sha256 = shaPool[parts.sha]!;
    s.rootDomain = root;
    s.port = parts.port;
    const k = observersOf(i);
    const h = mix32(i);
    for (let j = 0; j < k; j++) {
      s.observer = orgs[(h + j * 7) % BENCH_ORGS]!;
      s.dayMs = BENCH_DAY0_MS + (((h >>> 3) + j) % BENCH_DAYS) * DAY_MS;
      builder.add(s);
      sightings++;
    }
  }
  const r = builder.write(path, { version: 1, builtAtMs: Date.now() });
  if (!r.ok) throw new Error(r.error);
  return { sightings, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Writes `events` connection lines (plus one enrolment line per host): 97% to
 * combos many orgs saw (drawn with a skew, as real traffic repeats), 2% to
 * rare stored combos, 1% to never-seen ports.
 */
export async function writeScoreEvents(path: string, combos: number, events: number, hosts = 1000): Promise<void> {
  const parts: ComboParts = { sha: 0, root: 0, port: 0 };
  const common: number[] = [];
  const rare: number[] = [];
  for (let i = 0; i < combos && (common.length < 50_000 || rare.length < 50_000); i++) {
    const n = observersOf(i);
    if (n >= 21 && common.length < 50_000) common.push(i);
    else if (n === 1 && rare.length < 50_000) rare.push(i);
  }
  const out = createWriteStream(path);
  const write = async (line: string): Promise<void> => {
    if (!out.write(line)) await once(out, 'drain');
  };
  for (let h = 0; h < hosts; h++) {
    await write(
      `{"type":"process","time":${EVENTS_DAY_MS - 20 * DAY_MS},"host":{"id":"host-${h}","org":"bench"},"sha256":"${shaHex(0)}","path":"/usr/bin/curl"}\n`,
    );
  }
  for (let e = 0; e < events; e++) {
    const u = mix32(e * 3 + 1) / 4_294_967_296;
    const pick = mix32(e * 3 + 2) / 4_294_967_296;
    let i: number;
    let unseen = false;
    if (u < 0.97) i = common[Math.floor(common.length * pick * pick * pick)]!;
    else if (u < 0.99) i = rare[Math.floor(rare.length * pick)]!;
    else {
      i = common[Math.floor(common.length * pick)]!;
      unseen = true;
    }
    comboParts(i, combos, parts);
    const port = unseen ? 40_000 + (e % 1000) : parts.port;
    const host = mix32(e) % hosts;
    const t = EVENTS_DAY_MS + Math.floor((e / events) * 3_600_000);
    await write(
      `{"type":"connection","time":${t},"host":{"id":"host-${host}","org":"bench"},"process":{"pid":${1000 + (e % 5000)},"tid":${1000 + (e % 5000)},"path":"/usr/bin/app${parts.sha % 50}","sha256":"${shaHex(parts.sha)}","signer":{"status":"valid","subject":"Debian","vendor":"Debian"},"injection":{"injected":false,"indicators":[]},"cmdline":"app --sync","user":"svc"},"protocol":"tcp","remote":{"ip":"203.0.113.${e % 250}","port":${port},"hostname":"api.${rootOf(parts.root)}"}}\n`,
    );
  }
  out.end();
  await once(out, 'finish');
}
