// The state folder's health as the daemon reports it: one error when a store
// starts failing, one info line once it has taken writes for a while, and a
// nearly full disk that takes a write now and then does not flap the log.
import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../src/common/logger.js';
import { StateHealth } from '../../src/daemon/state-health.js';

const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

describe('StateHealth', () => {
  it('logs a full disk once per store, counts every failure, and recovers after SETTLE_MS without one', () => {
    let t = 0;
    const log = memoryLogger();
    const h = new StateHealth(log, '/var/lib/rarecon', () => t);
    h.failed('outbox', full);
    h.failed('outbox', full);
    h.failed('status', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    expect(h.stats()).toMatchObject({ diskFull: true, writeFailuresTotal: { outbox: 2, status: 1, sightings: 0, state: 0 } });
    expect(Object.keys(h.stats().failing)).toEqual(['outbox', 'status']);
    // A write gets through, then fails again: still the same episode, nothing logged.
    h.ok('outbox');
    t += 1000;
    h.failed('outbox', full);
    h.ok('outbox');
    t += StateHealth.SETTLE_MS - 1;
    h.settle();
    expect(h.stats().failing.outbox).toBeDefined();
    t += 1;
    h.settle();
    expect(h.stats().failing.outbox).toBeUndefined();
    expect(h.stats().diskFull).toBe(true); // status still failing
    expect(log.lines.map((l) => [l.level, l.fields['store'], l.msg.slice(0, 40)])).toEqual([
      ['error', 'outbox', 'The state folder is full; the daemon kee'],
      ['error', 'status', 'The state folder is full; the daemon kee'],
      ['info', 'outbox', 'The state folder takes writes again.'],
    ]);
  });

  it('names other write errors as such', () => {
    const log = memoryLogger();
    const h = new StateHealth(log, '/s');
    h.failed('sightings', Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' }));
    expect(h.stats()).toMatchObject({ diskFull: false, failing: { sightings: 'io-error: SQLITE_IOERR: disk I/O error' } });
    expect(log.lines[0]?.msg).toMatch(/^The state folder cannot be written;/);
  });
});
