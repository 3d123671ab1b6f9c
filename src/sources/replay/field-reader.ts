// Typed access to the fields of one parsed JSON record. The first problem is
// kept (with the field's dotted path) instead of thrown, so a bad line becomes
// a value the caller reports and reading goes on.
import { normaliseIp } from '../../model/address.js';
import { isEventTimeMs, type RecordErrorCode } from '../../model/records.js';

export type JsonObject = Record<string, unknown>;

export interface FieldProblem {
  code: Extract<RecordErrorCode, 'missing-field' | 'wrong-type' | 'bad-value'>;
  message: string;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '...' : v}"`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const DIGITS = /^\d{1,16}$/;

/**
 * An RFC 3339 time or a string of epoch milliseconds, as epoch milliseconds;
 * NaN when it is neither or names no instant of the years 1970-9999.
 */
export function timeFromString(v: string): number {
  const s = v.trim();
  const ms = DIGITS.test(s) ? Number(s) : RFC3339.test(s) && onCalendar(s) ? Date.parse(s.toUpperCase().replace(' ', 'T')) : NaN;
  return isEventTimeMs(ms) ? ms : NaN;
}

/**
 * Whether an RFC3339-shaped string names a day of its month and an hour of
 * 00-23: Date.parse rolls 2026-02-30 over to 2 March and 24:00 to the next day.
 */
function onCalendar(s: string): boolean {
  const two = (i: number): number => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
  const year = two(0) * 100 + two(2);
  const month = two(5);
  const day = two(8);
  if (two(11) > 23 || month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31);
}

/** Epoch milliseconds as a JSON number gives them, rounded; NaN outside the years 1970-9999 (1e21, 8640000000000001). */
export function timeFromNumber(v: number): number {
  const ms = Math.round(v);
  return v >= 0 && isEventTimeMs(ms) ? ms : NaN;
}

/** What a time field must hold, for error messages. */
export const TIME_EXPECTED = 'an RFC 3339 time or epoch milliseconds of the years 1970-9999';

/** Empty or whitespace only, without allocating for the common non-blank case. */
export function isBlank(v: string): boolean {
  if (v.length === 0) return true;
  const c = v.charCodeAt(0);
  return (c === 32 || c === 9 || c === 10 || c === 13 || c === 0xa0 || c === 0xfeff || c === 0x3000) && v.trim() === '';
}

/** `s` as lower-case hex when it is 64 hex digits (surrounding blanks allowed), else null. */
export function lowerHex64(s: string): string | null {
  const t = s.length === 64 ? s : s.trim();
  if (t.length !== 64) return null;
  let upper = false;
  for (let i = 0; i < 64; i++) {
    const c = t.charCodeAt(i);
    if ((c >= 48 && c <= 57) || (c >= 97 && c <= 102)) continue;
    if (c >= 65 && c <= 70) upper = true;
    else return null;
  }
  return upper ? t.toLowerCase() : t;
}

export class FieldReader {
  problem: FieldProblem | null = null;

  private fail(code: FieldProblem['code'], message: string): undefined {
    if (this.problem === null) this.problem = { code, message };
    return undefined;
  }

  private missing(path: string): undefined {
    return this.fail('missing-field', `missing field "${path}"`);
  }

  private wrongType(path: string, expected: string, v: unknown): undefined {
    return this.fail('wrong-type', `field "${path}" must be ${expected}, got ${describe(v)}`);
  }

  badValue(path: string, expected: string, v: unknown): undefined {
    return this.fail('bad-value', `field "${path}" must be ${expected}, got ${describe(v)}`);
  }

  /** `undefined` when absent or null (and not required) or bad; check `problem`. */
  object(o: JsonObject, key: string, path: string, required: boolean): JsonObject | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    return isJsonObject(v) ? v : this.wrongType(path, 'an object', v);
  }

  array(o: JsonObject, key: string, path: string, required: boolean): unknown[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    return Array.isArray(v) ? v : this.wrongType(path, 'an array', v);
  }

  string(o: JsonObject, key: string, path: string, required: boolean): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    if (typeof v !== 'string') return this.wrongType(path, 'a string', v);
    if (required && isBlank(v)) return this.badValue(path, 'a non-empty string', v);
    return v;
  }

  /** A string or null: absent and null both read as null. */
  nullableString(o: JsonObject, key: string, path: string): string | null {
    return this.string(o, key, path, false) ?? null;
  }

  boolean(o: JsonObject, key: string, path: string): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    return this.wrongType(path, 'a boolean', v);
  }

  /** An integer in [min, max]; a string of digits is accepted (some exporters quote numbers). */
  integer(o: JsonObject, key: string, path: string, required: boolean, min: number, max: number): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    let n: number;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'string' && DIGITS.test(v.trim())) n = Number(v.trim());
    else if (typeof v === 'string') return this.badValue(path, `an integer ${min}..${max}`, v);
    else return this.wrongType(path, 'an integer', v);
    if (!Number.isInteger(n) || n < min || n > max) return this.badValue(path, `an integer ${min}..${max}`, v);
    return n;
  }

  /** A non-negative finite number (e.g. a TTL in seconds). */
  nonNegative(o: JsonObject, key: string, path: string, required: boolean): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    const n = typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number') return this.wrongType(path, 'a number', v);
    if (!Number.isFinite(n) || n < 0) return this.badValue(path, 'a non-negative number', v);
    return n;
  }

  /** RFC 3339 string or epoch milliseconds, as epoch milliseconds. */
  time(o: JsonObject, key: string, path: string, required: boolean): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return required ? this.missing(path) : undefined;
    if (typeof v !== 'number' && typeof v !== 'string') return this.wrongType(path, 'an RFC 3339 string or epoch milliseconds', v);
    const ms = typeof v === 'number' ? timeFromNumber(v) : timeFromString(v);
    return Number.isFinite(ms) ? ms : this.badValue(path, TIME_EXPECTED, v);
  }

  /** An IPv4 or IPv6 address, lower-cased; an IPv4-mapped IPv6 address reads as IPv4. */
  ip(o: JsonObject, key: string, path: string, required: boolean): string | undefined {
    const s = this.string(o, key, path, required);
    if (s === undefined) return undefined;
    const ip = normaliseIp(s);
    return ip !== null ? ip : this.badValue(path, 'an IP address', s);
  }

  sha256(o: JsonObject, key: string, path: string, required: boolean): string | undefined {
    const s = this.string(o, key, path, required);
    if (s === undefined) return undefined;
    const hex = lowerHex64(s);
    return hex !== null ? hex : this.badValue(path, '64 hex digits', s);
  }

  /** One of `allowed`, case-insensitive, as written in `allowed`. */
  oneOf<T extends string>(o: JsonObject, key: string, path: string, required: boolean, allowed: readonly T[]): T | undefined {
    const s = this.string(o, key, path, required);
    if (s === undefined) return undefined;
    const lower = s.trim().toLowerCase();
    const hit = allowed.find((a) => a === lower);
    return hit !== undefined ? hit : this.badValue(path, `one of ${allowed.join(', ')}`, s);
  }

  stringArray(o: JsonObject, key: string, path: string): string[] | undefined {
    const a = this.array(o, key, path, false);
    if (a === undefined) return undefined;
    for (let i = 0; i < a.length; i++) {
      if (typeof a[i] !== 'string') return this.wrongType(`${path}[${i}]`, 'a string', a[i]);
    }
    return a as string[];
  }
}
