// End-to-end, real kernel: `rarecon run` stopped while it starts up, as a
// service manager does when a restart is followed at once by a stop. A SIGTERM
// at any point of start-up ends in a clean stop: exit 0, the SQLite stores
// closed (no -wal or -shm file left), the status file written, the helper gone.
// Prints the start-to-watching time of a normal start (bench/daemon.ts has the
// figure under load). Needs root; skips with the reason otherwise.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBaseline } from '../support/e2e-baseline.js';
import { DaemonRun } from '../support/daemon.js';
import { EVENT_WAIT_MS, buildNative, rootReason, sha256File, until } from '../support/env.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`daemon-ops-start.e2e: skipping: ${skipReason}`);

const WATCHING = 'rarecon is watching outbound connections.';
let dir = '';
let baselinePath = '';
const daemons: DaemonRun[] = [];
let n = 0;

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-start-'));
  baselinePath = join(dir, 'baseline.db');
  writeBaseline(baselinePath, { commonSha256: [sha256File('/usr/bin/curl')] });
}, 180_000);

afterAll(async () => {
  for (const d of daemons) await d.stop('SIGKILL');
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
  else if (dir !== '') console.log(`daemon-ops-start.e2e: kept ${dir}`);
});

function spawnDaemon(): DaemonRun {
  const d = DaemonRun.spawn({ dir: join(dir, `run${++n}`), baseline: baselinePath });
  daemons.push(d);
  return d;
}

function alive(pid: number): boolean {
  try {
    // A zombie has exited; only its parent has not reaped it yet.
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** What a clean stop leaves: exit 0, the stop logged, no SQLite journal files, the helper gone. */
async function expectCleanStop(d: DaemonRun, helpers: number[]): Promise<void> {
  await d.waitExit();
  expect(d.exit, d.stderrText.slice(-2000)).toEqual({ code: 0, signal: null });
  expect(d.logs.some((l) => l.message === 'rarecon stopped.' || l.message === 'Stopping on a signal before start-up.')).toBe(true);
  const left = existsSync(d.stateDir) ? readdirSync(d.stateDir).filter((f) => f.endsWith('-wal') || f.endsWith('-shm')) : [];
  expect(left).toEqual([]);
  await until('the helper to be gone', EVENT_WAIT_MS, () => (helpers.every((p) => !alive(p)) ? true : undefined));
}

describe.skipIf(skipReason !== null)('rarecon run stopped during start-up (root, real kernel)', () => {
  it('starts watching, and says how long it took', async () => {
    const d = spawnDaemon();
    const line = await d.waitForLog((l) => l.message === WATCHING, 60_000);
    console.log(`daemon-ops-start.e2e: process start to watching ${line.startUpMs} ms (source ${line.source})`);
    expect(line.startUpMs).toBeGreaterThan(0);
    await d.stop('SIGTERM');
    await expectCleanStop(d, []);
  });

  it('a SIGTERM as soon as the stores are open (before watching) stops cleanly: exit 0, stores closed, status written', async () => {
    const d = spawnDaemon();
    // The state database appears when the daemon opens its stores, well before the helper has attached.
    await until('the state database', 60_000, () => (existsSync(join(d.stateDir, 'state.db')) ? true : undefined), 2);
    const helpers = d.childPids('rarecon-events');
    d.child.kill('SIGTERM');
    const watchingFirst = d.logs.some((l) => l.message === WATCHING);
    console.log(`daemon-ops-start.e2e: SIGTERM with the stores open, ${watchingFirst ? 'after' : 'before'} "watching"`);
    await expectCleanStop(d, helpers);
    expect(existsSync(join(d.stateDir, 'status.json'))).toBe(true);
    expect(d.logs.find((l) => l.message === 'Stopping on a signal.')).toMatchObject({ signal: 'SIGTERM' });
  });

  it('a SIGTERM as soon as the helper is started (before the stores open) stops cleanly', async () => {
    const d = spawnDaemon();
    // The helper is started first, before the daemon's own modules load.
    const helpers = await until(
      'the helper',
      60_000,
      () => {
        const p = d.childPids('rarecon-events');
        return p.length > 0 ? p : undefined;
      },
      2,
    );
    d.child.kill('SIGTERM');
    console.log(
      `daemon-ops-start.e2e: SIGTERM with the helper loading, stores ${existsSync(join(d.stateDir, 'state.db')) ? 'open' : 'not open yet'}`,
    );
    await expectCleanStop(d, helpers);
    expect(d.logs.some((l) => l.message === WATCHING)).toBe(false);
  });

  it('a SIGINT while the stores open stops cleanly', async () => {
    const d = spawnDaemon();
    await until('the state database', 60_000, () => (existsSync(join(d.stateDir, 'state.db')) ? true : undefined), 2);
    const helpers = d.childPids('rarecon-events');
    d.child.kill('SIGINT');
    await expectCleanStop(d, helpers);
    expect(d.logs.find((l) => l.message === 'Stopping on a signal.')).toMatchObject({ signal: 'SIGINT' });
  });
});
