// A command's options, declared once: parsed with node's parseArgs and printed
// as `--help` (one line a flag, with what it does and its default). Every
// command and subcommand takes -h/--help; an option given twice is an error
// unless it may repeat.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { UsageError } from './io.js';

interface OptionBase {
  short?: string;
  /** What the value looks like in the help (FILE, N, ocsf|ecs). */
  value?: string;
  help: string;
  /** The default as the help shows it, when it is not `default` itself (e.g. "from the config"). */
  shownDefault?: string;
}

export type OptionSpec =
  | (OptionBase & { type: 'string'; default?: string; multiple?: false })
  | (OptionBase & { type: 'string'; multiple: true; default?: string[] })
  | (OptionBase & { type: 'boolean'; default?: boolean });

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  /** `score`, `baseline build`, `server enroll`. */
  name: string;
  /** The usage line(s) after `rarecon <name>`. */
  usage: string[];
  /** What the command does, one or two sentences. */
  summary: string;
  options: O;
  /** Subcommands shown in the help: name and what it does. */
  subcommands?: Array<[string, string]>;
  allowPositionals?: boolean;
}

export function defineCommand<const O extends Record<string, OptionSpec>>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

const HELP_COLUMN = 28;

function usageLines(spec: CommandSpec): string[] {
  return spec.usage.map((u, i) => `${i === 0 ? 'usage: ' : '       '}rarecon ${spec.name}${u === '' ? '' : ` ${u}`}`);
}

/** What follows a bad-usage message: how the command is used, and where its options are. */
export function usageHint(spec: CommandSpec): string {
  return `${usageLines(spec).join('\n')}\n'rarecon ${spec.name} --help' lists the options and their defaults.`;
}

export function helpText(spec: CommandSpec): string {
  const lines = usageLines(spec);
  lines.push('', spec.summary);
  if (spec.subcommands !== undefined && spec.subcommands.length > 0) {
    lines.push('', 'commands:');
    for (const [name, what] of spec.subcommands) lines.push(`  ${name.padEnd(HELP_COLUMN - 2)}${what}`);
  }
  lines.push('', 'options:');
  const entries: Array<[string, string]> = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short === undefined ? '    ' : `-${o.short}, `}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const def = o.shownDefault ?? (o.default === undefined || o.default === false ? undefined : String(o.default));
    return [
      flag,
      `${o.help}${def === undefined ? '' : ` (default: ${def})`}${o.type === 'string' && o.multiple === true ? '; may repeat' : ''}`,
    ];
  });
  entries.push(['-h, --help', 'print this help and exit']);
  for (const [flag, what] of entries) {
    lines.push(
      flag.length + 2 >= HELP_COLUMN ? `  ${flag}\n${' '.repeat(HELP_COLUMN)}${what}` : `  ${flag.padEnd(HELP_COLUMN - 2)}${what}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** Whether argv asks for help (before a `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** The parsed values: booleans are false when absent, strings undefined unless they have a default. */
export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]: O[K] extends { type: 'boolean' }
    ? boolean
    : O[K] extends { multiple: true }
      ? string[]
      : O[K] extends { default: string }
        ? string
        : string | undefined;
};

/**
 * Parses argv for `spec`; prints the help to `out` and returns null on -h/--help.
 * A bad or repeated option is a UsageError that names it and points at --help.
 */
export function parseCommand<const O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  argv: string[],
  out: Writable,
): { values: OptionValues<O>; positionals: string[] } | null {
  if (wantsHelp(argv)) {
    out.write(helpText(spec));
    return null;
  }
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] }> =
    {};
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = { type: o.type };
    if (o.short !== undefined) options[name].short = o.short;
    if (o.type === 'string' && o.multiple === true) options[name].multiple = true;
    if (o.default !== undefined) options[name].default = o.default;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: spec.allowPositionals === true, strict: true, tokens: true });
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS')) throw err;
    const msg = (err as Error).message.split('. To specify a positional argument')[0] ?? '';
    throw new UsageError(`${msg.charAt(0).toLowerCase()}${msg.slice(1)}\n${usageHint(spec)}`);
  }
  const seen = new Map<string, number>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const o = spec.options[t.name];
    if (o === undefined || (o.type === 'string' && o.multiple === true)) continue;
    const n = (seen.get(t.name) ?? 0) + 1;
    seen.set(t.name, n);
    if (n === 2) {
      const more = t.name === 'config' ? '; put further settings in files of the config.d folder beside it' : '';
      throw new UsageError(`--${t.name} given more than once: give it once${more}\n${usageHint(spec)}`);
    }
  }
  const values: Record<string, unknown> = { ...parsed.values };
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.type === 'boolean' && values[name] === undefined) values[name] = false;
    if (o.type === 'string' && o.multiple === true && values[name] === undefined) values[name] = [];
  }
  return { values: values as OptionValues<O>, positionals: parsed.positionals };
}
