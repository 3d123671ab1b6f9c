#!/usr/bin/env node
// The `rarecon` command. Every message is one style: help on stdout (exit 0);
// a problem as `rarecon: <what is wrong>` on stderr (exit 1), bad usage with a
// pointer to the command's --help.
// First: `rarecon run` catches SIGTERM and SIGINT before the rest loads (stop-signals.ts).
import { catchStopSignals } from './stop-signals.js';
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { UsageError } from './io.js';
import { PRODUCT_VERSION } from '../model/product.js';
import { helpText, usageHint, wantsHelp } from './command-spec.js';
import { BASELINE, VERSION } from './commands.js';

const USAGE = `rarecon ${PRODUCT_VERSION}: alerts when a globally common binary talks to a root domain and port it almost never talks to

usage: rarecon <command> [options]

commands:
  run               run the endpoint daemon
  status            show the daemon's state at a glance
  score             score event logs offline against a baseline (alerts on stdout)
  baseline build    learn a prevalence baseline from event logs
  sync              sync the baseline and upload sightings now (--now), or show the last sync
  server            run the baseline server, or one of its operator commands (enroll, revoke, pubkey, build)
  service           install, uninstall or show the systemd unit
  validate          check a config file and report every problem
  config            print the config file's JSON Schema (config schema) or the commented default (config example)
  version           print the version (also -V, --version)
  help              print this help (also -h, --help)

'rarecon <command> --help' lists a command's options with their defaults.
`;

type Handler = (argv: string[]) => Promise<number>;

// V8 takes its heap settings only at start-up: `rarecon score` runs itself once
// more with them when its inputs are large enough for them to pay (score.ts says when).
function scoreAgainWith(argv: string[], flags: readonly string[]): Promise<number> {
  if (process.argv[1] === undefined) return Promise.reject(new Error('cannot find the rarecon script to run again'));
  const child = spawn(process.execPath, [...process.execArgv, ...flags, process.argv[1], 'score', ...argv], { stdio: 'inherit' });
  // Whoever stops rarecon stops the scoring.
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0))));
  });
}

const commands: Record<string, () => Promise<Handler>> = {
  score: async () => {
    const m = await import('./score.js');
    return (argv) => m.scoreCommand(argv, process.stdout, process.stderr, { rerunWith: (flags) => scoreAgainWith(argv, flags) });
  },
  baseline: async () => {
    const m = await import('./baseline-build.js');
    return async (argv) => {
      if (argv[0] === 'build') return m.baselineBuildCommand(argv.slice(1), process.stdout, process.stderr);
      if (argv.length === 0 || wantsHelp(argv)) {
        (argv.length === 0 ? process.stderr : process.stdout).write(helpText(BASELINE));
        return argv.length === 0 ? 1 : 0;
      }
      throw new UsageError(`unknown baseline command "${argv[0] ?? ''}"\n${usageHint(BASELINE)}`);
    };
  },
  validate: async () => {
    const m = await import('./validate.js');
    return (argv) => m.validateCommand(argv, process.stdout, process.stderr);
  },
  run: async () => {
    // Before the daemon's modules load (a few hundred ms on a busy host): a stop asked meanwhile is kept.
    catchStopSignals();
    const m = await import('./run.js');
    return (argv) => m.runCommand(argv);
  },
  server: async () => {
    const m = await import('./server.js');
    return (argv) => m.serverCommand(argv);
  },
  sync: async () => {
    const m = await import('./sync.js');
    return (argv) => m.syncCommand(argv);
  },
  service: async () => {
    const m = await import('./service.js');
    return (argv) => m.serviceCommand(argv, process.stdout);
  },
  status: async () => {
    const m = await import('./status.js');
    return (argv) => m.statusCommand(argv, process.stdout);
  },
  config: async () => {
    const m = await import('./config.js');
    return (argv) => m.configCommand(argv, process.stdout);
  },
  version: async () => async (argv) => {
    if (wantsHelp(argv)) process.stdout.write(helpText(VERSION));
    else process.stdout.write(`rarecon ${PRODUCT_VERSION}\n`);
    return 0;
  },
};
commands['-V'] = commands.version!;
commands['--version'] = commands.version!;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    // `rarecon help score` is `rarecon score --help`.
    if (name === 'help' && rest[0] !== undefined && commands[rest[0]] !== undefined)
      return (await commands[rest[0]]!())([...rest.slice(1), '--help']);
    // Asked for: stdout, exit 0. No command at all is bad usage: stderr, exit 1.
    (name === undefined ? process.stderr : process.stdout).write(USAGE);
    return name === undefined ? 1 : 0;
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
    if (err instanceof UsageError) {
      process.stderr.write(`rarecon: ${err.message.trimEnd()}\n`);
    } else {
      process.stderr.write(`rarecon: internal error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
