// The config file: every section's shape put together, read (YAML or JSON;
// JSON is YAML), with every problem reported at once with its line; returns
// the config merged over the defaults (config/defaults.ts) or the problems.
// It lives here, at the top, because it is the one place that knows every section.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { mergeDefaults, validate, type Problem, type Spec } from '../config/spec.js';
import { DEFAULT_CONFIG, type RareconConfig } from '../config/defaults.js';
import { BASELINE_STORE_SPEC } from '../baseline/config.js';
import { SOURCE_SPEC } from '../sources/config.js';
import { ENRICH_SPEC, HOST_SPEC } from '../enrich/config.js';
import { DETECT_SPEC } from '../detect/config.js';
import { REPORT_SPEC, resolveReport } from '../report/config.js';
import { SYNC_SPEC, syncConfigProblems } from '../sync/config.js';
import { SERVER_SPEC } from '../server/config.js';
import { DAEMON_FIELDS, daemonConfigProblems } from '../daemon/config.js';

/** The whole file: the daemon's own settings and one section a stage. */
export const CONFIG_SPEC: Spec = {
  kind: 'object',
  fields: {
    detect: DETECT_SPEC,
    baselineStore: BASELINE_STORE_SPEC,
    host: HOST_SPEC,
    source: SOURCE_SPEC,
    enrich: ENRICH_SPEC,
    ...DAEMON_FIELDS,
    report: REPORT_SPEC,
    sync: SYNC_SPEC,
    server: SERVER_SPEC,
  },
};

export interface LocatedProblem extends Problem {
  line: number | null;
}

export type ConfigResult = { ok: true; config: RareconConfig } | { ok: false; file: string; problems: LocatedProblem[] };

/** The line of the node at a dotted path like `detect.exclusions.ports[2]`, or null. */
function lineOf(root: Node | null, path: string, lc: LineCounter): number | null {
  let node: unknown = root;
  let found: unknown = root;
  for (const part of path.split(/\.|(?=\[)/)) {
    if (part === '' || part === '(top level)') continue;
    const idx = /^\[(\d+)\]$/.exec(part);
    if (idx !== null && isSeq(node)) {
      node = node.items[Number(idx[1])];
    } else if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === part);
      node = pair === undefined ? undefined : (pair.value ?? pair.key);
      if (pair !== undefined && pair.value === null) node = pair.key;
    } else {
      node = undefined;
    }
    if (node === undefined || node === null) break;
    found = node;
  }
  const range = (found as { range?: [number, number, number] } | null)?.range;
  return range === undefined ? null : lc.linePos(range[0]).line;
}

export function parseConfigText(text: string, file: string): ConfigResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      file,
      problems: doc.errors.map((e) => ({
        path: '(syntax)',
        message: e.message.split('\n')[0] ?? e.message,
        line: lc.linePos(e.pos[0]).line,
      })),
    };
  }
  const value: unknown = doc.toJS() ?? {};
  const problems: Problem[] = [];
  validate(value, CONFIG_SPEC, '', problems);
  if (problems.length > 0) {
    return { ok: false, file, problems: problems.map((p) => ({ ...p, line: lineOf(doc.contents as Node | null, p.path, lc) })) };
  }
  return finish(mergeDefaults(DEFAULT_CONFIG, value), file, doc.contents as Node | null, lc);
}

/** Checks that need the merged config (per-sink defaults, cross-field rules). */
function finish(merged: RareconConfig, file: string, root: Node | null, lc: LineCounter): ConfigResult {
  const report = resolveReport(merged.report);
  const problems: Problem[] = report.ok ? [] : [...report.problems];
  for (const message of syncConfigProblems(merged.sync)) problems.push({ path: 'sync', message });
  problems.push(...daemonConfigProblems(merged, report.ok ? report.config : null));
  if (problems.length > 0) {
    return { ok: false, file, problems: problems.map((p) => ({ ...p, line: root === null ? null : lineOf(root, p.path, lc) })) };
  }
  if (report.ok) merged.report = report.config;
  return { ok: true, config: merged };
}

export function loadConfig(file: string | null): ConfigResult {
  if (file === null) return finish(mergeDefaults(DEFAULT_CONFIG, undefined), '(defaults)', null, new LineCounter());
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, file, problems: [{ path: '(file)', message: `cannot read: ${(err as Error).message}`, line: null }] };
  }
  return parseConfigText(text, file);
}

/** Problems found outside the parser (`rarecon validate`'s checks), with the line of each path in `file`. */
export function locateProblems(file: string, problems: readonly Problem[]): LocatedProblem[] {
  let root: Node | null = null;
  const lc = new LineCounter();
  try {
    root = parseDocument(readFileSync(file, 'utf8'), { lineCounter: lc }).contents as Node | null;
  } catch {
    // no file (the defaults): no lines
  }
  return problems.map((p) => ({ ...p, line: root === null ? null : lineOf(root, p.path, lc) }));
}

export function formatProblems(r: Extract<ConfigResult, { ok: false }>): string {
  return r.problems.map((p) => `${r.file}${p.line === null ? '' : `:${p.line}`}: ${p.path}: ${p.message}`).join('\n');
}
