// Reloading the report stage (SIGHUP) with real HTTP receivers and a real
// SQLite outbox: queued alerts are kept and go to the sink's new address, a
// removed sink's queue is dropped, an added sink gets what comes next, an
// unchanged sink runs on, and a sink that cannot be built changes nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_REPORT, SINK_DEFAULTS, type ReportConfig } from '../../src/config/defaults.js';
import { Reporter } from '../../src/report/reporter.js';
import { detection, eventually } from '../support/alerts.js';
import { deliveryReport, Receiver } from '../support/receiver.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function report(sinks: Array<{ name: string; url: string; tokenEnv?: string }>): ReportConfig {
  return {
    ...DEFAULT_REPORT,
    backoff: { initialMs: 20, maxMs: 100, maxRetryAfterMs: 1000, maxAttempts: 0 },
    pollMs: 50,
    sinks: sinks.map((s) => ({
      ...SINK_DEFAULTS.http,
      name: s.name,
      url: s.url,
      lingerMs: 0,
      batchMaxAlerts: 20,
      tokenEnv: s.tokenEnv ?? null,
    })),
  };
}

async function receiver(): Promise<Receiver> {
  const rx = await new Receiver().listen();
  cleanups.push(() => rx.stop());
  return rx;
}

function reporter(cfg: ReportConfig, lines: string[]): Reporter {
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-reload-'));
  const rep = Reporter.start(cfg, { stateDir: dir, log: (level, msg) => lines.push(`${level}: ${msg}`), env: { TOKEN: 't' } });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => rep.shutdown());
  return rep;
}

describe('Reporter.reload', () => {
  it('keeps queued alerts through a change of address, drops a removed sink queue, feeds an added sink from then on', async () => {
    const oldSiem = await receiver();
    oldSiem.mode = { kind: 'status', status: 503 };
    const newSiem = await receiver();
    const archive = await receiver();
    archive.mode = { kind: 'status', status: 503 };
    const extra = await receiver();
    const lines: string[] = [];
    const rep = reporter(
      report([
        { name: 'siem', url: oldSiem.url },
        { name: 'archive', url: archive.url },
      ]),
      lines,
    );
    const queued = Array.from({ length: 30 }, (_, i) => detection(i));
    expect(rep.enqueueMany(queued)).toMatchObject({ ok: true, stored: 30 });
    expect(await eventually(() => oldSiem.attempts.length > 0 && archive.attempts.length > 0)).toBe(true);
    expect(rep.stats().outbox.rows).toBe(30);

    const r = await rep.reload(
      report([
        { name: 'siem', url: newSiem.url },
        { name: 'extra', url: extra.url },
      ]),
    );
    expect(r).toEqual({ ok: true, added: ['extra'], removed: ['archive'], changed: ['siem'], kept: [] });
    const after = detection(100);
    expect(rep.enqueue(after)).toMatchObject({ ok: true, stored: 1 });

    // Everything queued for siem reaches its new address; the added sink gets the new alert only.
    expect(await eventually(() => deliveryReport(newSiem.uids, [...queued.map((a) => a.uid), after.uid]).missing.length === 0)).toBe(true);
    expect(await eventually(() => extra.uids.includes(after.uid))).toBe(true);
    expect(extra.uids).toEqual([after.uid]);
    expect(deliveryReport(newSiem.uids, [...queued.map((a) => a.uid), after.uid]).duplicates).toBe(0);
    expect(oldSiem.uids).toEqual([]);
    expect(await eventually(() => rep.stats().outbox.rows === 0)).toBe(true);
    expect(rep.stats().delivery.map((d) => d.sink)).toEqual(['siem', 'extra']);
    expect(rep.stats().outbox.enqueuedTotal).toBe(31);
    expect(lines).toContain('warn: Dropped the queue of a sink that is no longer configured.');
    expect(lines).toContain('info: Delivering alerts to a new sink.');
    expect(lines).toContain('info: Delivering alerts to a sink with new settings.');
  });

  it('leaves an unchanged sink running, and changes nothing when a new sink cannot be built', async () => {
    const a = await receiver();
    const b = await receiver();
    const lines: string[] = [];
    const rep = reporter(report([{ name: 'a', url: a.url }]), lines);
    const first = detection(1);
    rep.enqueue(first);
    expect(await eventually(() => a.uids.includes(first.uid))).toBe(true);

    const bad = await rep.reload(
      report([
        { name: 'a', url: a.url },
        { name: 'b', url: b.url, tokenEnv: 'NO_SUCH_TOKEN_VARIABLE' },
      ]),
    );
    expect(bad.ok).toBe(false);
    expect(bad.ok ? '' : bad.error).toContain('NO_SUCH_TOKEN_VARIABLE');
    const second = detection(2);
    rep.enqueue(second);
    expect(await eventually(() => a.uids.includes(second.uid))).toBe(true);
    expect(b.uids).toEqual([]);
    expect(rep.stats().delivery.map((d) => d.sink)).toEqual(['a']);

    const good = await rep.reload(
      report([
        { name: 'a', url: a.url },
        { name: 'b', url: b.url, tokenEnv: 'TOKEN' },
      ]),
    );
    expect(good).toEqual({ ok: true, added: ['b'], removed: [], changed: [], kept: ['a'] });
    // The kept lane is the same loop: its counters ran on.
    expect(rep.stats().delivery[0]).toMatchObject({ sink: 'a', batchesSentTotal: 2 });
    const third = detection(3);
    rep.enqueue(third);
    expect(await eventually(() => a.uids.includes(third.uid) && b.uids.includes(third.uid))).toBe(true);
    expect(deliveryReport(a.uids, [first.uid, second.uid, third.uid])).toEqual({ missing: [], duplicates: 0 });
    expect(b.requests[0]?.headers.authorization).toBe('Bearer t');
  });
});
