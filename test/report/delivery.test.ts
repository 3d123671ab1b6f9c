import { describe, expect, it } from 'vitest';
import { DeliveryLoop, type DeliveryOptions } from '../../src/report/delivery.js';
import { MemorySink } from '../../src/report/memory-sink.js';
import { Outbox } from '../../src/report/outbox.js';
import { detection, eventually } from '../support/alerts.js';

const FAST: DeliveryOptions = {
  batchMaxAlerts: 10,
  lingerMs: 0,
  pollMs: 50,
  backoff: { initialMs: 10, maxMs: 50, maxRetryAfterMs: 5_000 },
  maxAttempts: 0,
};

function outbox(sinks: string[]): Outbox {
  return Outbox.open({ path: ':memory:', sinks, maxRows: 100_000, maxBytes: 100_000_000, synchronous: 'normal', deadLetterMaxRows: 1000 });
}

describe('delivery loop', () => {
  it('delivers everything in order and empties the outbox', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m');
    const loop = new DeliveryLoop(o, sink, FAST);
    loop.start();
    const alerts = Array.from({ length: 35 }, (_, i) => detection(i, { host: `h${i % 3}` }));
    for (const a of alerts) o.enqueue(a);
    expect(await eventually(() => o.size.rows === 0)).toBe(true);
    expect(sink.alerts.map((a) => a.uid)).toEqual(alerts.map((a) => a.uid));
    expect(sink.batches.every((b) => b.length <= 10)).toBe(true);
    await loop.shutdown();
    await loop.shutdown();
    expect(loop.stats().state).toBe('stopped');
    o.close();
  });

  it('retries a failing sink with backoff, in order, and tells the outbox each attempt', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m').failNext(3);
    const loop = new DeliveryLoop(o, sink, FAST);
    o.enqueueMany([detection(1), detection(2)]);
    loop.start();
    expect(await eventually(() => o.size.rows === 0)).toBe(true);
    expect(sink.calls).toBe(4);
    expect(sink.alerts.map((a) => a.uid)).toEqual([detection(1).uid, detection(2).uid]);
    expect(o.stats()).toMatchObject({ retriedTotal: 6, deliveredTotal: 2 });
    await loop.shutdown();
    o.close();
  });

  it('waits at least the Retry-After the sink asked for', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m').failNext(1, { status: 'retryable', retryAfterMs: 700 });
    const loop = new DeliveryLoop(o, sink, FAST);
    o.enqueue(detection(1));
    const t0 = Date.now();
    loop.start();
    expect(await eventually(() => o.size.rows === 0, 5_000)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(690);
    await loop.shutdown();
    o.close();
  });

  it('dead-letters only the alert a sink refuses, found by sending the batch one by one', async () => {
    const o = outbox(['m']);
    const bad = detection(3);
    const sink = new MemorySink('m').refuseWhen((a) => a.uid === bad.uid);
    const loop = new DeliveryLoop(o, sink, FAST);
    const alerts = Array.from({ length: 6 }, (_, i) => detection(i));
    o.enqueueMany(alerts);
    loop.start();
    expect(await eventually(() => o.size.rows === 0)).toBe(true);
    expect(sink.alerts.map((a) => a.uid)).toEqual(alerts.filter((a) => a.uid !== bad.uid).map((a) => a.uid));
    expect(o.deadLetters().map((d) => d.uid)).toEqual([bad.uid]);
    await loop.shutdown();
    o.close();
  });

  it('gives up after maxAttempts when set', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m').failForever({ status: 'retryable', message: 'HTTP 503' });
    const loop = new DeliveryLoop(o, sink, { ...FAST, maxAttempts: 3 });
    o.enqueue(detection(1));
    loop.start();
    expect(await eventually(() => o.size.rows === 0)).toBe(true);
    expect(sink.calls).toBe(3);
    expect(o.deadLetters()[0]?.reason).toBe('gave up after 3 attempts: HTTP 503');
    await loop.shutdown();
    o.close();
  });

  it('a dead sink does not hold up another', async () => {
    const o = outbox(['dead', 'live']);
    const dead = new MemorySink('dead').failForever();
    const live = new MemorySink('live');
    const loops = [new DeliveryLoop(o, dead, FAST), new DeliveryLoop(o, live, FAST)];
    loops.forEach((l) => l.start());
    o.enqueueMany(Array.from({ length: 25 }, (_, i) => detection(i)));
    expect(await eventually(() => live.alerts.length === 25)).toBe(true);
    const s = o.stats();
    expect(s.sinks['live']?.depth).toBe(0);
    expect(s.sinks['dead']?.depth).toBe(25);
    expect(s.rows).toBe(25);
    expect(loops[0]!.stats().consecutiveFailures).toBeGreaterThan(0);
    await Promise.all(loops.map((l) => l.shutdown()));
    o.close();
  });

  it('abandons a slow send on shutdown and leaves its alerts queued', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m').slow(10_000);
    const loop = new DeliveryLoop(o, sink, FAST);
    o.enqueue(detection(1));
    loop.start();
    await eventually(() => sink.calls === 1);
    const t0 = Date.now();
    await loop.shutdown();
    // Well short of the 10 s send: abandoned, not awaited (generous for a loaded machine).
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(o.size.rows).toBe(1);
    o.close();
  });

  it('turns a sink that throws into a retry and logs it as a bug', async () => {
    const o = outbox(['t']);
    let calls = 0;
    const lines: string[] = [];
    const sink = {
      name: 't',
      send: async () => {
        calls++;
        if (calls === 1) throw new Error('boom');
        return { status: 'success' as const };
      },
      close: async () => {},
    };
    const loop = new DeliveryLoop(o, sink, FAST, (level, msg) => lines.push(`${level}: ${msg}`));
    o.enqueue(detection(1));
    loop.start();
    expect(await eventually(() => o.size.rows === 0)).toBe(true);
    expect(lines.some((l) => l.startsWith('error: A sink threw'))).toBe(true);
    await loop.shutdown();
    o.close();
  });
});

describe('reporter', () => {
  it('wires outbox and loops, keeps what was not delivered across a restart, and shuts down twice safely', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { Reporter } = await import('../../src/report/reporter.js');
    const { DEFAULT_REPORT, SINK_DEFAULTS } = await import('../../src/config/defaults.js');
    const dir = mkdtempSync(join(tmpdir(), 'rarecon-reporter-'));
    const cfg = {
      ...DEFAULT_REPORT,
      backoff: { initialMs: 10, maxMs: 50, maxRetryAfterMs: 1_000, maxAttempts: 0 },
      pollMs: 50,
      sinks: [
        { ...SINK_DEFAULTS.stdout, name: 'up' },
        { ...SINK_DEFAULTS.stdout, name: 'down' },
      ],
    };
    const up = new MemorySink('up');
    const down = new MemorySink('down').failForever();
    const first = Reporter.start(cfg, {
      stateDir: dir,
      sinks: new Map([
        ['up', up],
        ['down', down],
      ]),
    });
    expect(first.enqueueMany([detection(1), detection(2)])).toMatchObject({ ok: true, stored: 2 });
    expect(await eventually(() => up.alerts.length === 2)).toBe(true);
    const s = first.stats();
    expect(s.outbox.sinks['down']?.depth).toBe(2);
    expect(s.delivery.map((d) => d.sink)).toEqual(['up', 'down']);
    await first.shutdown();
    await first.shutdown();
    expect(up.closed && down.closed).toBe(true);
    expect(first.enqueue(detection(3))).toMatchObject({ ok: false, reason: 'closed' });

    const healed = new MemorySink('down');
    const second = Reporter.start(cfg, {
      stateDir: dir,
      sinks: new Map([
        ['up', new MemorySink('up')],
        ['down', healed],
      ]),
    });
    expect(await eventually(() => healed.alerts.length === 2)).toBe(true);
    expect(await eventually(() => second.stats().outbox.rows === 0)).toBe(true);
    await second.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('delivery loop and the daemon signal', () => {
  it('stops when the signal it was started with aborts', async () => {
    const o = outbox(['m']);
    const sink = new MemorySink('m');
    const loop = new DeliveryLoop(o, sink, FAST);
    const ac = new AbortController();
    loop.start(ac.signal);
    o.enqueue(detection(1));
    expect(await eventually(() => sink.alerts.length === 1)).toBe(true);
    ac.abort();
    expect(await eventually(() => loop.stats().state === 'stopped')).toBe(true);
    o.enqueue(detection(2));
    await new Promise((r) => setTimeout(r, 150));
    expect(sink.alerts.length).toBe(1);
    await loop.shutdown();
    o.close();
  });
});
