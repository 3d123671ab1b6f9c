// Alerts and sightings on their way to the state folder. Those of one
// event-loop turn (or of `flushDelayMs`) are written together, one SQLite
// transaction each: under load that is many events a commit. What the folder does not take (a full
// disk) is held in memory, up to a bound, and written again on each tick.
import { RepeatedLog } from '../common/log.js';
import type { Logger } from '../common/logger.js';
import type { Alert } from '../model/alert.js';
import type { Sighting } from '../model/baseline.js';
import type { Reporter } from '../report/reporter.js';
import type { SightingsStore } from '../sync/sightings-store.js';
import type { StateHealth } from './state-health.js';

/**
 * Alerts held in memory while the outbox cannot take them (a full disk). Beyond this many the lowest
 * severity, oldest first, go (health alerts last), counted and logged: memory is bounded by this, not
 * by the alert rate. 5,000 is the default safety valve's day of alerts, a few MiB.
 */
export const HELD_ALERTS_MAX = 5_000;
/** Sightings held while the state folder is full; beyond this the oldest go (counted). */
const HELD_SIGHTINGS_MAX = 50_000;

export interface HeldWritesOptions {
  reporter: Pick<Reporter, 'enqueueMany'>;
  sightings: Pick<SightingsStore, 'add'>;
  health: StateHealth;
  log: Logger;
  /** Default HELD_ALERTS_MAX. */
  heldAlertsMax?: number;
  /**
   * How long a write waits for others to go in its transaction; 0 (default): to the end of the
   * event-loop turn. At a thousand alerts a second each comes in its own turn, and three commits an
   * alert (outbox, sightings, dedup state) took a third of the daemon's time.
   */
  flushDelayMs?: number;
}

/** Which held alert goes first at the bound: lowest severity; a health alert (the valve's only word) last. */
function keepRank(a: Alert): number {
  return a.kind === 'health' ? 9 : a.severityId;
}

export class HeldWrites {
  private pendingSightings: Sighting[] = [];
  private pendingAlerts: Alert[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  /** What the state folder did not take yet: stored again on each tick. */
  private heldAlerts: Alert[] = [];
  private heldSightings: Sighting[] = [];
  private readonly heldAlertsMax: number;
  /** At most a line a minute while held alerts are dropped at the bound. */
  private readonly lostLog: RepeatedLog;

  constructor(private readonly to: HeldWritesOptions) {
    this.heldAlertsMax = to.heldAlertsMax ?? HELD_ALERTS_MAX;
    this.lostLog = new RepeatedLog(
      (level, msg, fields) => to.log[level](msg, fields),
      'error',
      'The outbox cannot take alerts and as many as the daemon holds in memory wait already: the lowest-severity, oldest alerts were dropped.',
    );
  }

  /** Queues sightings for the write at the end of this event-loop turn. */
  addSightings(sightings: readonly Sighting[]): void {
    this.pendingSightings.push(...sightings);
    if (this.pendingSightings.length > 0) this.scheduleFlush();
  }

  /** Queues one sighting for the write at the end of this event-loop turn. */
  addSighting(sighting: Sighting): void {
    this.pendingSightings.push(sighting);
    this.scheduleFlush();
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
    const delay = this.to.flushDelayMs ?? 0;
    if (delay > 0) this.flushTimer = setTimeout(() => this.flush(), delay);
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
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

  /**
   * Alerts go to the outbox; when it cannot take them they wait in memory and are stored again, up
   * to the bound: past it the lowest-severity, oldest go, counted (held.alertsLost) and logged.
   */
  private storeAlerts(batch: Alert[]): void {
    const { reporter, health } = this.to;
    const all = this.heldAlerts.length === 0 ? batch : [...this.heldAlerts, ...batch];
    const r = reporter.enqueueMany(all);
    if (r.ok) {
      this.heldAlerts = [];
      health.ok('outbox');
    } else if (r.reason !== 'closed') {
      health.failed('outbox', r);
      this.heldAlerts = this.bounded(all);
    }
    health.held.alerts = this.heldAlerts.length;
  }

  /** The held alerts within the bound, in their order; what goes is counted and logged. */
  private bounded(all: Alert[]): Alert[] {
    const over = all.length - this.heldAlertsMax;
    if (over <= 0) return all;
    // Stable sort by rank: the first `over` are the lowest severity, oldest first within one.
    const order = all.map((_, i) => i).sort((a, b) => keepRank(all[a]!) - keepRank(all[b]!) || a - b);
    const gone = new Set(order.slice(0, over));
    const bySeverity: Record<string, number> = {};
    for (const i of gone) {
      const a = all[i]!;
      const k = a.kind === 'health' ? 'health' : a.severity;
      bySeverity[k] = (bySeverity[k] ?? 0) + 1;
    }
    this.to.health.held.alertsLost += over;
    this.lostLog.note({ dropped: over, bySeverity, heldAlertsMax: this.heldAlertsMax, droppedTotal: this.to.health.held.alertsLost });
    return all.filter((_, i) => !gone.has(i));
  }
}
