// The config file: every section's shape put together, read (YAML or JSON;
// JSON is YAML), with every problem reported at once with its line; returns
// the config merged over the defaults (config/defaults.ts) or the problems.
// The files of the `config.d` folder beside it (*.yaml, *.yml, *.json) are laid
// over it in name order; `${VAR}` and `${VAR:-default}` in values are taken from
// the environment (`$$` is a `$`).
// It lives here, at the top, because it is the one place that knows every section.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LineCounter, parse as parseYaml, parseDocument, isMap, isSeq, visit, type Node } from 'yaml';
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
  /** The file of a config.d drop-in the problem is in; absent: the result's `file`. */
  file?: string;
}

export type ConfigResult = { ok: true; config: RareconConfig; files: string[] } | { ok: false; file: string; problems: LocatedProblem[] };

/** One file read: its value, or its problems. */
interface ReadFile {
  file: string;
  value: unknown;
  root: Node | null;
  lc: LineCounter;
}

const VAR = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$\{[^}]*\}?/g;

/** `${NAME}`, `${NAME:-default}` (also when set but empty) and `$$` in one value. */
export function interpolate(text: string, env: NodeJS.ProcessEnv): { ok: true; value: string } | { ok: false; error: string } {
  let error: string | null = null;
  const value = text.replace(VAR, (m, name: string | undefined, hasDefault: string | undefined, fallback: string | undefined) => {
    if (m === '$$') return '$';
    if (name === undefined) {
      error ??= `"${m}" is not \${NAME} or \${NAME:-default} (write $$ for a literal $)`;
      return m;
    }
    const v = env[name];
    if (v !== undefined && (v !== '' || hasDefault === undefined)) return v;
    if (hasDefault !== undefined) return fallback ?? '';
    error ??= `environment variable ${name} is not set (\${${name}:-default} gives a default)`;
    return m;
  });
  return error === null ? { ok: true, value } : { ok: false, error };
}

/** A plain (unquoted) scalar takes the YAML type of what it became: `port: ${PORT}` is a number. */
function plainValue(text: string): unknown {
  try {
    const v: unknown = parseYaml(text);
    return v !== null && typeof v === 'object' ? text : v;
  } catch {
    return text;
  }
}

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

function readText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv,
): { ok: true; read: ReadFile } | { ok: false; problems: LocatedProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const lines = text.split('\n');
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const line = lc.linePos(e.pos[0]).line;
        // `${` opens a flow mapping inside {...} or [...]: there a reference must be quoted.
        const hint = lines[line - 1]?.includes('${') === true ? ' (inside {...} or [...] write a reference in quotes: "${VAR}")' : '';
        return { path: '(syntax)', message: `${e.message.split('\n')[0] ?? e.message}${hint}`, line };
      }),
    };
  }
  const problems: LocatedProblem[] = [];
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const r = interpolate(node.value, env);
      if (!r.ok) {
        problems.push({
          path: '(environment)',
          message: r.error,
          line: node.range === undefined || node.range === null ? null : lc.linePos(node.range[0]).line,
        });
        return;
      }
      node.value = node.type === 'PLAIN' ? plainValue(r.value) : r.value;
    },
  });
  if (problems.length > 0) return { ok: false, problems };
  const value: unknown = doc.toJS() ?? {};
  const shape: Problem[] = [];
  validate(value, CONFIG_SPEC, '', shape);
  if (shape.length > 0) {
    return {
      ok: false,
      problems: shape.map((p) => {
        const line = lineOf(doc.contents as Node | null, p.path, lc);
        const quoted = line !== null && /got string/.test(p.message) && /["']\$\{/.test(text.split('\n')[line - 1] ?? '');
        return { ...p, message: quoted ? `${p.message} (a quoted \${VAR} stays a string: write it unquoted)` : p.message, line };
      }),
    };
  }
  return { ok: true, read: { file, value, root: doc.contents as Node | null, lc } };
}

export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ConfigResult {
  return combine([{ file, text }], file, env);
}

/** The files laid over the defaults in order, each checked on its own, then the merge checked as a whole. */
function combine(texts: Array<{ file: string; text: string }>, main: string, env: NodeJS.ProcessEnv): ConfigResult {
  const reads: ReadFile[] = [];
  const problems: LocatedProblem[] = [];
  for (const t of texts) {
    const r = readText(t.text, t.file, env);
    if (r.ok) reads.push(r.read);
    else problems.push(...r.problems.map((p) => (t.file === main ? p : { ...p, file: t.file })));
  }
  if (problems.length > 0) return { ok: false, file: main, problems };
  let merged = mergeDefaults(DEFAULT_CONFIG, undefined);
  for (const r of reads) merged = mergeDefaults(merged, r.value);
  return finish(merged, main, reads);
}

/** Checks that need the merged config (per-sink defaults, cross-field rules). */
function finish(merged: RareconConfig, file: string, reads: ReadFile[]): ConfigResult {
  const report = resolveReport(merged.report);
  const problems: Problem[] = report.ok ? [] : [...report.problems];
  for (const message of syncConfigProblems(merged.sync)) problems.push({ path: 'sync', message });
  problems.push(...daemonConfigProblems(merged, report.ok ? report.config : null));
  if (problems.length > 0) {
    return { ok: false, file, problems: problems.map((p) => locate(p, file, reads)) };
  }
  if (report.ok) merged.report = report.config;
  return { ok: true, config: merged, files: reads.map((r) => r.file) };
}

/** A problem of the merge, placed in the last file that sets its section. */
function locate(p: Problem, main: string, reads: ReadFile[]): LocatedProblem {
  const section = p.path.split(/[.[]/)[0] ?? '';
  const r = [...reads].reverse().find((x) => x.value !== null && typeof x.value === 'object' && section in (x.value as object));
  if (r === undefined) return { ...p, line: null };
  const line = r.root === null ? null : lineOf(r.root, p.path, r.lc);
  return r.file === main ? { ...p, line } : { ...p, line, file: r.file };
}

/** The drop-ins of a config.d folder, in name order; none when it is not there. */
export function dropInFiles(dir: string | null): string[] {
  if (dir === null) return [];
  try {
    return readdirSync(dir)
      .filter((n) => /\.(ya?ml|json)$/.test(n) && !n.startsWith('.'))
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/**
 * The config of `file` (null: the embedded default) and the drop-ins of
 * `dropInDir` (by default the config.d folder beside the file) laid over it.
 */
export function loadConfig(
  file: string | null,
  dropInDir: string | null = file === null ? null : join(dirname(file), 'config.d'),
  env: NodeJS.ProcessEnv = process.env,
): ConfigResult {
  const texts: Array<{ file: string; text: string }> = [];
  for (const f of [...(file === null ? [] : [file]), ...dropInFiles(dropInDir)]) {
    try {
      texts.push({ file: f, text: readFileSync(f, 'utf8') });
    } catch (err) {
      return { ok: false, file: f, problems: [{ path: '(file)', message: `cannot read: ${(err as Error).message}`, line: null }] };
    }
  }
  return combine(texts, file ?? '(defaults)', env);
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
  return r.problems.map((p) => `${p.file ?? r.file}${p.line === null ? '' : `:${p.line}`}: ${p.path}: ${p.message}`).join('\n');
}
