// Alerts and sightings on their way to the state folder. Those of one
// event-loop turn are written together, one SQLite transaction each: under
// load that is many events a commit. What the folder does not take (a full
// disk) is held in memory and written again on each tick.
import type { Logger } from '../common/logger.js';
import type { Alert } from '../model/alert.js';
import type { Sighting } from '../model/baseline.js';
import type { Reporter } from '../report/reporter.js';
import type { SightingsStore } from '../sync/sightings-store.js';
import type { StateHealth } from './state-health.js';

/** Alerts that could not be stored are held in memory and stored later; past this many, new ones are still held but an operator is told. */
const HELD_ALERTS_WARN = 10_000;
/** Sightings held while the state folder is full; beyond this the oldest go (counted). */
const HELD_SIGHTINGS_MAX = 50_000;

export interface HeldWritesOptions {
  reporter: Reporter;
  sightings: SightingsStore;
  health: StateHealth;
  log: Logger;
}

export class HeldWrites {
  private pendingSightings: Sighting[] = [];
  private pendingAlerts: Alert[] = [];
  private flushScheduled = false;
  /** What the state folder did not take yet: stored again on each tick. */
  private heldAlerts: Alert[] = [];
  private heldSightings: Sighting[] = [];

  constructor(private readonly to: HeldWritesOptions) {}

  /** Queues sightings for the write at the end of this event-loop turn. */
  addSightings(sightings: readonly Sighting[]): void {
    this.pendingSightings.push(...sightings);
    if (this.pendingSightings.length > 0) this.scheduleFlush();
  }

  /** Queues an alert for the outbox write at the end of this event-loop turn. */
  addAlert(a: Alert): void {
    this.pendingAlerts.push(a);
    this.scheduleFlush();
  }

  /** Stores again what is held (the tick). */
  retry(): void {
    if (this.heldAlerts.length > 0) this.storeAlerts([]);
    if (this.heldSightings.length > 0) this.storeSightings([]);
  }

  /** Writes what is pending now, at stop; alerts still held then are lost, and the log says how many. */
  close(): void {
    this.flush();
    if (this.heldAlerts.length > 0)
      this.to.log.error('Alerts the outbox could not take are lost at this stop.', { alerts: this.heldAlerts.length });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const sightings = this.pendingSightings;
    const alerts = this.pendingAlerts;
    this.pendingSightings = [];
    this.pendingAlerts = [];
    if (sightings.length > 0) this.storeSightings(sightings);
    if (alerts.length > 0) this.storeAlerts(alerts);
  }

  /** Sightings go to SQLite; on a full disk they wait in memory (bounded, the oldest go first, counted). */
  private storeSightings(batch: Sighting[]): void {
    const { sightings, health } = this.to;
    const all = this.heldSightings.length === 0 ? batch : [...this.heldSightings, ...batch];
    try {
      // A write of repeats only touches no page: it proves nothing unless it carried the held ones.
      if (sightings.add(all) > 0 || all.length > batch.length) health.ok('sightings');
      this.heldSightings = [];
    } catch (err) {
      health.failed('sightings', err);
      const over = all.length - HELD_SIGHTINGS_MAX;
      if (over > 0) health.held.sightingsLost += over;
      this.heldSightings = over > 0 ? all.slice(over) : all;
    }
    health.held.sightings = this.heldSightings.length;
  }

  /** Alerts go to the outbox; when it cannot take them they wait in memory and are stored again: an alert raised is never dropped. */
  private storeAlerts(batch: Alert[]): void {
    const { reporter, health, log } = this.to;
    const all = this.heldAlerts.length === 0 ? batch : [...this.heldAlerts, ...batch];
    const r = reporter.enqueueMany(all);
    if (r.ok) {
      this.heldAlerts = [];
      health.ok('outbox');
    } else if (r.reason !== 'closed') {
      if (this.heldAlerts.length < HELD_ALERTS_WARN && all.length >= HELD_ALERTS_WARN) {
        log.error('Many alerts wait in memory for the outbox; they are lost if the daemon stops before the state folder takes them.', {
          alerts: all.length,
        });
      }
      health.failed('outbox', r);
      this.heldAlerts = all;
    }
    health.held.alerts = this.heldAlerts.length;
  }
}
