// `rarecon run [options]`: the endpoint daemon (options and help in commands.ts).
import { dropInFiles, formatProblems, loadConfig } from './config-file.js';
import { runConfigSource } from './run-config.js';
import type { RareconConfig } from '../config/defaults.js';
import type { Daemon } from '../daemon/daemon.js';
import { hostIdentity } from '../enrich/host-identity.js';
import { openLiveSource } from '../sources/live-source.js';
import { makeLogger } from '../common/logger.js';
import { checkOutputPath, keepFilesPrivate } from '../common/private-files.js';
import { UsageError } from './io.js';
import { parseCommand } from './command-spec.js';
import { RUN } from './commands.js';
import { catchStopSignals, onStopSignal, stopSignalAsked } from './stop-signals.js';
import { boundHeapGrowth } from '../daemon/heap-growth.js';

export async function runCommand(argv: string[]): Promise<number> {
  catchStopSignals();
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
  // Before the daemon allocates: its heap is collected near what it keeps alive, not at 4x (heap-growth.ts).
  boundHeapGrowth();
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
  // Stopped before anything was opened: nothing to close.
  const early = stopSignalAsked();
  if (early !== null) {
    log.info('Stopping on a signal before start-up.', { signal: early });
    await log.close();
    return 0;
  }
  // The eBPF helper first: its programs load (the longest part of start-up) while the daemon's own
  // modules load and its stores open; what it captures meanwhile waits in its queue.
  const source = openLiveSource(config.source, hostIdentity(config.host.org, config.host.id), log);
  source.catch(() => {}); // start() reports it
  const { Daemon } = await import('../daemon/daemon.js');
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
      source,
      onFatal: (code, reason) => fatal(code, reason),
    });
  } catch (err) {
    await source.then((s) => s.shutdown()).catch(() => {});
    await log.close();
    throw new UsageError(`cannot start: ${(err as Error).message}`);
  }
  return new Promise<number>((resolve, reject) => {
    daemon.start().catch(async (err: unknown) => {
      await daemon.stop().catch(() => {});
      await log.close();
      reject(new UsageError(`cannot start: ${(err as Error).message}`));
    });
    // From here a signal stops the daemon wherever its start-up is: stop() waits for the step in progress.
    onStopSignal((signal) => {
      log.info('Stopping on a signal.', { signal });
      void daemon.stop().then(async () => {
        await log.close();
        resolve(0);
      });
    });
    fatal = (code, reason) => {
      log.error('rarecon stops and exits for the service manager to restart it.', { reason, exitCode: code });
      // Should stopping hang, exit anyway: a restart is what this is for.
      setTimeout(() => process.exit(code), 10_000).unref();
      void daemon.stop().then(async () => {
        await log.close();
        resolve(code);
      });
    };
    // A reload asked during start-up waits for it (Daemon.reload chains after start()).
    process.on('SIGHUP', () => void daemon.reload());
  });
}
