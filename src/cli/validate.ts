// `rarecon validate [--config FILE | FILE]`: every problem of a config file (and its config.d) at once.
// Without a file it checks what `rarecon run` would run on: /etc/rarecon/config.yaml
// when present, else the embedded default, with /etc/rarecon/config.d over it.
import type { Writable } from 'node:stream';
import { formatProblems } from './config-file.js';
import { parseCommand } from './command-spec.js';
import { VALIDATE } from './commands.js';
import { loadRunConfig } from './run-config.js';

export async function validateCommand(argv: string[], out: Writable, err: Writable): Promise<number> {
  const parsed = parseCommand(VALIDATE, argv, out);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const { file, result: r } = loadRunConfig(values.config ?? positionals[0] ?? null);
  const what = file ?? 'the embedded default';
  if (!r.ok) {
    err.write(`${formatProblems(r)}\n${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} in ${what}\n`);
    return 1;
  }
  const dropIns = r.files.filter((f) => f !== file);
  out.write(`${what}${dropIns.length === 0 ? '' : ` with ${dropIns.join(', ')}`}: valid\n`);
  return 0;
}
