// One scoring pipeline for offline logs and the live daemon: connections,
// named by the enrich stage (enrich/connection-names.ts, which takes the DNS
// answers), are judged by the detector, then deduplicated. Synchronous per
// record; I/O only for new alerts.
import type { BaselineReader } from '../model/baseline.js';
import { DAY_MS } from '../model/baseline.js';
import type { DetectionAlert, HealthAlert } from '../model/alert.js';
import type { ConnectionEvent, HostRef, SourceRecord } from '../model/records.js';
import type { ScannedLines, ScannedTable } from '../model/scanned.js';
import type { DetectConfig } from '../config/defaults.js';
import { makeDetector, type Detector, type Finding } from './detector.js';
import { AlertDeduper, hostKeyOf, type Admission, type AlertWrites } from './dedup.js';
import { CompactDeduper } from './compact-dedup.js';
import type { StateStore } from './state-store.js';

export type ScoreOutcome =
  | { kind: 'none' }
  | { kind: 'new'; alert: DetectionAlert }
  | { kind: 'repeat'; alert: DetectionAlert }
  | { kind: 'health'; alert: HealthAlert };

const NONE: ScoreOutcome = Object.freeze({ kind: 'none' });

export interface ScoreCounters {
  recordsTotal: number;
  connectionsTotal: number;
  dnsAnswersTotal: number;
  processRunsTotal: number;
  eligibleTotal: number;
  ineligibleByReason: Record<string, number>;
  learningByReason: Record<string, number>;
  excludedByKind: Record<string, number>;
  commonCombosTotal: number;
  alertsByName: Record<string, number>;
  repeatsTotal: number;
  pausedTotal: number;
  healthAlertsTotal: number;
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

export interface ScorerOptions {
  baseline: BaselineReader;
  config: DetectConfig;
  state: StateStore;
  /** Start of the run, for loading dedup state. Offline: the first record's time is not known yet, so 0 loads all. */
  nowMs: number;
  /**
   * When alerts reach the state store. 'each' (default): as a new one is
   * raised, so the daemon's dedup holds across a crash. 'flush': with the next
   * flush(), for offline runs that keep state (a crashed run is run again).
   * 'never': offline runs whose state is thrown away.
   */
  alertWrites?: AlertWrites;
  /**
   * How open alerts are held. 'objects' (default): whole alerts, written to the
   * state store as alertWrites says. 'compact': for offline runs that keep no
   * state (alertWrites 'never'): a key, counts and times in typed arrays, and
   * the record as text, bounded in memory and then in a temporary file
   * (compact-dedup.ts); the output is the same.
   */
  holding?: 'objects' | 'compact';
  /** With holding 'compact': bytes of alert records held in memory before they spill to the temporary file. */
  maxHeldBodyBytes?: number;
}

/** A host's dedup clock, as either deduper keeps it. */
interface Windows {
  readonly latestMs: number;
}

/** What the scorer asks of a deduper (dedup.ts for the daemon and kept state, compact-dedup.ts offline). */
interface DedupStage {
  host(hostKey: string): Windows;
  advance(h: Windows, timeMs: number): void;
  admit(candidate: DetectionAlert, nowMs: number, windows?: Windows): Admission;
  takeClosed(): DetectionAlert[];
  isPaused(hostKey: string, nowMs: number): number | null;
}

/** Enrolment and dedup windows of one host; shared by the key map and the org -> id map. */
interface HostState {
  key: string;
  enrolledAtMs: number;
  /** The host's clock (its latest event time) and open alerts. */
  windows: Windows;
}

export interface HostLearning {
  hostKey: string;
  enrolledAtMs: number;
  daysLeft: number;
}

/** Counters of a scorer that has seen nothing. */
export function emptyScoreCounters(): ScoreCounters {
  return {
    recordsTotal: 0,
    connectionsTotal: 0,
    dnsAnswersTotal: 0,
    processRunsTotal: 0,
    eligibleTotal: 0,
    ineligibleByReason: {},
    learningByReason: {},
    excludedByKind: {},
    commonCombosTotal: 0,
    alertsByName: {},
    repeatsTotal: 0,
    pausedTotal: 0,
    healthAlertsTotal: 0,
  };
}

export class Scorer {
  private readonly detector: Detector;
  private readonly dedup: DedupStage;
  /** The deduper of holding 'objects' (null with 'compact'). */
  private readonly objects: AlertDeduper | null;
  private readonly compact: CompactDeduper | null;
  private readonly enrolled = new Map<string, HostState>();
  /** org -> host id -> state, so a record finds its host without building the key string. */
  private readonly byOrg = new Map<string, Map<string, HostState>>();
  private baseline: BaselineReader;
  /** Host of a scanned host id and the org id it came with, for `idTable`. */
  private readonly byHostId: ({ orgId: number; st: HostState } | undefined)[] = [];
  private idTable: ScannedTable | null = null;
  readonly counters: ScoreCounters = emptyScoreCounters();

  constructor(private readonly opts: ScorerOptions) {
    this.detector = makeDetector(opts.config);
    const dedupOpts = {
      windowMs: opts.config.dedupWindowMs,
      maxAlertsPerHostPerDay: opts.config.maxAlertsPerHostPerDay,
      alertWrites: opts.alertWrites ?? 'each',
    };
    if (opts.holding === 'compact') {
      if (dedupOpts.alertWrites !== 'never') throw new Error("holding 'compact' keeps no state: it needs alertWrites 'never'");
      this.compact = new CompactDeduper({
        ...dedupOpts,
        ...(opts.maxHeldBodyBytes !== undefined ? { maxHeldBodyBytes: opts.maxHeldBodyBytes } : {}),
      });
      this.objects = null;
      this.dedup = this.compact;
    } else {
      this.objects = new AlertDeduper(opts.state, dedupOpts, opts.nowMs);
      this.compact = null;
      this.dedup = this.objects;
    }
    this.baseline = opts.baseline;
    for (const [key, enrolledAtMs] of opts.state.enrolments()) {
      const st: HostState = { key, enrolledAtMs, windows: this.dedup.host(key) };
      this.enrolled.set(key, st);
      this.fromHistory(st);
    }
  }

  /**
   * A host's enrolment is the earliest of the baseline's own history, the
   * state and the inputs (DETECTION.md section 2.4): the first of these is
   * asked once, when the host is first met.
   */
  private fromHistory(st: HostState): void {
    const firstDayMs = this.baseline.hostFirstDayMs?.(st.key);
    if (firstDayMs !== undefined) this.enrolState(st, firstDayMs);
  }

  /** Swap in a newer baseline (sync); open alerts and enrolment stay (a server's baseline has no host history to add). */
  setBaseline(b: BaselineReader): void {
    this.baseline = b;
  }

  /** Marks a host as enrolled at `timeMs` unless it was enrolled earlier. */
  enrol(hostKey: string, timeMs: number): number {
    return this.enrolState(this.stateOfKey(hostKey), timeMs);
  }

  private stateOfKey(key: string): HostState {
    let st = this.enrolled.get(key);
    if (st === undefined) {
      this.enrolled.set(key, (st = { key, enrolledAtMs: Number.POSITIVE_INFINITY, windows: this.dedup.host(key) }));
      this.fromHistory(st);
    }
    return st;
  }

  private stateOfHost(host: HostRef): HostState {
    let ids = this.byOrg.get(host.org);
    if (ids === undefined) this.byOrg.set(host.org, (ids = new Map()));
    let st = ids.get(host.id);
    if (st === undefined) ids.set(host.id, (st = this.stateOfKey(hostKeyOf(host))));
    return st;
  }

  private enrolState(st: HostState, timeMs: number): number {
    if (st.enrolledAtMs <= timeMs) return st.enrolledAtMs;
    st.enrolledAtMs = timeMs;
    this.opts.state.recordEnrolment(st.key, timeMs);
    return timeMs;
  }

  handle(rec: SourceRecord): ScoreOutcome {
    this.counters.recordsTotal++;
    const st = this.stateOfHost(rec.host);
    const enrolledAt = this.enrolState(st, rec.timeMs);
    // Every record moves its own host's clock, and only its host's: windows close in each host's event time.
    this.dedup.advance(st.windows, rec.timeMs);
    switch (rec.type) {
      case 'dns':
        // Counted only: the enrich stage keeps the answers and names connections with them.
        this.counters.dnsAnswersTotal++;
        return NONE;
      case 'process':
        this.counters.processRunsTotal++;
        return NONE;
      case 'connection':
        this.counters.connectionsTotal++;
        return this.scoreConnection(rec, enrolledAt, st.windows);
    }
  }

  /**
   * handle() for line i of scanned lines when the ids alone settle it (not
   * eligible, or a common combination); null when it takes the full record:
   * the caller then names s.record(i) (the enrich stage) and handle()s it.
   */
  handleScanned(s: ScannedLines, i: number): ScoreOutcome | null {
    const timeMs = s.time(i);
    const st = this.stateOfIds(s.table, s.host(i), s.org(i));
    // Enrolment as handle() would leave it, but written only once the line is scored here.
    const enrolledAt = Math.min(st.enrolledAtMs, timeMs);
    const v = this.detector.quick(s, i, this.baseline, enrolledAt, timeMs);
    if (v === null) return null;
    const c = this.counters;
    c.recordsTotal++;
    this.enrolState(st, timeMs);
    this.dedup.advance(st.windows, timeMs);
    c.connectionsTotal++;
    if (v === 'common') {
      c.eligibleTotal++;
      c.commonCombosTotal++;
    } else {
      bump(c.ineligibleByReason, v);
    }
    return NONE;
  }

  /** The host of scanned ids, kept per host id for the table's epoch (a host id seen under another org asks the org map). */
  private stateOfIds(table: ScannedTable, hostId: number, orgId: number): HostState {
    if (this.idTable !== table) {
      this.idTable = table;
      this.byHostId.length = 0;
    }
    const known = this.byHostId[hostId];
    if (known !== undefined && known.orgId === orgId) return known.st;
    const st = this.stateOfHost({ id: table.text(hostId), org: table.org(orgId) });
    this.byHostId[hostId] = { orgId, st };
    return st;
  }

  private scoreConnection(e: ConnectionEvent, enrolledAtMs: number, windows: Windows): ScoreOutcome {
    const c = this.counters;
    // A connection no enrich stage named (a caller without DNS answers, such as a test) goes by its own hostname.
    const name = e.name;
    const v =
      name !== undefined
        ? this.detector.judge(e, name, this.baseline, enrolledAtMs, e.timeMs)
        : this.detector.evaluate(e, e.remote.hostname, this.baseline, enrolledAtMs, e.timeMs);
    switch (v.kind) {
      case 'ineligible':
        bump(c.ineligibleByReason, v.reason);
        return NONE;
      case 'learning':
        bump(c.learningByReason, v.reason);
        return NONE;
      case 'excluded':
        c.eligibleTotal++;
        bump(c.excludedByKind, v.by);
        return NONE;
      case 'common':
        c.eligibleTotal++;
        c.commonCombosTotal++;
        return NONE;
      case 'alert': {
        c.eligibleTotal++;
        const adm = this.dedup.admit(this.candidate(e, v.finding), e.timeMs, windows);
        switch (adm.kind) {
          case 'new':
            bump(c.alertsByName, adm.alert.name);
            return { kind: 'new', alert: adm.alert };
          case 'repeat':
            c.repeatsTotal++;
            return { kind: 'repeat', alert: adm.alert };
          case 'paused':
            c.pausedTotal++;
            return NONE;
          case 'valve-tripped':
            c.healthAlertsTotal++;
            return { kind: 'health', alert: adm.health };
        }
      }
    }
  }

  private candidate(e: ConnectionEvent, f: Finding): DetectionAlert {
    const top = f.variations[0]!;
    const meta = this.baseline.meta();
    return {
      kind: 'detection',
      uid: '',
      variation: top.id,
      name: top.name,
      severity: top.severity,
      severityId: top.severityId,
      variationsHeld: f.variations.map((x) => x.id),
      host: e.host,
      process: e.process,
      connection: {
        protocol: e.protocol,
        ip: e.remote.ip,
        port: e.remote.port,
        hostname: f.hostname,
        ...(e.remote.reverseDns === true ? { hostnameFromReverseDns: true as const } : {}),
        rootDomain: f.rootDomain,
        localIp: e.local?.ip ?? null,
        localPort: e.local?.port ?? null,
      },
      prevalence: {
        processObservers: f.processObservers,
        comboObservers: f.comboObservers,
        tier: f.tier,
        thresholds: f.thresholds,
        observerUnit: meta.observerUnit,
        populationSize: meta.populationSize,
        baselineVersion: meta.version,
        windowStartMs: meta.windowStartMs,
        windowEndMs: meta.windowEndMs,
      },
      injection: e.process.injection,
      firstSeenMs: e.timeMs,
      lastSeenMs: e.timeMs,
      count: 1,
    };
  }

  /** When the safety valve pauses the host at `nowMs`, the end of the pause; null when it does not. */
  pausedUntil(hostKey: string, nowMs: number): number | null {
    return this.dedup.isPaused(hostKey, nowMs);
  }

  /** Alerts whose dedup window has closed in their host's event time (for emitting final counts). */
  takeClosed(): DetectionAlert[] {
    return this.dedup.takeClosed();
  }

  /** End of an offline run: everything closed plus everything still open, oldest first. */
  finish(): DetectionAlert[] {
    const all: DetectionAlert[] = [];
    for (const batch of this.finishInBatches(256)) for (const a of batch) all.push(a);
    return all;
  }

  /** finish(), `batch` alerts at a time (with holding 'compact', only those are rebuilt at once). */
  *finishInBatches(batch: number): Generator<DetectionAlert[]> {
    if (this.compact !== null) {
      yield* this.compact.finishInBatches(batch);
      return;
    }
    const d = this.objects!;
    const all = [...this.takeClosed(), ...d.openAlerts()].sort((a, b) => a.firstSeenMs - b.firstSeenMs);
    d.flush();
    for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch);
  }

  /** With holding 'compact': bytes the open alerts take in memory (index arrays and records not spilled), and how many. */
  heldAlerts(): { alerts: number; bytes: number } | null {
    return this.compact === null ? null : { alerts: this.compact.heldAlerts, bytes: this.compact.heldBytes };
  }

  flush(): void {
    this.objects?.flush();
  }

  /** Frees what holding 'compact' keeps outside the heap (its temporary file). */
  close(): void {
    this.compact?.close();
  }

  /** Hosts still learning at `nowMs` (when omitted: each host at its own latest record time). */
  learningHosts(nowMs?: number): HostLearning[] {
    const activationMs = this.opts.config.activationDays * DAY_MS;
    const out: HostLearning[] = [];
    for (const { key: hostKey, enrolledAtMs, windows } of this.enrolled.values()) {
      if (enrolledAtMs === Number.POSITIVE_INFINITY) continue;
      const at = nowMs ?? windows.latestMs;
      if (!Number.isFinite(at)) continue;
      const left = activationMs - (at - enrolledAtMs);
      if (left > 0) out.push({ hostKey, enrolledAtMs, daysLeft: Math.ceil(left / DAY_MS) });
    }
    return out.sort((a, b) => a.hostKey.localeCompare(b.hostKey));
  }
}
