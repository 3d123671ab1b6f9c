// Exponential backoff with full jitter (a random wait between 0 and the
// exponential cap, so many hosts coming back do not retry in step), never
// shorter than what the upstream asked for with Retry-After.
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** An upstream's Retry-After longer than this is cut to it. */
  maxRetryAfterMs: number;
}

export function backoffDelayMs(
  failures: number,
  opts: BackoffOptions,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 40)));
  const jittered = Math.floor(random() * exp);
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs)) return jittered;
  return Math.max(jittered, Math.min(Math.max(0, retryAfterMs), opts.maxRetryAfterMs));
}

/** Retry-After is either delay-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
