// Deduplication and the safety valve (DETECTION.md section 6).
// Key: (host, sha256, root domain, port, alert name); one alert per key per window.
// Repeats update count and last-seen. Any other variation for the same combo
// is another key: a higher one raises, and so does a lower one while a higher
// alert is open (an analyst closes alerts by name). Windows open and close in
// each host's own event time: one host's clock, or one future-dated record,
// never closes another host's windows.
import { hash } from 'node:crypto';
import { comboHash, comboKey as keyOfHash, hashCombo } from '../baseline/combo-key.js';
import type { DetectionAlert, HealthAlert } from '../model/alert.js';
import { HEALTH_ALERT_NAME } from '../model/alert.js';
import { isoTime } from '../model/time-text.js';
import type { HostRef } from '../model/records.js';
import type { OpenAlertRow, StateStore, ValveRow } from './state-store.js';

export type Admission =
  | { kind: 'new'; alert: DetectionAlert }
  | { kind: 'repeat'; alert: DetectionAlert }
  | { kind: 'paused'; pausedUntilMs: number }
  | { kind: 'valve-tripped'; health: HealthAlert };

export function hostKeyOf(h: HostRef): string {
  return `${h.org}/${h.id}`;
}

export function comboKeyOf(hostKey: string, sha256: string, rootDomain: string, port: number): string {
  return `${hostKey}|${sha256}|${rootDomain}|${port}`;
}

export function alertUid(dedupKey: string, firstSeenMs: number): string {
  // One-shot hash (Node 20.12+): half the cost of a Hash object, and one is made per alert.
  return hash('sha256', `${dedupKey}|${firstSeenMs}`, 'hex').slice(0, 32);
}

/** When the host's safety valve (contract section 6) pauses it at `nowMs`, the end of the pause; null when it does not. */
export function valvePausedUntil(valves: ReadonlyMap<string, ValveRow>, hostKey: string, nowMs: number): number | null {
  const v = valves.get(hostKey);
  return v !== undefined && nowMs < v.pausedUntilMs ? v.pausedUntilMs : null;
}

/**
 * Counts one new alert of the host in its valve's 24 h window (a new window once the last has
 * passed). Past the limit the valve trips: `pausedUntilMs` is set to the window's end.
 */
export function countTowardValve(valves: Map<string, ValveRow>, hostKey: string, nowMs: number, opts: DedupOptions): ValveRow {
  let v = valves.get(hostKey);
  if (v === undefined || nowMs - v.windowStartMs >= opts.windowMs) {
    v = { hostKey, windowStartMs: nowMs, count: 0, pausedUntilMs: 0 };
    valves.set(hostKey, v);
  }
  v.count++;
  if (v.count > opts.maxAlertsPerHostPerDay) v.pausedUntilMs = v.windowStartMs + opts.windowMs;
  return v;
}

/** The one health alert a tripped valve raises. */
export function valveHealthAlert(host: HostRef, v: ValveRow, nowMs: number, opts: DedupOptions): HealthAlert {
  const hostKey = hostKeyOf(host);
  return {
    kind: 'health',
    uid: alertUid(`${hostKey}|valve`, v.windowStartMs),
    name: HEALTH_ALERT_NAME,
    severity: 'Low',
    severityId: 2,
    host,
    reason: `host ${hostKey} raised more than ${opts.maxAlertsPerHostPerDay} alerts within 24 h; the detector is paused for it until ${isoTime(v.pausedUntilMs) ?? `${v.pausedUntilMs} ms after 1970`}`,
    alertsInWindow: v.count - 1,
    pausedUntilMs: v.pausedUntilMs,
    firstSeenMs: nowMs,
    lastSeenMs: nowMs,
    count: 1,
  };
}

/**
 * When open alerts and valve counts reach the state store: 'each' as a new
 * alert is raised (dedup holds across a crash), 'flush' with the next flush(),
 * 'never' for a run whose state is thrown away.
 */
export type AlertWrites = 'each' | 'flush' | 'never';

export interface DedupOptions {
  windowMs: number;
  maxAlertsPerHostPerDay: number;
  /** Default 'each'. */
  alertWrites?: AlertWrites;
}

/**
 * Index key of a combo: the baseline's combo hash (combo-key.ts) over host and
 * sha256, root domain and port, so no held alert keeps the ~170-character key
 * string. Its hex-case folding can only make two keys collide, and
 * HeldAlert.isCombo() tells those apart.
 */
function comboHashOf(hostKey: string, sha256: string, rootDomain: string, port: number): number {
  hashCombo(`${hostKey}|${sha256}`, rootDomain, port);
  return keyOfHash(comboHash[0]!, comboHash[1]!, 53);
}

/**
 * An alert the deduper holds open. Its combo and dedup keys are built when
 * asked (for writes), not kept: they were over half of a held alert's index
 * memory. Lookups go by comboHashOf() and check the fields themselves.
 */
class HeldAlert implements OpenAlertRow {
  constructor(
    readonly hash: number,
    readonly hostKey: string,
    readonly severityId: number,
    readonly alert: DetectionAlert,
    public dirty: boolean,
  ) {}

  static of(hostKey: string, severityId: number, alert: DetectionAlert, dirty: boolean): HeldAlert {
    const c = alert.connection;
    return new HeldAlert(comboHashOf(hostKey, alert.process.sha256 ?? '', c.rootDomain, c.port), hostKey, severityId, alert, dirty);
  }

  get comboKey(): string {
    return comboKeyOf(this.hostKey, this.alert.process.sha256 ?? '', this.alert.connection.rootDomain, this.alert.connection.port);
  }

  get dedupKey(): string {
    return `${this.comboKey}|${this.alert.name}`;
  }

  isCombo(hostKey: string, sha256: string, rootDomain: string, port: number): boolean {
    const a = this.alert;
    return (
      this.hostKey === hostKey &&
      (a.process.sha256 ?? '') === sha256 &&
      a.connection.rootDomain === rootDomain &&
      a.connection.port === port
    );
  }
}

/**
 * One host's dedup windows: the latest event time seen from it, and its open
 * alerts in the order they were opened. Held by the caller per host
 * (Scorer's host state) so a record moves its host's clock without a lookup.
 */
export class HostWindows {
  /** Latest event time seen from the host. */
  latestMs = Number.NEGATIVE_INFINITY;
  /** The earliest end of an open window of the host (+Infinity when none is open). */
  nextExpiryMs = Number.POSITIVE_INFINITY;
  readonly open = new Set<HeldAlert>();

  constructor(readonly hostKey: string) {}
}

export class AlertDeduper {
  /** Per host: its clock and its open alerts. */
  private readonly hosts = new Map<string, HostWindows>();
  /** Open alerts by comboHashOf() (one, rarely a few, a combo): found by their combo and name there. */
  private readonly byCombo = new Map<number, HeldAlert[]>();
  private readonly valves = new Map<string, ValveRow>();
  private readonly closed: DetectionAlert[] = [];
  /** Valve counts changed since the last write (when writes wait for flush()). */
  private readonly dirtyValves = new Set<ValveRow>();
  /** Hosts whose closed windows are still to be dropped from the store, with the time before which they closed. */
  private readonly prunes = new Map<string, number>();
  private readonly writes: AlertWrites;

  constructor(
    private readonly store: StateStore,
    private readonly opts: DedupOptions,
    nowMs: number,
  ) {
    this.writes = opts.alertWrites ?? 'each';
    // Stored open alerts are all detections: health alerts are never admitted.
    for (const row of store.openAlerts(nowMs - opts.windowMs))
      this.index(HeldAlert.of(row.hostKey, row.severityId, row.alert as DetectionAlert, false));
    for (const v of store.valves()) this.valves.set(v.hostKey, v);
  }

  /** The windows of a host (made on first use); keep it to pass to advance(). */
  host(hostKey: string): HostWindows {
    let h = this.hosts.get(hostKey);
    if (h === undefined) this.hosts.set(hostKey, (h = new HostWindows(hostKey)));
    return h;
  }

  /**
   * A record of the host stamped `timeMs` was seen: its clock moves on (never
   * back), and its windows that have ended by then close.
   */
  advance(h: HostWindows, timeMs: number): void {
    if (!(timeMs > h.latestMs)) return;
    h.latestMs = timeMs;
    if (timeMs >= h.nextExpiryMs) this.closeEnded(h);
  }

  private index(row: HeldAlert): void {
    // Dedup keys are unique here: new alerts are indexed only when their key is not open, stored ones are keyed by it.
    const rows = this.byCombo.get(row.hash);
    if (rows === undefined) this.byCombo.set(row.hash, [row]);
    else rows.push(row);
    const h = this.host(row.hostKey);
    h.open.add(row);
    h.nextExpiryMs = Math.min(h.nextExpiryMs, row.alert.firstSeenMs + this.opts.windowMs);
  }

  private unindex(h: HostWindows, row: HeldAlert): void {
    h.open.delete(row);
    const rows = this.byCombo.get(row.hash);
    if (rows === undefined) return;
    const i = rows.indexOf(row);
    if (i >= 0) rows.splice(i, 1);
    if (rows.length === 0) this.byCombo.delete(row.hash);
  }

  /** Moves the host's alerts whose window ended by its clock to the closed list. */
  private closeEnded(h: HostWindows): void {
    const nowMs = h.latestMs;
    h.nextExpiryMs = Number.POSITIVE_INFINITY;
    const done: HeldAlert[] = [];
    for (const row of h.open) {
      const end = row.alert.firstSeenMs + this.opts.windowMs;
      if (end <= nowMs) done.push(row);
      else h.nextExpiryMs = Math.min(h.nextExpiryMs, end);
    }
    if (done.length === 0) return;
    done.sort((a, b) => a.alert.firstSeenMs - b.alert.firstSeenMs);
    for (const row of done) {
      this.unindex(h, row);
      this.closed.push(row.alert);
    }
    this.prunes.set(h.hostKey, nowMs - this.opts.windowMs);
    // The daemon's state follows at once; an offline run's with its next flush().
    if (this.writes === 'each') this.flush();
  }

  isPaused(hostKey: string, nowMs: number): number | null {
    return valvePausedUntil(this.valves, hostKey, nowMs);
  }

  /** `candidate` (a fresh object, kept as the alert) carries count 1 and first = last seen = the event time; its uid is filled here. */
  admit(candidate: DetectionAlert, nowMs: number, windows?: HostWindows): Admission {
    const hostKey = hostKeyOf(candidate.host);
    const h = windows ?? this.host(hostKey);
    this.advance(h, nowMs);
    const pausedUntil = this.isPaused(hostKey, nowMs);
    if (pausedUntil !== null) return { kind: 'paused', pausedUntilMs: pausedUntil };

    const sha = candidate.process.sha256 ?? '';
    const { rootDomain, port } = candidate.connection;
    const hash = comboHashOf(hostKey, sha, rootDomain, port);
    const rows = this.byCombo.get(hash);
    if (rows !== undefined) {
      // The dedup key is the combo key and the name: within a combo, the name alone tells the same alert.
      for (const row of rows)
        if (row.alert.name === candidate.name && row.isCombo(hostKey, sha, rootDomain, port))
          return { kind: 'repeat', alert: this.bump(row, nowMs) };
    }

    const v = countTowardValve(this.valves, hostKey, nowMs, this.opts);
    if (v.pausedUntilMs > 0) {
      if (this.writes === 'each') this.store.saveValve(v);
      else if (this.writes === 'flush') this.dirtyValves.add(v);
      return { kind: 'valve-tripped', health: valveHealthAlert(candidate.host, v, nowMs, this.opts) };
    }

    const comboKey = comboKeyOf(hostKey, sha, rootDomain, port);
    // The candidate is the caller's fresh object: it becomes the held alert (a spread copy cost old-generation memory, see ocsf.ts).
    const alert = candidate;
    alert.uid = alertUid(`${comboKey}|${candidate.name}`, candidate.firstSeenMs);
    const row = new HeldAlert(hash, hostKey, alert.severityId, alert, this.writes === 'flush');
    this.index(row);
    if (this.writes === 'each') {
      // Written at once, with its valve count in the same transaction: dedup must hold across a crash right after it.
      try {
        this.store.saveAlerts([row], null, [v]);
      } catch {
        // A full disk must not cost the alert: it is raised, and written by the next flush (which throws while it cannot).
        row.dirty = true;
        this.dirtyValves.add(v);
      }
    } else if (this.writes === 'flush') {
      this.dirtyValves.add(v);
    }
    return { kind: 'new', alert };
  }

  private bump(row: HeldAlert, nowMs: number): DetectionAlert {
    const a = row.alert;
    a.count++;
    a.lastSeenMs = Math.max(a.lastSeenMs, nowMs);
    row.dirty = true;
    return a;
  }

  /** Alerts whose window has closed since the last call, in the order they closed (each host's oldest first). */
  takeClosed(): DetectionAlert[] {
    return this.closed.splice(0, this.closed.length);
  }

  /** Every alert still open, oldest first (end of an offline run). */
  openAlerts(): DetectionAlert[] {
    const out: DetectionAlert[] = [];
    for (const h of this.hosts.values()) for (const r of h.open) out.push(r.alert);
    return out.sort((a, b) => a.firstSeenMs - b.firstSeenMs);
  }

  /** Writes changed counts (and alerts not yet written) in one transaction; drops the rows of windows that closed. */
  flush(): void {
    if (this.writes === 'never') return;
    const dirty: HeldAlert[] = [];
    for (const h of this.hosts.values()) {
      for (const row of h.open) {
        if (row.dirty) {
          dirty.push(row);
          row.dirty = false;
        }
      }
    }
    const valves = [...this.dirtyValves];
    this.dirtyValves.clear();
    const prunes = [...this.prunes];
    this.prunes.clear();
    if (dirty.length === 0 && valves.length === 0 && prunes.length === 0) return;
    try {
      this.store.saveAlerts(dirty, prunes, valves);
    } catch (err) {
      // Not written (a full disk): written again by the next flush.
      for (const row of dirty) row.dirty = true;
      for (const v of valves) this.dirtyValves.add(v);
      for (const [k, t] of prunes) this.prunes.set(k, Math.max(t, this.prunes.get(k) ?? t));
      throw err;
    }
  }
}
