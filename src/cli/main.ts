#!/usr/bin/env node
// The `rarecon` command.
import { UsageError } from './io.js';
import { PRODUCT_VERSION } from '../model/product.js';

const USAGE = `rarecon ${PRODUCT_VERSION}: alerts when a globally common binary talks to a root domain and port it almost never talks to

usage: rarecon <command> [options]

  score             score event logs offline against a baseline (alerts on stdout)
  baseline build    learn a prevalence baseline from event logs
  run               run the endpoint daemon
  status            show the daemon's state at a glance
  validate          check a config file and report every problem
  version           print the version

'rarecon <command> --help' tells more.`;

type Handler = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Handler>> = {
  score: async () => {
    const m = await import('./score.js');
    return (argv) => m.scoreCommand(argv, process.stdout, process.stderr);
  },
  baseline: async () => {
    const m = await import('./baseline-build.js');
    return async (argv) => {
      if (argv[0] !== 'build') throw new UsageError(`unknown baseline command "${argv[0] ?? ''}"\n${m.BUILD_USAGE}`);
      return m.baselineBuildCommand(argv.slice(1), process.stderr);
    };
  },
  validate: async () => {
    const m = await import('./validate.js');
    return (argv) => m.validateCommand(argv, process.stdout, process.stderr);
  },
  run: async () => {
    const m = await import('./run.js');
    return (argv) => m.runCommand(argv);
  },
  status: async () => {
    const m = await import('./status.js');
    return (argv) => m.statusCommand(argv, process.stdout);
  },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE + '\n');
    return name === undefined ? 1 : 0;
  }
  if (name === 'version' || name === '--version') {
    process.stdout.write(`rarecon ${PRODUCT_VERSION}\n`);
    return 0;
  }
  const load = commands[name];
  if (load === undefined) throw new UsageError(`unknown command "${name}"\n\n${USAGE}`);
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`rarecon: ${(err as Error).message}\n`);
    } else {
      process.stderr.write(`rarecon: internal error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
