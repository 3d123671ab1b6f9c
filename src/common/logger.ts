// Logs are sentences with structured fields; JSON lines to stderr or stdout
// (journald reads both) or to a rotated file. stderr is the default because
// stdout carries alerts when a stdout sink is configured (the default sink).
// ERROR means an operator must act. Nothing per event at info.
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFields = Record<string, unknown>;

export interface Logger {
  /** Messages below this level are not written; SIGHUP may change it. */
  setLevel?(level: LogLevel): void;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  close(): Promise<void>;
}

export interface LoggerOptions {
  level: LogLevel;
  /** null: JSON lines on `stream`. */
  file: string | null;
  /** Default stderr: stdout may carry alerts. */
  stream?: 'stderr' | 'stdout';
  maxSizeBytes?: number;
  maxFiles?: number;
}

export function makeLogger(opts: LoggerOptions): Logger {
  const transport =
    opts.file === null
      ? new winston.transports.Console({ stderrLevels: (opts.stream ?? 'stderr') === 'stderr' ? ['error', 'warn', 'info', 'debug'] : [] })
      : new winston.transports.File({
          filename: opts.file,
          maxsize: opts.maxSizeBytes ?? 10 * 1024 * 1024,
          maxFiles: opts.maxFiles ?? 5,
          tailable: true,
        });
  const w = winston.createLogger({
    level: opts.level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'rarecon' },
    transports: [transport],
  });
  const at =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}) =>
      w.log(level, msg, fields);
  return {
    setLevel: (level) => {
      w.level = level;
    },
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    close: () =>
      new Promise<void>((resolve) => {
        w.on('finish', () => resolve());
        w.end();
        setTimeout(resolve, 500).unref();
      }),
  };
}

/** A logger that keeps lines in memory: for tests and for commands that print their own output. */
export function memoryLogger(): Logger & { lines: Array<{ level: LogLevel; msg: string; fields: LogFields }> } {
  const lines: Array<{ level: LogLevel; msg: string; fields: LogFields }> = [];
  const at =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}) =>
      void lines.push({ level, msg, fields });
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), close: async () => {} };
}
