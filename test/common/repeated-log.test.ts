import { describe, expect, it } from 'vitest';
import { RepeatedLog, type LogFields } from '../../src/common/log.js';

describe('RepeatedLog', () => {
  it('writes the first warning at once, then one a minute with how many were left out', () => {
    let now = 1_000_000;
    const lines: Array<{ msg: string; fields: LogFields | undefined }> = [];
    const r = new RepeatedLog(
      (_l, msg, fields) => lines.push({ msg, fields }),
      'warn',
      'A connection could not be enriched.',
      60_000,
      () => now,
    );
    expect(r.note({ pid: 1 })).toBe(true);
    for (let i = 0; i < 500; i++) {
      now += 10;
      r.note({ pid: 2 + i });
    }
    expect(lines).toHaveLength(1);
    now += 60_000;
    expect(r.note({ pid: 9 })).toBe(true);
    expect(lines).toEqual([
      { msg: 'A connection could not be enriched.', fields: { pid: 1 } },
      { msg: 'A connection could not be enriched.', fields: { pid: 9, similarLeftOut: 500 } },
    ]);
    now += 60_000;
    r.note({ pid: 10 });
    expect(lines[2]?.fields).toEqual({ pid: 10 });
  });
});
