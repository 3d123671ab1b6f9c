// The report stage logs through a function the daemon hands in (no global
// loggers): sentences with structured fields; ERROR means an operator must act.
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFields = Record<string, unknown>;
export type LogFn = (level: LogLevel, msg: string, fields?: LogFields) => void;

export const silentLog: LogFn = () => {};

/**
 * A warning that can repeat per event (a failed enrichment, an eviction at the
 * size bound): the first is logged at once, later ones at most once per
 * interval, with how many were left out since, so a storm does not flood the log.
 */
export class RepeatedLog {
  private lastMs = -Infinity;
  private left = 0;

  constructor(
    private readonly log: LogFn,
    private readonly level: LogLevel,
    private readonly msg: string,
    private readonly intervalMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs now or counts this one for the next line. True when a line was written. */
  note(fields: LogFields = {}): boolean {
    const t = this.now();
    if (t - this.lastMs < this.intervalMs) {
      this.left++;
      return false;
    }
    this.log(this.level, this.msg, this.left > 0 ? { ...fields, similarLeftOut: this.left } : fields);
    this.lastMs = t;
    this.left = 0;
    return true;
  }
}
