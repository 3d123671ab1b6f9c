// The report stage logs through a function the daemon hands in (no global
// loggers): sentences with structured fields; ERROR means an operator must act.
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFields = Record<string, unknown>;
export type LogFn = (level: LogLevel, msg: string, fields?: LogFields) => void;

export const silentLog: LogFn = () => {};
