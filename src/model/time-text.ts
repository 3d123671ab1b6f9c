// Epoch milliseconds as text, for every rendering of an alert or record
// (ECS, syslog, the NDJSON record). A Date holds ±8.64e15 ms only and
// toISOString throws beyond it, which once lost a whole `--format ecs` run to
// one record; a renderer asks here instead and leaves out a time with no text.

/** The largest distance from the epoch a Date holds (ECMA-262 TimeClip). */
export const MAX_DATE_MS = 8.64e15;

/** The ISO 8601 text of `ms` as Date gives it; undefined when no Date holds it (NaN, beyond ±8.64e15). */
export function isoTime(ms: number | null | undefined): string | undefined {
  if (typeof ms !== 'number' || !(Math.abs(ms) <= MAX_DATE_MS)) return undefined;
  return new Date(ms).toISOString();
}

/** The RFC 3339 text of `ms` (years 0000 to 9999, as RFC 5424 timestamps need); undefined beyond. */
export function rfc3339Time(ms: number | null | undefined): string | undefined {
  const t = isoTime(ms);
  // Outside years 0..9999 toISOString gives a six-digit year with a sign, which RFC 3339 has no room for.
  return t === undefined || t.charCodeAt(0) === 43 || t.charCodeAt(0) === 45 ? undefined : t;
}
