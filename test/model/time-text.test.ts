// The one safe time formatter of the renderings, at the edges of what a Date holds.
import { describe, expect, it } from 'vitest';
import { isoTime, rfc3339Time } from '../../src/model/time-text.js';

describe('time text', () => {
  it('writes every time a Date holds as Date does, and nothing for the rest', () => {
    expect(isoTime(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(isoTime(8.64e15)).toBe('+275760-09-13T00:00:00.000Z');
    expect(isoTime(-8.64e15)).toBe('-271821-04-20T00:00:00.000Z');
    for (const beyond of [8.64e15 + 1, 1e21, -1e21, NaN, Infinity, -Infinity, null, undefined]) expect(isoTime(beyond)).toBeUndefined();
  });

  it('keeps RFC 3339 to years 0000 to 9999', () => {
    expect(rfc3339Time(253_402_300_799_999)).toBe('9999-12-31T23:59:59.999Z');
    expect(rfc3339Time(-62_167_219_200_000)).toBe('0000-01-01T00:00:00.000Z');
    expect(rfc3339Time(253_402_300_800_000)).toBeUndefined();
    expect(rfc3339Time(-62_167_219_200_001)).toBeUndefined();
    expect(rfc3339Time(1e21)).toBeUndefined();
  });
});
