// `rarecon validate [--config FILE | FILE]`: every problem of a config file (and its config.d) at once:
// its shape and bounds (the parser, as every command reads it), then what
// start-up would refuse and more (config-checks.ts: files, environment
// variables, TLS pairs, the baseline, output paths, state folders).
// Without a file it checks what `rarecon run` would run on: /etc/rarecon/config.yaml
// when present, else the embedded default, with /etc/rarecon/config.d over it.
import type { Writable } from 'node:stream';
import { checkConfig } from './config-checks.js';
import { formatProblems, locateProblems } from './config-file.js';
import { parseCommand } from './command-spec.js';
import { VALIDATE } from './commands.js';
import { loadRunConfig } from './run-config.js';

export async function validateCommand(argv: string[], out: Writable, err: Writable, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(VALIDATE, argv, out);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const { file, result: r } = loadRunConfig(values.config ?? positionals[0] ?? null, env);
  const what = file ?? 'the embedded default';
  const label = file ?? '(embedded default)';
  if (!r.ok) {
    err.write(`${formatProblems(r)}\n${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} in ${what}\n`);
    return 1;
  }
  const checks = checkConfig(r.config, env);
  if (checks.notes.length > 0) {
    const notes = { ok: false as const, file: label, problems: locateProblems(label, checks.notes) };
    out.write(formatProblems(notes).replace(/^/gm, 'note: ') + '\n');
  }
  if (checks.problems.length > 0) {
    const found = { ok: false as const, file: label, problems: locateProblems(label, checks.problems) };
    const n = found.problems.length;
    err.write(`${formatProblems(found)}\n${n} problem${n === 1 ? '' : 's'} in ${what}\n`);
    return 1;
  }
  const dropIns = r.files.filter((f) => f !== file);
  out.write(`${what}${dropIns.length === 0 ? '' : ` with ${dropIns.join(', ')}`}: valid\n`);
  return 0;
}
