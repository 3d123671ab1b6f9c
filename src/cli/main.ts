#!/usr/bin/env node
// The `rarecon` command.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { UsageError } from './io.js';
import { PRODUCT_VERSION } from '../model/product.js';

const USAGE = `rarecon ${PRODUCT_VERSION}: alerts when a globally common binary talks to a root domain and port it almost never talks to

usage: rarecon <command> [options]

  score             score event logs offline against a baseline (alerts on stdout)
  baseline build    learn a prevalence baseline from event logs
  run               run the endpoint daemon
  status            show the daemon's state at a glance
  sync --now        sync the baseline and upload sightings now
  server            run the baseline server ('server enroll --org NAME' prints a token)
  service           install|uninstall|status the systemd unit
  validate          check a config file and report every problem
  version           print the version

'rarecon <command> --help' tells more.`;

type Handler = (argv: string[]) => Promise<number>;

function isParseArgsError(err: unknown): err is Error {
  return err instanceof Error && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
}

/** A bad option is bad usage: say what was wrong (without node's hint about '--') and how the command is used. */
function withUsage(usage: string, run: Handler): Handler {
  return async (argv) => {
    try {
      return await run(argv);
    } catch (err) {
      if (isParseArgsError(err)) throw new UsageError(`${err.message.split('. To specify a positional argument')[0]}\n${usage}`);
      throw err;
    }
  };
}

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
    return withUsage(m.SCORE_USAGE, (argv) =>
      m.scoreCommand(argv, process.stdout, process.stderr, { rerunWith: (flags) => scoreAgainWith(argv, flags) }),
    );
  },
  baseline: async () => {
    const m = await import('./baseline-build.js');
    return withUsage(m.BUILD_USAGE, async (argv) => {
      if (argv[0] !== 'build') throw new UsageError(`unknown baseline command "${argv[0] ?? ''}"\n${m.BUILD_USAGE}`);
      return m.baselineBuildCommand(argv.slice(1), process.stderr);
    });
  },
  validate: async () => {
    const m = await import('./validate.js');
    return withUsage('usage: rarecon validate [--config FILE]', (argv) => m.validateCommand(argv, process.stdout, process.stderr));
  },
  run: async () => {
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
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    // Asked for: stdout, exit 0. No command at all is bad usage: stderr, exit 1.
    (name === undefined ? process.stderr : process.stdout).write(USAGE + '\n');
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
    if (err instanceof UsageError || isParseArgsError(err)) {
      process.stderr.write(`rarecon: ${(err as Error).message}\n`);
    } else {
      process.stderr.write(`rarecon: internal error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
