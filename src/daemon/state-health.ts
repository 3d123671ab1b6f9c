// Writes to the state folder (outbox, sightings, dedup state, status file) as
// one health: a full disk is said once when it starts and once when it ends,
// counted per store, and shown in status and metrics. The daemon keeps what
// it could not write in memory (bounded) and tries again.
import { classifyStoreError, type StoreFailure } from '../report/outbox.js';
import type { Logger } from '../common/logger.js';

export type StateStoreName = 'outbox' | 'sightings' | 'state' | 'status';

export interface StateHealthStats {
  /** True while the last write of any store failed for lack of space. */
  diskFull: boolean;
  /** Stores whose last write failed, with the error. */
  failing: Partial<Record<StateStoreName, string>>;
  writeFailuresTotal: Record<StateStoreName, number>;
  /** Alerts and sightings held in memory until the state folder takes them. */
  heldAlerts: number;
  heldSightings: number;
  /** Held items given up because their memory bound was reached (lowest severity, oldest first for alerts). */
  sightingsLostTotal: number;
  /** Absent in status files of older versions. */
  alertsLostTotal?: number;
}

function isStoreFailure(x: unknown): x is StoreFailure {
  return typeof x === 'object' && x !== null && 'ok' in x && x.ok === false && 'reason' in x && typeof x.reason === 'string';
}

export class StateHealth {
  /** A nearly full disk takes a write now and then: a store counts as recovered only after this long without a failure. */
  static readonly SETTLE_MS = 2_000;
  private readonly failing = new Map<StateStoreName, { reason: string; error: string; okSinceMs: number | null }>();
  private readonly failures: Record<StateStoreName, number> = { outbox: 0, sightings: 0, state: 0, status: 0 };
  held = { alerts: 0, sightings: 0, sightingsLost: 0, alertsLost: 0 };

  constructor(
    private readonly log: Logger,
    private readonly stateDir: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** A failed write: logged when this store starts failing, counted always. */
  failed(store: StateStoreName, err: unknown): void {
    const f: StoreFailure = isStoreFailure(err) ? err : classifyStoreError(err);
    this.failures[store]++;
    const was = this.failing.get(store);
    if (was !== undefined) {
      was.okSinceMs = null;
      return;
    }
    this.failing.set(store, { reason: f.reason, error: f.error, okSinceMs: null });
    const what = f.reason === 'disk-full' ? 'The state folder is full' : 'The state folder cannot be written';
    this.log.error(`${what}; the daemon keeps running and holds what it cannot write in memory until it can.`, {
      stateDir: this.stateDir,
      store,
      reason: f.reason,
      error: f.error,
    });
  }

  /** A write that worked; the store is back once `settle` finds no failure since for SETTLE_MS. */
  ok(store: StateStoreName): void {
    const was = this.failing.get(store);
    if (was !== undefined && was.okSinceMs === null) was.okSinceMs = this.now();
  }

  /** Called on every tick: says (once) which stores take writes again. */
  settle(): void {
    const now = this.now();
    for (const [store, f] of this.failing) {
      if (f.okSinceMs === null || now - f.okSinceMs < StateHealth.SETTLE_MS) continue;
      this.failing.delete(store);
      this.log.info('The state folder takes writes again.', { stateDir: this.stateDir, store, failedWrites: this.failures[store] });
    }
  }

  stats(): StateHealthStats {
    const failing: Partial<Record<StateStoreName, string>> = {};
    let diskFull = false;
    for (const [k, v] of this.failing) {
      failing[k] = `${v.reason}: ${v.error}`;
      if (v.reason === 'disk-full') diskFull = true;
    }
    return {
      diskFull,
      failing,
      writeFailuresTotal: { ...this.failures },
      heldAlerts: this.held.alerts,
      heldSightings: this.held.sightings,
      sightingsLostTotal: this.held.sightingsLost,
      alertsLostTotal: this.held.alertsLost,
    };
  }
}
