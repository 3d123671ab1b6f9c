// Batched dedup-state writes (the daemon's mode): one commit per event-loop
// turn, nothing lost on close, a failed commit kept for the next one.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Scorer } from '../../src/detect/scorer.js';
import { StateStore } from '../../src/detect/state-store.js';
import { DEFAULT_DETECT } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { memoryBaseline } from '../support/memory-baseline.js';
import { conn, SHA_A } from '../support/records.js';

const T = Date.UTC(2026, 9, 1, 12);
const baseline = memoryBaseline({ [SHA_A]: 50 }, []);
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'rarecon-state-batch-'));
  dirs.push(d);
  return d;
}

function scorerOn(state: StateStore): Scorer {
  const s = new Scorer({ baseline, config: DEFAULT_DETECT, state, nowMs: T });
  s.enrol('o1/h1', T - 20 * DAY_MS);
  return s;
}

const alertOn = (port: number) => conn({ timeMs: T + port, hostname: 'c2.example.com', port });

describe('StateStore batchWrites', () => {
  it('commits a burst of new alerts in one transaction after the turn, and a restart dedups them', async () => {
    const dir = tempDir();
    const st = StateStore.open(dir, { batchWrites: true });
    const s = scorerOn(st);
    for (let p = 1000; p < 1050; p++) expect(s.handle(alertOn(p)).kind).toBe('new');
    expect(st.pendingWrites).toBeGreaterThan(0);
    expect(st.commitsTotal).toBe(0);
    await turn();
    expect(st.pendingWrites).toBe(0);
    expect(st.commitsTotal).toBe(1);
    // Another process opening the file sees all 50 (WAL, committed).
    const other = StateStore.open(dir);
    expect(other.alertsSince(T - 1)).toBe(50);
    other.close();
    st.close();
    const again = scorerOn(StateStore.open(dir));
    expect(again.handle(alertOn(1010)).kind).toBe('repeat');
  });

  it('with batchDelayMs, alerts of several turns within the delay go in one commit', async () => {
    const st = StateStore.open(tempDir(), { batchWrites: true, batchDelayMs: 50 });
    const s = scorerOn(st);
    let committed: () => void = () => undefined;
    const firstCommit = new Promise<void>((r) => (committed = r));
    const commit = st.commitPending.bind(st);
    st.commitPending = () => {
      commit();
      if (st.commitsTotal > 0) committed();
    };
    for (let p = 3000; p < 3005; p++) {
      expect(s.handle(alertOn(p)).kind).toBe('new');
      await turn();
    }
    // Unless the machine stalled past the delay between two turns, one commit took all five.
    await firstCommit;
    expect(st.pendingWrites).toBe(0);
    expect(st.alertsSince(T - 1)).toBe(5);
    st.close();
  });

  it('writes what is pending on close, without waiting for the turn', () => {
    const dir = tempDir();
    const st = StateStore.open(dir, { batchWrites: true });
    const s = scorerOn(st);
    expect(s.handle(alertOn(2000)).kind).toBe('new');
    st.close();
    const st2 = StateStore.open(dir);
    expect(st2.openAlerts(T - 1).map((r) => r.alert.lastSeenMs)).toEqual([T + 2000]);
    st2.close();
  });

  it('reads see their own pending writes', () => {
    const st = StateStore.open(null, { batchWrites: true });
    const s = scorerOn(st);
    s.handle(alertOn(3000));
    s.handle(alertOn(3001));
    expect(st.alertsSince(T - 1)).toBe(2);
    expect(st.valves()).toMatchObject([{ hostKey: 'o1/h1', count: 2 }]);
    st.close();
  });

  it('reports a failed commit, keeps its rows, and writes them once the file is writable again', async () => {
    const dir = tempDir();
    const errors: Array<{ message: string; rows: number }> = [];
    const st = StateStore.open(dir, { batchWrites: true, onWriteError: (e, rows) => errors.push({ message: e.message, rows }) });
    const s = scorerOn(st);
    // Another connection moves the table away: the commit fails like a broken file would.
    const side = new Database(join(dir, 'state.db'));
    side.exec('ALTER TABLE alerts RENAME TO alerts_away');
    s.handle(alertOn(4000));
    await turn();
    expect(errors).toMatchObject([{ rows: 2, message: expect.stringMatching(/alerts/) as unknown }]);
    expect(st.writeErrorsTotal).toBe(1);
    expect(st.pendingWrites).toBe(2); // the alert row and its valve count
    side.exec('ALTER TABLE alerts_away RENAME TO alerts');
    side.close();
    s.handle(alertOn(4001));
    await turn();
    expect(st.pendingWrites).toBe(0);
    st.close();
    const st2 = StateStore.open(dir);
    expect(st2.alertsSince(T - 1)).toBe(2);
    st2.close();
  });
});
