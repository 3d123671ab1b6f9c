// The progress line of `rarecon score` and `rarecon baseline build` on a
// terminal: percent done and time left when the input's size is known.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { baselineBuildCommand } from '../../src/cli/baseline-build.js';
import { formatDuration, Progress } from '../../src/cli/io.js';
import { scoreCommand } from '../../src/cli/score.js';

function terminal(): { stream: Writable & { isTTY: boolean }; text: () => string } {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    }),
    { isTTY: true },
  );
  return { stream, text: () => chunks.join('') };
}

const MiB = 2 ** 20;

describe('the progress line', () => {
  it('shows percent done and time left at the rate so far when the input size is known', () => {
    let now = 1_000_000;
    const t = terminal();
    const p = new Progress(t.stream, 2, 100 * MiB, () => now);
    now += 30_000;
    p.update('/var/log/fleet/day-01.jsonl.gz', 600_000, 25 * MiB);
    // A quarter read in 30 s: 90 s left.
    expect(t.text()).toBe('\r\x1b[K[1/2] /var/log/fleet/day-01.jsonl.gz  25%, 1:30 left  600,000 records  20,000/s');
    now += 30_000;
    p.update('/var/log/fleet/day-02.jsonl.gz', 1_200_000, 75 * MiB);
    expect(t.text()).toContain('[2/2] /var/log/fleet/day-02.jsonl.gz  75%, 0:20 left  1,200,000 records  20,000/s');
    p.done();
    expect(t.text().endsWith('\r\x1b[K')).toBe(true);
  });

  it('without a known size (a pipe among the inputs) shows records and rate only', () => {
    let now = 0;
    const p = new Progress(terminal().stream, 1, null, () => now);
    now = 10_000;
    expect(p.line('/dev/fd/63', 50_000, 12 * MiB, now)).toBe('[1/1] /dev/fd/63  50,000 records  5,000/s');
  });

  it('stays silent off a terminal and for small inputs, and draws at most five times a second', () => {
    const notTty = terminal();
    notTty.stream.isTTY = false;
    new Progress(notTty.stream, 1, 100 * MiB).update('x', 1, 1);
    expect(notTty.text()).toBe('');
    const small = terminal();
    new Progress(small.stream, 1, 1024).update('x', 1, 1);
    expect(small.text()).toBe('');
    let now = 0;
    const t = terminal();
    const p = new Progress(t.stream, 1, 100 * MiB, () => now);
    now = 1_000;
    p.update('x', 1, MiB);
    now = 1_100;
    p.update('x', 2, 2 * MiB);
    expect(t.text().split('\r').length - 1).toBe(1);
  });

  it('formats durations as m:ss and h:mm:ss', () => {
    expect([formatDuration(0), formatDuration(75), formatDuration(3725), formatDuration(59.6)]).toEqual([
      '0:00',
      '1:15',
      '1:02:05',
      '1:00',
    ]);
  });
});

describe('the progress line of the commands on a Sysmon export', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rarecon-progress-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  // 12 MiB of registry events (skipped, no record), then one process run: the
  // line must move with the bytes read, not wait for records that do not come.
  const log = join(tmp, 'sysmon.json');
  const registry = JSON.stringify({
    SourceName: 'Microsoft-Windows-Sysmon',
    EventID: 13,
    Hostname: 'WS1.corp.example',
    UtcTime: '2024-05-01 10:00:00.000',
    TargetObject: 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\' + 'x'.repeat(200),
  });
  const run = JSON.stringify({
    SourceName: 'Microsoft-Windows-Sysmon',
    EventID: 1,
    Hostname: 'WS1.corp.example',
    UtcTime: '2024-05-01 10:00:01.000',
    ProcessGuid: '{aaaa0000-0000-0000-0000-000000000001}',
    Image: 'C:\\Windows\\notepad.exe',
    Hashes: `SHA256=${'ab'.repeat(32)}`,
  });
  writeFileSync(log, `${registry}\n`.repeat(Math.ceil((12 * MiB) / (registry.length + 1))) + `${run}\n`);
  const drawn = (text: string): string[] => text.split('\r\x1b[K').filter((l) => l.startsWith('[1/1] '));

  it('baseline build draws percent done and time left before any record was read', async () => {
    const t = terminal();
    expect(
      await baselineBuildCommand(
        ['--unit', 'host', '--out', join(tmp, 'base.db'), log],
        new Writable({ write: (_c, _e, done) => done() }),
        t.stream,
      ),
    ).toBe(0);
    const first = drawn(t.text())[0];
    expect(first).toMatch(/^\[1\/1\] .*sysmon\.json {2}\d+%(, \d+:\d\d left)? {2}0 records {2}0\/s$/);
  });

  it('score draws it too', async () => {
    const t = terminal();
    const out = new Writable({ write: (_c, _e, done) => done() });
    expect(await scoreCommand(['--baseline', join(tmp, 'base.db'), log], out, t.stream)).toBe(0);
    expect(drawn(t.text())[0]).toMatch(/^\[1\/1\] .*sysmon\.json {2}\d+%(, \d+:\d\d left)? {2}0 records {2}0\/s$/);
    expect(t.text()).toContain('rarecon score: ');
  });
});
