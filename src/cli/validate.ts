// `rarecon validate [--config FILE]`: every problem of a config file at once:
// its shape and bounds (the parser, as every command reads it), then what
// start-up would refuse and more (config-checks.ts: files, environment
// variables, TLS pairs, the baseline, output paths, state folders).
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { checkConfig } from './config-checks.js';
import { formatProblems, loadConfig, locateProblems } from './config-file.js';

export async function validateCommand(argv: string[], out: Writable, err: Writable, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' } } });
  const file = values.config ?? positionals[0] ?? DEFAULT_CONFIG_PATH;
  const r = loadConfig(file);
  const located = r.ok ? null : r;
  const checks = r.ok ? checkConfig(r.config, env) : null;
  const found = located ?? { ok: false as const, file, problems: locateProblems(file, checks!.problems) };
  if (checks !== null && checks.notes.length > 0) {
    const notes = { ok: false as const, file, problems: locateProblems(file, checks.notes) };
    out.write(formatProblems(notes).replace(/^/gm, 'note: ') + '\n');
  }
  if (found.problems.length > 0) {
    const n = found.problems.length;
    err.write(`${formatProblems(found)}\n${n} problem${n === 1 ? '' : 's'} in ${file}\n`);
    return 1;
  }
  out.write(`${file}: valid\n`);
  return 0;
}
