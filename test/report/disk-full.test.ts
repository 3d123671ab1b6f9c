// A full disk under the outbox (a 1 MiB tmpfs): enqueue says "disk-full" as a
// value and counts it, nothing stored is lost, alerts keep going out, and once
// space is freed the outbox records what was delivered and takes new alerts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_REPORT, SINK_DEFAULTS } from '../../src/config/defaults.js';
import { Reporter } from '../../src/report/reporter.js';
import { detection, eventually } from '../support/alerts.js';
import { deliveryReport, Receiver } from '../support/receiver.js';

let mnt = '';
let skipReason: string | null = null;

beforeAll(() => {
  mnt = mkdtempSync(join(tmpdir(), 'rarecon-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    skipReason = `cannot mount a tmpfs (${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}); run as root to test a full disk`;
    console.log(`disk-full test skipped: ${skipReason}`);
  }
});
afterAll(() => {
  if (skipReason === null) execFileSync('umount', [mnt]);
  rmdirSync(mnt);
});

describe('outbox on a full disk', () => {
  it('reports disk-full as a value, loses nothing stored, and recovers when space frees', async (ctx) => {
    if (skipReason !== null) ctx.skip();
    const rx = await new Receiver().listen();
    rx.mode = { kind: 'status', status: 503 };
    // Another program's file on the same disk; removing it later frees space.
    const filler = join(mnt, 'other-program.log');
    writeFileSync(filler, Buffer.alloc(256 * 1024, 1));
    const lines: string[] = [];
    const rep = Reporter.start(
      {
        ...DEFAULT_REPORT,
        outbox: { ...DEFAULT_REPORT.outbox, path: join(mnt, 'outbox.db') },
        backoff: { initialMs: 20, maxMs: 100, maxRetryAfterMs: 1_000, maxAttempts: 0 },
        pollMs: 50,
        sinks: [{ ...SINK_DEFAULTS.http, name: 'siem', url: rx.url, lingerMs: 0, batchMaxAlerts: 50 }],
      },
      { stateDir: mnt, log: (level, msg) => lines.push(`${level}: ${msg}`) },
    );
    try {
      const stored: string[] = [];
      let i = 0;
      let full = false;
      while (!full && i < 5_000) {
        const a = detection(i++, { padBytes: 2_000 });
        const r = rep.enqueue(a);
        if (r.ok) stored.push(a.uid);
        else {
          expect(r.reason).toBe('disk-full');
          full = true;
        }
      }
      expect(full).toBe(true);
      expect(stored.length).toBeGreaterThan(10);
      // Still full, still a value, never a throw.
      expect(rep.enqueue(detection(99_999, { padBytes: 2_000 }))).toMatchObject({ ok: false, reason: 'disk-full' });
      const s = rep.stats().outbox;
      expect(s.diskFullTotal).toBe(2);
      expect(s.rows).toBe(stored.length);
      expect(lines.some((l) => l.startsWith('error: Could not store alerts'))).toBe(true);

      // The upstream comes back while the disk is still full: what was stored goes out.
      rx.mode = { kind: 'up' };
      expect(await eventually(() => deliveryReport(rx.uids, stored).missing.length === 0, 20_000)).toBe(true);
      // Marking them delivered needs a little space; until then the outbox still holds them.
      expect(rep.stats().outbox.rows).toBe(stored.length);

      rmSync(filler);
      expect(await eventually(() => rep.stats().outbox.rows === 0, 20_000)).toBe(true);
      const after = detection(100_000);
      expect(rep.enqueue(after)).toMatchObject({ ok: true, stored: 1 });
      expect(await eventually(() => rx.uids.includes(after.uid), 10_000)).toBe(true);
      const { missing, duplicates } = deliveryReport(rx.uids, [...stored, after.uid]);
      expect(missing).toEqual([]);
      expect(duplicates).toBe(0);
    } finally {
      await rep.shutdown();
      await rx.stop();
    }
  });
});
