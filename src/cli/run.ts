// `rarecon run [options]`: the endpoint daemon (options and help in commands.ts).
import { dropInFiles, formatProblems, loadConfig } from './config-file.js';
import { runConfigSource } from './run-config.js';
import type { RareconConfig } from '../config/defaults.js';
import { Daemon } from '../daemon/daemon.js';
import { makeLogger } from '../common/logger.js';
import { checkOutputPath, keepFilesPrivate } from '../common/private-files.js';
import { UsageError } from './io.js';
import { parseCommand } from './command-spec.js';
import { RUN } from './commands.js';

export async function runCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(RUN, argv, process.stdout);
  if (parsed === null) return 0;
  const { values } = parsed;
  const { file: configPath, dropInDir } = runConfigSource(values.config ?? null);
  const overrides = (c: RareconConfig): RareconConfig => {
    if (values.state !== undefined) c.stateDir = values.state;
    if (values['activation-days'] !== undefined) {
      const d = Number(values['activation-days']);
      if (!Number.isFinite(d) || d < 0)
        throw new UsageError(`--activation-days takes a number of days >= 0, not "${values['activation-days']}"`);
      c.detect.activationDays = d;
    }
    return c;
  };
  const first = loadConfig(configPath, dropInDir);
  if (!first.ok) throw new UsageError(`bad config, not starting:\n${formatProblems(first)}`);
  const config = overrides(first.config);
  // Everything the daemon writes holds command lines, users or alerts: 0600 files in 0700 folders.
  keepFilesPrivate();
  if (config.logFile !== null) {
    // winston opens (and after a rotation creates) the log file itself, following links: checked first.
    const c = checkOutputPath(config.logFile, 'the log file (logFile)', { privateFolder: true });
    if (!c.ok) throw new UsageError(`cannot start: ${c.error}`);
  }
  const log = makeLogger({
    level: config.logLevel,
    file: config.logFile,
    stream: config.logStream,
    maxSizeBytes: config.logFileMaxBytes,
    maxFiles: config.logFileMaxFiles,
  });
  let fatal: (code: number, reason: string) => void = () => {};
  let daemon: Daemon;
  try {
    // Opens the state folder and the --alerts and --record files: a folder or file it must not use refuses the start.
    daemon = new Daemon({
      config,
      // SIGHUP reads the file and its config.d again.
      reloadConfig:
        configPath === null && dropInFiles(dropInDir).length === 0
          ? null
          : () => {
              const r = loadConfig(configPath, dropInDir);
              return r.ok ? overrides(r.config) : formatProblems(r);
            },
      baselinePath: values.baseline ?? config.baselinePath,
      alertsPath: values.alerts ?? config.alertsPath,
      recordPath: values.record ?? null,
      log,
      onFatal: (code, reason) => fatal(code, reason),
    });
  } catch (err) {
    await log.close();
    throw new UsageError(`cannot start: ${(err as Error).message}`);
  }
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => {});
    throw new UsageError(`cannot start: ${(err as Error).message}`);
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info('Stopping on a signal.', { signal });
      void daemon.stop().then(async () => {
        await log.close();
        resolve(0);
      });
    };
    fatal = (code, reason) => {
      log.error('rarecon stops and exits for the service manager to restart it.', { reason, exitCode: code });
      // Should stopping hang, exit anyway: a restart is what this is for.
      setTimeout(() => process.exit(code), 10_000).unref();
      void daemon.stop().then(async () => {
        await log.close();
        resolve(code);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void daemon.reload());
  });
}
