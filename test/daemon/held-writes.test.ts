import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../src/common/logger.js';
import { HeldWrites } from '../../src/daemon/held-writes.js';
import { StateHealth } from '../../src/daemon/state-health.js';
import type { Alert } from '../../src/model/alert.js';
import type { EnqueueResult } from '../../src/report/outbox.js';
import { detection, health } from '../support/alerts.js';

/** An outbox on a full disk until `full` is cleared; what it took, in order. */
function outbox() {
  const o = {
    full: true,
    stored: [] as Alert[],
    enqueueMany(alerts: readonly Alert[]): EnqueueResult {
      if (o.full) return { ok: false, reason: 'disk-full', error: 'SQLITE_FULL: database or disk is full' };
      o.stored.push(...alerts);
      return { ok: true, stored: alerts.length, duplicates: 0, rejected: 0, evicted: 0 };
    },
  };
  return o;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function setUp(max: number) {
  const log = memoryLogger();
  const st = new StateHealth(log, '/var/lib/rarecon');
  const box = outbox();
  const w = new HeldWrites({ reporter: box, sightings: { add: () => 0 }, health: st, log, heldAlertsMax: max });
  return { log, st, box, w };
}

describe('HeldWrites on a full disk', () => {
  it('holds alerts the outbox cannot take and stores them, in order, once it can', async () => {
    const { st, box, w } = setUp(100);
    for (let i = 0; i < 10; i++) w.addAlert(detection(i));
    await turn();
    expect(st.stats()).toMatchObject({ heldAlerts: 10, alertsLostTotal: 0 });
    box.full = false;
    w.retry();
    expect(box.stored.map((a) => a.uid)).toEqual(Array.from({ length: 10 }, (_, i) => detection(i).uid));
    expect(st.stats().heldAlerts).toBe(0);
  });

  it('holds at most its bound: the lowest severity, oldest first, go (a health alert last), counted and logged', async () => {
    const { log, st, box, w } = setUp(4);
    w.addAlert(detection(0, { severityId: 3 }));
    w.addAlert(detection(1, { severityId: 1 }));
    w.addAlert(health(2));
    w.addAlert(detection(3, { severityId: 1 }));
    w.addAlert(detection(4, { severityId: 4 }));
    await turn();
    // Five for four places: the oldest Informational goes.
    expect(st.stats()).toMatchObject({ heldAlerts: 4, alertsLostTotal: 1 });
    for (let i = 5; i < 8; i++) w.addAlert(detection(i, { severityId: 2 }));
    await turn();
    expect(st.stats()).toMatchObject({ heldAlerts: 4, alertsLostTotal: 4 });
    const lines = log.lines.filter((l) => l.msg.includes('lowest-severity, oldest alerts were dropped'));
    // One line at first, the rest left for the next minute's line.
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', fields: { dropped: 1, bySeverity: { Informational: 1 }, heldAlertsMax: 4 } });
    box.full = false;
    w.retry();
    // Kept: the High, the Medium, the health alert and the newest Low, in the order they were raised.
    expect(box.stored.map((a) => a.uid)).toEqual([detection(0).uid, health(2).uid, detection(4).uid, detection(7).uid]);
  });

  it('memory held stays at the bound however many alerts come', async () => {
    const { st, w } = setUp(1000);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1000; i++) w.addAlert(detection(round * 1000 + i));
      await turn();
      expect(st.stats().heldAlerts).toBeLessThanOrEqual(1000);
    }
    expect(st.stats()).toMatchObject({ heldAlerts: 1000, alertsLostTotal: 19_000 });
  });
});
