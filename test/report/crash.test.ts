// kill -9 of a process with alerts in its outbox, then a restart: every alert
// it had committed reaches the receiver (at least once, in order per host).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detection, eventually } from '../support/alerts.js';
import { deliveryReport, outOfOrder, Receiver } from '../support/receiver.js';

const HERE = dirname(fileURLToPath(import.meta.url));
let dir: string;
let rx: Receiver;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-crash-'));
  rx = await new Receiver().listen();
});
afterAll(async () => {
  await rx.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function child(count: number): Child {
  const proc = spawn(
    process.execPath,
    ['--import', join(HERE, '..', 'support', 'ts-register.mjs'), join(HERE, '..', 'support', 'outbox-child.ts')],
    {
      env: { ...process.env, RARECON_OUTBOX: join(dir, 'outbox.db'), RARECON_URL: rx.url, RARECON_COUNT: String(count) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  const stderr: string[] = [];
  let buf = '';
  proc.stdout!.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  proc.stderr!.on('data', (b: Buffer) => stderr.push(b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, lines, stderr, exited };
}

function committed(c: Child): number {
  let n = 0;
  for (const l of c.lines) {
    const m = /^committed (\d+)$/.exec(l);
    if (m !== null) n = Number(m[1]);
  }
  return n;
}

describe('crash safety', () => {
  it('delivers every committed alert after kill -9 and a restart', async () => {
    const total = 5000;
    // A slow upstream so that the kill lands with alerts queued and a batch in flight.
    rx.mode = { kind: 'up', delayMs: 60 };
    const first = child(total);
    const ready = await eventually(() => committed(first) >= 300 && rx.requests.length >= 2, 30_000);
    expect(ready, first.stderr.join('')).toBe(true);
    process.kill(first.proc.pid!, 'SIGKILL');
    const gone = await first.exited;
    expect(gone.signal).toBe('SIGKILL');
    const durable = committed(first);
    const beforeRestart = new Set(rx.uids).size;
    expect(beforeRestart).toBeLessThan(durable);
    expect(durable, 'the kill should land while alerts are still being enqueued').toBeLessThan(total);

    rx.mode = { kind: 'up' };
    const second = child(0);
    const drained = await eventually(() => second.lines.includes('drained'), 30_000);
    expect(drained, second.stderr.join('')).toBe(true);
    second.proc.kill('SIGTERM');
    const end = await second.exited;
    expect(end.code).toBe(0);
    expect(second.lines).toContain('stopped');

    const expected = Array.from({ length: durable }, (_, i) => detection(i, { host: `h${i % 4}` }).uid);
    const { missing, duplicates } = deliveryReport(rx.uids, expected);
    expect(missing).toEqual([]);
    expect(outOfOrder(rx.uids, expected, (u) => u.split('-')[1]!)).toEqual([]);
    // At least once: a batch the receiver took just before the kill is sent again.
    console.log(
      `crash test: ${durable} alerts committed before kill -9, ${beforeRestart} delivered before it, ${duplicates} delivered twice`,
    );
  });
});
