// `rarecon validate [--config FILE]`: every problem of a config file at once.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { formatProblems, loadConfig } from './config-file.js';

export async function validateCommand(argv: string[], out: Writable, err: Writable): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' } } });
  const file = values.config ?? positionals[0] ?? DEFAULT_CONFIG_PATH;
  const r = loadConfig(file);
  if (!r.ok) {
    err.write(`${formatProblems(r)}\n${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} in ${file}\n`);
    return 1;
  }
  out.write(`${file}: valid\n`);
  return 0;
}
