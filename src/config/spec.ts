// The language of the config schema: a Spec says what a value must be,
// `validate` reports every problem at once with its dotted path, and
// `mergeDefaults` lays a file over the defaults. It knows no section: each
// section's Spec sits beside its component, and `cli/config-file.ts` puts them together.
import cron from 'node-cron';
import { parseCidr } from '../model/address.js';

export type Spec =
  /** `timer`: the value reaches setTimeout/setInterval (or a socket timeout); `why` tells why `max` is what it is. */
  | { kind: 'number'; min?: number; max?: number; integer?: boolean; timer?: boolean; why?: string }
  | { kind: 'string'; oneOf?: readonly string[]; pattern?: RegExp; patternText?: string; nullable?: boolean }
  | { kind: 'boolean' }
  | { kind: 'array'; of: Spec }
  | { kind: 'object'; fields: Record<string, Spec>; partial?: boolean }
  | { kind: 'cidr' }
  /** A cron expression node-cron accepts (its own validator). */
  | { kind: 'cron' };

/**
 * The longest delay Node's timers take: setTimeout turns a longer one into
 * 1 ms (with a TimeoutOverflowWarning), so a timer setting above it would
 * spin the daemon instead of waiting.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A whole number from `min` to `max` (every number has a bound: 1e99 is no count). */
export const count = (min = 0, max = Number.MAX_SAFE_INTEGER): Spec => ({ kind: 'number', integer: true, min, max });
/** Milliseconds that go to a timer: at most MAX_TIMER_MS, or a smaller `max`. */
export const timerMs = (min: number, max = MAX_TIMER_MS, why = "Node's longest timer, about 24.8 days"): Spec => ({
  kind: 'number',
  integer: true,
  min,
  max: Math.min(max, MAX_TIMER_MS),
  timer: true,
  why,
});
/** Milliseconds of a window compared with event times (never a timer), up to `maxDays` days. */
export const windowMs = (min: number, maxDays: number): Spec => ({ kind: 'number', integer: true, min, max: maxDays * 86_400_000 });
export const cronExpression: Spec = { kind: 'cron' };
export const strings: Spec = { kind: 'array', of: { kind: 'string' } };
export const port: Spec = { kind: 'number', integer: true, min: 0, max: 65535 };
/** A string or null (a path, a name). */
export const nullableString: Spec = { kind: 'string', nullable: true };

export interface Problem {
  path: string;
  message: string;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Every problem of `value` against `spec`, with dotted paths. */
export function validate(value: unknown, spec: Spec, path: string, problems: Problem[]): void {
  const at = path === '' ? '(top level)' : path;
  switch (spec.kind) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        problems.push({ path: at, message: `expected a number, got ${typeName(value)}` });
      } else if (spec.integer === true && !Number.isInteger(value)) {
        problems.push({ path: at, message: `expected a whole number, got ${value}` });
      } else if (spec.min !== undefined && value < spec.min) {
        problems.push({ path: at, message: `must be at least ${spec.min}, got ${value}` });
      } else if (spec.max !== undefined && value > spec.max) {
        problems.push({ path: at, message: `must be at most ${spec.max}${spec.why === undefined ? '' : ` (${spec.why})`}, got ${value}` });
      }
      return;
    case 'cron':
      if (typeof value !== 'string') {
        problems.push({ path: at, message: `expected a cron expression like "0 3 * * *", got ${typeName(value)}` });
      } else if (!cron.validate(value)) {
        problems.push({
          path: at,
          message: `"${value}" is not a cron expression node-cron takes (minute hour day-of-month month day-of-week, e.g. "0 3 * * *", seconds optional first)`,
        });
      }
      return;
    case 'string':
      if (value === null && spec.nullable === true) return;
      if (typeof value !== 'string') {
        problems.push({ path: at, message: `expected a string, got ${typeName(value)}` });
      } else if (spec.oneOf !== undefined && !spec.oneOf.includes(value)) {
        problems.push({ path: at, message: `expected one of ${spec.oneOf.join(', ')}, got "${value}"` });
      } else if (spec.pattern !== undefined && !spec.pattern.test(value)) {
        problems.push({ path: at, message: `expected ${spec.patternText ?? spec.pattern.source}, got "${value}"` });
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push({ path: at, message: `expected true or false, got ${typeName(value)}` });
      return;
    case 'cidr': {
      if (typeof value !== 'string') {
        problems.push({ path: at, message: `expected a network like 10.20.0.0/16, got ${typeName(value)}` });
        return;
      }
      const c = parseCidr(value);
      if (!c.ok) problems.push({ path: at, message: c.error });
      return;
    }
    case 'array':
      if (!Array.isArray(value)) {
        problems.push({ path: at, message: `expected a list, got ${typeName(value)}` });
        return;
      }
      value.forEach((item, i) => validate(item, spec.of, `${path}[${i}]`, problems));
      return;
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        problems.push({ path: at, message: `expected a mapping, got ${typeName(value)}` });
        return;
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const child = spec.fields[k];
        const childPath = path === '' ? k : `${path}.${k}`;
        if (child === undefined) {
          problems.push({ path: childPath, message: `unknown setting (known here: ${Object.keys(spec.fields).join(', ')})` });
        } else {
          validate(v, child, childPath, problems);
        }
      }
      return;
    }
  }
}

/** Objects merge key by key; lists and scalars from the file replace the default. */
export function mergeDefaults<T>(defaults: T, override: unknown): T {
  if (override === undefined) return structuredClone(defaults);
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults) || override === null || typeof override !== 'object') {
    return override as T;
  }
  const out: Record<string, unknown> = { ...(structuredClone(defaults) as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) {
    out[k] = mergeDefaults((defaults as Record<string, unknown>)[k], v);
  }
  return out as T;
}
