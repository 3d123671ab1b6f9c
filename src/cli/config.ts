// `rarecon config schema|example`: what the config file may hold.
import type { Writable } from 'node:stream';
import { helpText, parseCommand, usageHint, wantsHelp } from './command-spec.js';
import { CONFIG, CONFIG_SUBCOMMANDS } from './commands.js';
import { commentedDefaultConfig, configJsonSchema } from './config-schema.js';
import { UsageError } from './io.js';

export async function configCommand(argv: string[], out: Writable): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'schema') {
    if (parseCommand(CONFIG_SUBCOMMANDS.schema, rest, out) === null) return 0;
    out.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    return 0;
  }
  if (sub === 'example') {
    const parsed = parseCommand(CONFIG_SUBCOMMANDS.example, rest, out);
    if (parsed === null) return 0;
    out.write(commentedDefaultConfig(parsed.values['schema-url']));
    return 0;
  }
  if (sub === undefined || wantsHelp(argv)) {
    (sub === undefined ? process.stderr : out).write(helpText(CONFIG));
    return sub === undefined ? 1 : 0;
  }
  throw new UsageError(`unknown config command "${sub}"\n${usageHint(CONFIG)}`);
}
