// Reads a config file (YAML or JSON; JSON is YAML), reports every problem at
// once with its line, and returns the merged config or the problems.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { CONFIG_SPEC, DEFAULT_CONFIG, mergeDefaults, validate, type Problem, type RareconConfig } from './schema.js';
import { resolveReport } from '../report/config.js';
import { syncConfigProblems } from '../baseline/sync-config.js';

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
  problems.push(...daemonProblems(merged, report.ok ? report.config : null));
  if (problems.length > 0) {
    return { ok: false, file, problems: problems.map((p) => ({ ...p, line: root === null ? null : lineOf(root, p.path, lc) })) };
  }
  if (report.ok) merged.report = report.config;
  return { ok: true, config: merged };
}

/** Cross-field rules of the daemon's own settings. */
function daemonProblems(c: RareconConfig, report: RareconConfig['report'] | null): Problem[] {
  const out: Problem[] = [];
  if (c.logStream === 'stdout' && c.logFile === null && report !== null && report.sinks.some((s) => s.type === 'stdout')) {
    out.push({ path: 'logStream', message: 'stdout carries alerts (a stdout sink is configured): keep logs on stderr, or set logFile' });
  }
  if (c.sync.serverUrl === null && report !== null) {
    report.sinks.forEach((s, i) => {
      if (s.type === 'server')
        out.push({
          path: `report.sinks[${i}].type`,
          message: 'a server sink sends to the baseline server of sync.serverUrl, which is not set',
        });
    });
  }
  const w = c.watchdog;
  if (w.hardMemoryBytes !== 0 && w.hardMemoryBytes <= w.memoryBytes) {
    out.push({
      path: 'watchdog.hardMemoryBytes',
      message: `must be above watchdog.memoryBytes (${w.memoryBytes}), or 0 for no hard limit`,
    });
  }
  return out;
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

export function formatProblems(r: Extract<ConfigResult, { ok: false }>): string {
  return r.problems.map((p) => `${r.file}${p.line === null ? '' : `:${p.line}`}: ${p.path}: ${p.message}`).join('\n');
}
