import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxOptions } from '../../src/report/outbox.js';
import type { SeverityId } from '../../src/model/alert.js';
import { detection, health } from '../support/alerts.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-outbox-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function open(over: Partial<OutboxOptions> = {}): Outbox {
  return Outbox.open({
    path: join(dir, 'outbox.db'),
    sinks: ['a', 'b'],
    maxRows: 1000,
    maxBytes: 10_000_000,
    synchronous: 'normal',
    deadLetterMaxRows: 100,
    ...over,
  });
}

function uidsOf(o: Outbox, sink: string): string[] {
  const r = o.next(sink, 10_000);
  if (!r.ok) throw new Error(r.error);
  return r.items.map((i) => i.uid);
}

describe('outbox', () => {
  it('stores in WAL mode with a schema version', () => {
    const o = open();
    o.close();
    const db = new Database(join(dir, 'outbox.db'));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    db.close();
  });

  it('treats a second enqueue of the same uid as a no-op', () => {
    const o = open();
    expect(o.enqueue(detection(1))).toEqual({ ok: true, stored: 1, duplicates: 0, rejected: 0, evicted: 0 });
    expect(o.enqueue(detection(1))).toEqual({ ok: true, stored: 0, duplicates: 1, rejected: 0, evicted: 0 });
    expect(o.enqueueMany([detection(2), detection(2), detection(3)])).toMatchObject({ stored: 2, duplicates: 1 });
    expect(uidsOf(o, 'a')).toEqual([detection(1).uid, detection(2).uid, detection(3).uid]);
    expect(o.stats()).toMatchObject({ rows: 3, enqueuedTotal: 3, duplicatesTotal: 2 });
    o.close();
  });

  it('gives each sink its own queue and deletes an alert once every sink is done with it', () => {
    const o = open();
    o.enqueueMany([detection(1), detection(2), detection(3)]);
    const a = o.next('a', 2);
    if (!a.ok) throw new Error(a.error);
    expect(
      o.ack(
        'a',
        a.items.map((i) => i.seq),
      ),
    ).toEqual({ ok: true });
    // Sink a moved on; sink b still has everything, so nothing is deleted yet.
    expect(uidsOf(o, 'a')).toEqual([detection(3).uid]);
    expect(uidsOf(o, 'b')).toHaveLength(3);
    expect(o.size.rows).toBe(3);
    const b = o.next('b', 10);
    if (!b.ok) throw new Error(b.error);
    o.deadLetter('b', [b.items[0]!.seq], 'HTTP 400: bad');
    o.ack('b', [b.items[1]!.seq]);
    expect(o.size.rows).toBe(1);
    const s = o.stats();
    expect(s.sinks['a']).toMatchObject({ depth: 1, deliveredTotal: 2 });
    expect(s.sinks['b']).toMatchObject({ depth: 1, deliveredTotal: 1, deadLetteredTotal: 1 });
    expect(s.deadLetterRows).toBe(1);
    const [dl] = o.deadLetters();
    expect(dl).toMatchObject({ sink: 'b', uid: detection(1).uid, reason: 'HTTP 400: bad', attempts: 1 });
    expect(dl?.alert?.uid).toBe(detection(1).uid);
    o.close();
  });

  it('reads past rows the caller has finished but not yet marked done', () => {
    const o = open();
    o.enqueueMany([detection(1), detection(2), detection(3)]);
    const first = o.next('a', 1);
    if (!first.ok) throw new Error(first.error);
    const after = o.next('a', 10, first.items[0]!.seq);
    if (!after.ok) throw new Error(after.error);
    expect(after.items.map((i) => i.uid)).toEqual([detection(2).uid, detection(3).uid]);
    o.close();
  });

  it('keeps everything and the order across a reopen, and never reuses a sequence number', () => {
    const o = open();
    o.enqueueMany([detection(1), detection(2)]);
    const r = o.next('a', 10);
    if (!r.ok) throw new Error(r.error);
    const lastSeq = r.items[1]!.seq;
    o.ack('a', [r.items[1]!.seq]);
    o.ack('b', [r.items[1]!.seq]);
    o.close();
    const again = open();
    expect(again.size.rows).toBe(1);
    again.enqueue(detection(3));
    const n = again.next('a', 10);
    if (!n.ok) throw new Error(n.error);
    expect(n.items.map((i) => i.uid)).toEqual([detection(1).uid, detection(3).uid]);
    expect(n.items[1]!.seq).toBeGreaterThan(lastSeq);
    again.close();
  });

  it('counts retries per alert and sink', () => {
    const o = open();
    o.enqueue(detection(1));
    const r = o.next('a', 10);
    if (!r.ok) throw new Error(r.error);
    o.retry('a', [r.items[0]!.seq], 'HTTP 503');
    o.retry('a', [r.items[0]!.seq], 'HTTP 503');
    const again = o.next('a', 10);
    expect(again.ok && again.items[0]!.attempts).toBe(2);
    const b = o.next('b', 10);
    expect(b.ok && b.items[0]!.attempts).toBe(0);
    expect(o.stats().retriedTotal).toBe(2);
    o.close();
  });

  it('drops the queue of a sink no longer configured', () => {
    const o = open();
    o.enqueueMany([detection(1), detection(2)]);
    const a = o.next('a', 10);
    if (!a.ok) throw new Error(a.error);
    o.ack(
      'a',
      a.items.map((i) => i.seq),
    );
    o.close();
    const lines: string[] = [];
    const only = open({ sinks: ['a'], log: (_l, msg) => lines.push(msg) });
    expect(only.size.rows).toBe(0);
    expect(lines.join(' ')).toMatch(/no longer configured/);
    only.close();
  });

  it('under its row bound evicts the lowest severity first, oldest first within a severity, and counts by severity', () => {
    const o = open({ maxRows: 5 });
    const sev = (i: number, s: SeverityId) => detection(i, { severityId: s });
    // Held: Info(1) Low(2) Info(3) High(4) Medium(5)
    o.enqueueMany([sev(1, 1), sev(2, 2), sev(3, 1), sev(4, 4), sev(5, 3)]);
    // Each new alert displaces the weakest, oldest one held.
    expect(o.enqueue(sev(6, 3))).toMatchObject({ stored: 1, evicted: 1 }); // Info(1) goes
    expect(o.enqueue(sev(7, 2))).toMatchObject({ stored: 1, evicted: 1 }); // Info(3) goes
    expect(o.enqueue(sev(8, 4))).toMatchObject({ stored: 1, evicted: 1 }); // Low(2) goes
    // An Informational alert ranks below everything held: it is the one dropped.
    expect(o.enqueue(sev(9, 1))).toMatchObject({ stored: 0, rejected: 1, evicted: 0 });
    expect(o.enqueue(sev(10, 3))).toMatchObject({ stored: 1, evicted: 1 }); // Low(7) goes
    expect(uidsOf(o, 'a')).toEqual([4, 5, 6, 8, 10].map((i) => detection(i).uid));
    const s = o.stats();
    expect(s.rows).toBe(5);
    expect(s.evictedTotal).toBe(5);
    expect(s.evictedBySeverity).toEqual({ Informational: 3, Low: 2, Medium: 0, High: 0 });
    o.close();
  });

  it('under its byte bound evicts as many as it takes', () => {
    const big = (i: number, s: SeverityId) => detection(i, { severityId: s, padBytes: 3000 });
    const one = Buffer.byteLength(JSON.stringify(big(1, 1)));
    const o = open({ maxBytes: one * 4 + 10 });
    o.enqueueMany([big(1, 1), big(2, 2), big(3, 1), big(4, 2)]);
    expect(o.size.rows).toBe(4);
    // Bigger than one slot: two must go (both Informational).
    const huge = detection(5, { severityId: 3, padBytes: 5500 });
    expect(o.enqueue(huge)).toMatchObject({ stored: 1, evicted: 2 });
    expect(uidsOf(o, 'a')).toEqual([2, 4, 5].map((i) => detection(i).uid));
    expect(o.size.bytes).toBeLessThanOrEqual(one * 4 + 10);
    // Larger than the whole bound: refused, nothing held is touched.
    expect(o.enqueue(detection(6, { severityId: 4, padBytes: one * 5 }))).toMatchObject({ stored: 0, rejected: 1 });
    expect(o.size.rows).toBe(3);
    o.close();
  });

  it('holds health alerts like detections', () => {
    const o = open();
    o.enqueueMany([health(1), detection(2)]);
    const r = o.next('a', 10);
    expect(r.ok && r.items[0]!.alert.kind).toBe('health');
    o.close();
  });

  it('dead-letters a stored record that is not valid JSON instead of crashing', () => {
    const o = open();
    o.enqueueMany([detection(1), detection(2)]);
    o.close();
    const db = new Database(join(dir, 'outbox.db'));
    db.prepare("UPDATE alerts SET record = '{broken' WHERE uid = ?").run(detection(1).uid);
    db.close();
    const again = open();
    const r = again.next('a', 10);
    expect(r.ok && r.items.length).toBe(0);
    expect(again.deadLetters()[0]).toMatchObject({ sink: 'a', uid: detection(1).uid, alert: null });
    const next = again.next('a', 10);
    expect(next.ok && next.items.map((i) => i.uid)).toEqual([detection(2).uid]);
    again.close();
  });

  it('answers with a value once closed, and closes twice safely', () => {
    const o = open();
    o.close();
    o.close();
    expect(o.enqueue(detection(1))).toMatchObject({ ok: false, reason: 'closed' });
    expect(o.next('a', 1)).toMatchObject({ ok: false, reason: 'closed' });
  });

  it('refuses to start without sinks or with a newer schema', () => {
    expect(() => open({ sinks: [] })).toThrow(/at least one sink/);
    const db = new Database(join(dir, 'outbox.db'));
    db.pragma('user_version = 99');
    db.close();
    expect(() => open()).toThrow(/newer rarecon/);
  });
});
