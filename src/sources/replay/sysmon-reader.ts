// Turns Sysmon events into rarecon records. Sysmon spreads what the detector
// needs over several events of one process (ProcessGuid): the image hash and
// command line (Event 1), the image's signature and odd libraries (Event 7),
// injections (Events 8 and 10), the DNS answers of the host (Event 22) and the
// connection itself (Event 3). State events are folded in as they arrive,
// with their times; the events that become records are put back in time order
// per host and joined when they leave the reorder window, so a connection sees
// the DNS answers that came before it and the injections stamped up to
// `injectionLeadMs` after it (Sysmon's event types disagree by seconds).
import {
  UNKNOWN_SIGNER,
  type ConnectionEvent,
  type HostRef,
  type Origin,
  type ParentInfo,
  type ReaderItem,
  type RecordError,
  type Signer,
} from '../../model/records.js';
import type { JsonObject } from './field-reader.js';
import { DEFAULT_PROCESS_ACCESS_IGNORE, type DetectConfig } from '../../config/defaults.js';
import { normaliseIp } from '../../model/address.js';
import { DEFAULT_ORG } from './ndjson-reader.js';
import { ReorderBuffer } from './reorder-buffer.js';
import { normaliseWindowsPath, RoutineAccess } from './process-access.js';
import {
  basename,
  classifyWindowsEvent,
  HostIds,
  ipsFromQueryResults,
  known,
  normaliseGuid,
  sha256FromHashes,
  type SysmonEvent,
} from './sysmon-event.js';

export interface SysmonReaderOptions {
  /** Org of every host in the log (Sysmon does not know it). */
  org: string;
  /** How far out of order (event time, per host) events may arrive and still be joined in order. */
  reorderWindowMs: number;
  /**
   * An event this much older than what its host already left the window with
   * starts another stretch of that host's log (rotated files given newest
   * first), sorted in its own right; a less late one is passed on unsorted.
   */
  rewindMs: number;
  /**
   * An Event 22 may be stamped a little after the connection it served (seen:
   * 8 ms); answers this much newer than a connection still name it.
   */
  dnsLeadMs: number;
  /**
   * Event 10 sources whose access is routine, not injection (`detect.processAccessIgnore`,
   * see process-access.ts): by default the system brokers from System32 or
   * SysWOW64 and Defender's engine from its platform folder.
   */
  processAccessIgnore: readonly string[];
  /** An Event 10 from the target's own parent this close to the target's creation is routine; 0 counts it. */
  processAccessParentMs: number;
  /**
   * An injection indicator counts for a connection stamped up to this much
   * before it (DETECTION.md section 5: a connection is seen stamped up to 10 s
   * before the CreateRemoteThread that preceded it). Connections are held this
   * much longer than the reorder window, so such an indicator has arrived when they are joined.
   */
  injectionLeadMs: number;
  /** TTL given to Event 22 answers: Sysmon records none. */
  dnsTtlSeconds: number;
  /** How long past its TTL an answer still names a connection's address (DETECTION.md section 10). */
  dnsGraceMs: number;
  /** Bounds on the join state, oldest dropped first. */
  maxProcesses: number;
  maxDnsEntries: number;
  maxBufferedPerHost: number;
}

export const DEFAULT_SYSMON_OPTIONS: Readonly<SysmonReaderOptions> = Object.freeze({
  org: DEFAULT_ORG,
  reorderWindowMs: 10_000,
  rewindMs: 60_000,
  dnsLeadMs: 1_000,
  processAccessIgnore: DEFAULT_PROCESS_ACCESS_IGNORE,
  processAccessParentMs: 5_000,
  injectionLeadMs: 10_000,
  dnsTtlSeconds: 300,
  dnsGraceMs: 5 * 60_000,
  maxProcesses: 100_000,
  maxDnsEntries: 100_000,
  maxBufferedPerHost: 100_000,
});

/** The reader options the `detect:` config section sets. */
export function sysmonOptionsOf(detect: Pick<DetectConfig, 'processAccessIgnore' | 'processAccessParentMs'>): Partial<SysmonReaderOptions> {
  return { processAccessIgnore: detect.processAccessIgnore, processAccessParentMs: detect.processAccessParentMs };
}

/**
 * Where the lines of a file went besides records and errors, by reason: each
 * line the reader is given is a record, an error, joined or skipped.
 */
export interface LineTally {
  /** Sysmon events folded into the records of their process (image loads, injections, exits, Event 1 without a SHA256). */
  joined: Record<string, number>;
  /** Lines that make no record: other channels, Sysmon events rarecon does not use, DNS queries without an address. */
  skipped: Record<string, number>;
  /** Lines that are Sysmon events, whatever became of them: a Windows export with none holds nothing rarecon reads. */
  sysmonEvents: number;
}

function tally(into: Record<string, number>, reason: string): void {
  into[reason] = (into[reason] ?? 0) + 1;
}

/** Sysmon events that make records or join them; the others are skipped, counted by id. */
const USED_EVENTS: ReadonlySet<number> = new Set([1, 3, 5, 7, 8, 10, 22]);

export interface SysmonStats {
  /** Sysmon events read, by EventID. */
  sysmonEvents: Record<string, number>;
  /** Lines of other Windows channels or not Windows events at all: counted and skipped. */
  nonSysmonLines: number;
  /** Sysmon events of ids rarecon does not use (2, 9, 11-19, 23, ...). */
  unusedSysmonEvents: number;
  connections: number;
  /** Connections whose log gave no ProcessId (pid reads 0). */
  connectionsWithoutPid: number;
  dnsAnswers: number;
  /** Event 22 with no address in its results (failed lookups, CNAME-only answers). */
  dnsWithoutAddresses: number;
  /** Connections named only by Event 3's `DestinationHostname`, a reverse-DNS (PTR) name. */
  reverseDnsNames: number;
  processRuns: number;
  /** Event 1 without a SHA256 in `Hashes` (Sysmon configured for other hashes only). */
  processRunsWithoutHash: number;
  /** Distinct processes with a connection that carries an injection indicator. */
  injectedProcesses: number;
  /** Distinct processes whose image SHA256 is known (Event 1, or Event 7 of the image). */
  hashedProcesses: number;
  /** Events that arrived later than the reorder window allows; passed on unsorted. */
  lateEvents: number;
  /** Times a host's events started over much earlier (an older file after a newer one) and were sorted anew. */
  rewinds: number;
  reorderOverflows: number;
  errors: number;
}

// PROCESS_CREATE_THREAD | PROCESS_VM_WRITE: the rights a remote thread or a code write needs.
const INJECTION_ACCESS_MASK = 0x2 | 0x20;
const UNUSUAL_DIRS = ['\\users\\', '\\appdata\\', '\\temp\\', '\\programdata\\', '\\downloads\\', '\\windows\\temp\\'];
const MAX_LIBRARIES = 32;
/** Injection evidence kept a process (each Event 8 or 10 that may count); the earliest are kept. */
const MAX_INJECTION_EVENTS = 64;
const MAX_INDICATORS = 16;
/** Distinct-process counters stop growing here; the stats are then a lower bound. */
const MAX_DISTINCT_TRACKED = 1_000_000;
const NO_ITEMS: ReaderItem[] = [];
/** The record type needs a pid; 0 stands for "the log did not say" (counted in `connectionsWithoutPid`). */
const UNKNOWN_PID = 0;

/** One Event 8 or 10 into a process that may count as injection; whether it does is decided at the join. */
interface InjectionEvidence {
  indicator: string;
  timeMs: number;
  /** An Event 10, which is routine when it comes from the target's parent right at the target's creation. */
  access: boolean;
  sourceGuid: string | null;
  sourcePid: number | null;
}

interface ProcessState {
  image: string | null;
  pid: number | null;
  startTimeMs: number | null;
  sha256: string | null;
  signer: Signer | null;
  cmdline: string | null;
  user: string | null;
  parent: ParentInfo | null;
  parentGuid: string | null;
  libraries: Array<{ timeMs: number; path: string }>;
  injections: InjectionEvidence[];
}

interface Pending {
  kind: 'dns' | 'run' | 'connection' | 'exit';
  timeMs: number;
  hostKey: string;
  host: HostRef;
  guid: string | null;
  event: SysmonEvent;
  origin: Origin;
  connection?: ConnectionEvent;
  /** The log's own name for the remote end (`DestinationHostname`), used when no DNS answer names it. */
  remoteNameFallback?: string | null;
}

const RANK: Record<Pending['kind'], number> = { dns: 0, run: 1, connection: 2, exit: 3 };

function unusualPlace(path: string): boolean {
  const p = path.toLowerCase().replace(/\//g, '\\');
  return UNUSUAL_DIRS.some((d) => p.includes(d));
}

function int(v: string | undefined, min: number, max: number): number | null {
  if (v === undefined) return null;
  const t = v.trim();
  if (!/^\d{1,10}$/.test(t)) return null;
  const n = Number(t);
  return n >= min && n <= max ? n : null;
}

function signerOf(f: Map<string, string>): Signer {
  const signed = f.get('signed')?.trim().toLowerCase();
  if (signed === 'false') return { status: 'unsigned', subject: null, vendor: null };
  const signature = known(f.get('signature'));
  const status = f.get('signaturestatus')?.trim().toLowerCase();
  if (signed !== 'true' && status === undefined) return { ...UNKNOWN_SIGNER };
  // Sysmon gives one signer text ("Microsoft Windows"); it serves as subject and vendor,
  // matched by substring against the known-vendor list.
  return { status: status === 'valid' ? 'valid' : 'invalid', subject: signature, vendor: signature };
}

export class SysmonReader {
  private readonly opts: SysmonReaderOptions;
  private readonly processes = new Map<string, ProcessState>();
  /** `hostKey|ip` -> the latest DNS answer naming it, in event time order. */
  private readonly dns = new Map<string, { query: string; expiresMs: number }>();
  private readonly reorder: ReorderBuffer<Pending>;
  private readonly injected = new Set<string>();
  private readonly hashed = new Set<string>();
  private readonly counts = {
    nonSysmonLines: 0,
    unusedSysmonEvents: 0,
    connections: 0,
    connectionsWithoutPid: 0,
    dnsAnswers: 0,
    dnsWithoutAddresses: 0,
    reverseDnsNames: 0,
    processRuns: 0,
    processRunsWithoutHash: 0,
    errors: 0,
  };
  private readonly byEventId = new Map<number, number>();
  private readonly routine: RoutineAccess;
  private readonly hostIds = new HostIds();

  constructor(opts: Partial<SysmonReaderOptions> = {}) {
    this.opts = { ...DEFAULT_SYSMON_OPTIONS, ...opts };
    this.routine = new RoutineAccess(this.opts.processAccessIgnore);
    // Connections wait for the indicators stamped up to injectionLeadMs after them; everything
    // else waits as long, so the records of a host still leave in time order.
    this.reorder = new ReorderBuffer<Pending>(
      this.opts.reorderWindowMs + this.opts.injectionLeadMs,
      this.opts.maxBufferedPerHost,
      this.opts.rewindMs,
    );
  }

  /** The channel names as first written, by lower-cased name ("Security" and "security" are one). */
  private readonly channels = new Map<string, string>();

  /** Counts a line that is not a Windows event at all (the caller skipped it). */
  countNonSysmon(lines: LineTally | null = null): void {
    this.counts.nonSysmonLines++;
    if (lines !== null) tally(lines.skipped, 'not a Windows event');
  }

  private channelReason(channel: string): string {
    if (channel === '') return 'Windows event of no channel';
    const key = channel.toLowerCase();
    let name = this.channels.get(key);
    if (name === undefined) {
      name = channel;
      if (this.channels.size < 1_000) this.channels.set(key, name);
    }
    return `channel ${name}`;
  }

  /**
   * Feeds one parsed line; returns the records (and errors) now ready, each
   * host in time order. `lines` (when given) counts where the line went unless
   * it is a record or an error.
   */
  push(o: JsonObject, origin: Origin, lines: LineTally | null = null): ReaderItem[] {
    const c = classifyWindowsEvent(o);
    if (c.kind !== 'sysmon') {
      this.counts.nonSysmonLines++;
      if (lines !== null) tally(lines.skipped, c.kind === 'other-windows' ? this.channelReason(c.channel) : 'not a Windows event');
      return NO_ITEMS;
    }
    const ev = c.event;
    if (lines !== null) lines.sysmonEvents++;
    this.byEventId.set(ev.eventId, (this.byEventId.get(ev.eventId) ?? 0) + 1);
    if (!USED_EVENTS.has(ev.eventId)) {
      this.counts.unusedSysmonEvents++;
      if (lines !== null) tally(lines.skipped, `Sysmon event ${ev.eventId}`);
      return NO_ITEMS;
    }
    if (ev.timeMs === null) {
      return [
        ev.timeText === null
          ? this.error('missing-field', `Sysmon event ${ev.eventId}: no UtcTime (nor @timestamp)`, origin)
          : this.error('bad-value', `Sysmon event ${ev.eventId}: ${ev.timeText} is not a time of the years 1970-9999`, origin),
      ];
    }
    const hostId = this.hostIds.of(ev.hostname);
    if (hostId === '') return [this.error('missing-field', `Sysmon event ${ev.eventId}: no Hostname`, origin)];
    const host: HostRef = { id: hostId, org: this.opts.org, name: ev.hostname.trim() };
    const hostKey = `${host.org}/${host.id}`;
    const timeMs = ev.timeMs;
    const f = ev.fields;
    const guidOf = (name: string): string | null => {
      const g = known(f.get(name));
      return g === null ? null : normaliseGuid(g);
    };
    const guid = guidOf('processguid');
    const pending: Pending = { kind: 'run', timeMs, hostKey, host, guid, event: ev, origin };
    const joined = (): ReaderItem[] => {
      if (lines !== null) tally(lines.joined, `Sysmon event ${ev.eventId}`);
      return NO_ITEMS;
    };
    switch (ev.eventId) {
      case 1:
        if (guid === null) return [this.error('missing-field', 'Sysmon event 1: no ProcessGuid', origin)];
        this.onProcessCreate(hostKey, guid, ev);
        // Without a SHA256 it makes no process run, but its command line and parent join the process's records.
        if (sha256FromHashes(f.get('hashes') ?? '') === null) {
          this.counts.processRunsWithoutHash++;
          if (lines !== null) tally(lines.joined, 'Sysmon event 1 without a SHA256');
          return NO_ITEMS;
        }
        break;
      case 3: {
        const built = this.buildConnection(ev, host, origin);
        if (built.type === 'error') return [built];
        pending.kind = 'connection';
        pending.connection = built;
        pending.remoteNameFallback = known(f.get(built.direction === 'outbound' ? 'destinationhostname' : 'sourcehostname'));
        break;
      }
      case 5:
        if (guid === null) return joined();
        pending.kind = 'exit';
        joined();
        break;
      case 7:
        if (guid !== null) this.onImageLoad(hostKey, guid, ev);
        return joined();
      case 8:
        this.onRemoteThread(hostKey, guidOf('sourceprocessguid'), guidOf('targetprocessguid'), ev);
        return joined();
      case 10:
        this.onProcessAccess(hostKey, guidOf('sourceprocessguid'), guidOf('targetprocessguid'), ev);
        return joined();
      case 22:
        if (known(f.get('queryname')) === null || ipsFromQueryResults(f.get('queryresults') ?? '').length === 0) {
          // A failed lookup or a CNAME-only answer names no address.
          this.counts.dnsWithoutAddresses++;
          if (lines !== null) tally(lines.skipped, 'Sysmon event 22 without an address');
          return NO_ITEMS;
        }
        pending.kind = 'dns';
        break;
    }
    const ready: Pending[] = [];
    const sortMs = pending.kind === 'dns' ? timeMs - this.opts.dnsLeadMs : timeMs;
    this.reorder.push(hostKey, sortMs, RANK[pending.kind], pending, ready);
    return this.emit(ready);
  }

  /** End of input: joins and returns everything still held in the reorder window. */
  flush(): ReaderItem[] {
    const ready: Pending[] = [];
    this.reorder.flush(ready);
    return this.emit(ready);
  }

  stats(): SysmonStats {
    const sysmonEvents: Record<string, number> = {};
    for (const [id, n] of [...this.byEventId].sort((a, b) => a[0] - b[0])) sysmonEvents[String(id)] = n;
    const r = this.reorder.stats();
    return {
      sysmonEvents,
      ...this.counts,
      injectedProcesses: this.injected.size,
      hashedProcesses: this.hashed.size,
      lateEvents: r.lateTotal,
      rewinds: r.rewindTotal,
      reorderOverflows: r.overflowTotal,
    };
  }

  private error(code: RecordError['code'], message: string, origin: Origin): RecordError {
    this.counts.errors++;
    return { type: 'error', code, message, origin };
  }

  private state(hostKey: string, guid: string): ProcessState {
    const key = `${hostKey}|${guid}`;
    let s = this.processes.get(key);
    if (s === undefined) {
      s = {
        image: null,
        pid: null,
        startTimeMs: null,
        sha256: null,
        signer: null,
        cmdline: null,
        user: null,
        parent: null,
        parentGuid: null,
        libraries: [],
        injections: [],
      };
      this.processes.set(key, s);
      if (this.processes.size > this.opts.maxProcesses) {
        const oldest = this.processes.keys().next().value;
        if (oldest !== undefined) this.processes.delete(oldest);
      }
    }
    return s;
  }

  private track(set: Set<string>, key: string): void {
    if (set.size < MAX_DISTINCT_TRACKED) set.add(key);
  }

  private onProcessCreate(hostKey: string, guid: string, ev: SysmonEvent): void {
    const f = ev.fields;
    const s = this.state(hostKey, guid);
    s.image = known(f.get('image')) ?? s.image;
    s.pid = int(f.get('processid'), 0, 2 ** 32 - 1) ?? s.pid;
    s.startTimeMs = ev.timeMs;
    const sha = sha256FromHashes(f.get('hashes') ?? '');
    if (sha !== null) {
      s.sha256 = sha;
      this.track(this.hashed, `${hostKey}|${guid}`);
    }
    s.cmdline = known(f.get('commandline')) ?? s.cmdline;
    s.user = known(f.get('user')) ?? s.user;
    const parentPid = int(f.get('parentprocessid'), 0, 2 ** 32 - 1);
    const parentPath = known(f.get('parentimage'));
    const parentCmd = known(f.get('parentcommandline'));
    if (parentPid !== null || parentPath !== null || parentCmd !== null)
      s.parent = { pid: parentPid, path: parentPath, cmdline: parentCmd };
    const parentGuid = known(f.get('parentprocessguid'));
    if (parentGuid !== null) s.parentGuid = normaliseGuid(parentGuid);
  }

  private onImageLoad(hostKey: string, guid: string, ev: SysmonEvent): void {
    const f = ev.fields;
    const loaded = known(f.get('imageloaded'));
    if (loaded === null) return;
    const image = known(f.get('image'));
    const s = this.state(hostKey, guid);
    if (image !== null && normaliseWindowsPath(loaded) === normaliseWindowsPath(image)) {
      // The executable's own mapping: its signature, and its hash if Event 1 was missed.
      s.signer = signerOf(f);
      s.image ??= image;
      const sha = sha256FromHashes(f.get('hashes') ?? '');
      if (s.sha256 === null && sha !== null) {
        s.sha256 = sha;
        this.track(this.hashed, `${hostKey}|${guid}`);
      }
      return;
    }
    if (unusualPlace(loaded) && s.libraries.length < MAX_LIBRARIES && !s.libraries.some((l) => l.path === loaded)) {
      s.libraries.push({ timeMs: ev.timeMs ?? 0, path: loaded });
    }
  }

  private addEvidence(hostKey: string, target: string, e: InjectionEvidence): void {
    const s = this.state(hostKey, target);
    const list = s.injections;
    if (list.some((x) => x.indicator === e.indicator && x.timeMs === e.timeMs && x.sourceGuid === e.sourceGuid)) return;
    if (list.length >= MAX_INJECTION_EVENTS) {
      // Full: a later event only matters if it is earlier than one kept (events arrive out of order by seconds).
      const latest = list.reduce((a, b) => (b.timeMs > a.timeMs ? b : a));
      if (latest.timeMs <= e.timeMs) return;
      list.splice(list.indexOf(latest), 1);
    }
    list.push(e);
  }

  /** The source of an Event 8 or 10, or null when it is the target itself (a process opening or threading into itself). */
  private sourceOf(source: string | null, target: string, f: Map<string, string>): { guid: string | null; pid: number | null } | null {
    const sourcePid = int(f.get('sourceprocessid'), 0, 2 ** 32 - 1);
    if (source !== null ? source === target : sourcePid !== null && sourcePid === int(f.get('targetprocessid'), 0, 2 ** 32 - 1))
      return null;
    return { guid: source, pid: sourcePid };
  }

  private onRemoteThread(hostKey: string, source: string | null, target: string | null, ev: SysmonEvent): void {
    if (target === null) return;
    const from = this.sourceOf(source, target, ev.fields);
    if (from === null) return;
    const image = basename(known(ev.fields.get('sourceimage')) ?? 'unknown');
    const indicator = `sysmon-create-remote-thread:${image}`;
    this.addEvidence(hostKey, target, { indicator, timeMs: ev.timeMs ?? 0, access: false, sourceGuid: from.guid, sourcePid: from.pid });
  }

  private onProcessAccess(hostKey: string, source: string | null, target: string | null, ev: SysmonEvent): void {
    const f = ev.fields;
    if (target === null) return;
    const from = this.sourceOf(source, target, f);
    if (from === null) return;
    const raw = f.get('grantedaccess')?.trim() ?? '';
    const access = /^0x[0-9a-f]+$/i.test(raw) ? parseInt(raw.slice(2), 16) : /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(access) || (access & INJECTION_ACCESS_MASK) === 0) return;
    const sourceImage = known(f.get('sourceimage')) ?? 'unknown';
    if (this.routine.isRoutineSource(sourceImage)) return;
    const indicator = `sysmon-process-access:${basename(sourceImage)}:0x${access.toString(16)}`;
    this.addEvidence(hostKey, target, { indicator, timeMs: ev.timeMs ?? 0, access: true, sourceGuid: from.guid, sourcePid: from.pid });
  }

  /** An Event 10 from the target's own parent within processAccessParentMs of the target's creation: routine. */
  private parentAtCreation(s: ProcessState, e: InjectionEvidence): boolean {
    if (!e.access || s.startTimeMs === null || Math.abs(e.timeMs - s.startTimeMs) > this.opts.processAccessParentMs) return false;
    if (e.sourceGuid !== null && s.parentGuid !== null) return e.sourceGuid === s.parentGuid;
    return e.sourcePid !== null && s.parent?.pid === e.sourcePid;
  }

  /** The indicators that count for a connection at connMs, earliest first, each once. */
  private indicatorsFor(s: ProcessState, connMs: number): string[] {
    const counted = s.injections
      .filter((e) => e.timeMs <= connMs + this.opts.injectionLeadMs && !this.parentAtCreation(s, e))
      .sort((a, b) => a.timeMs - b.timeMs);
    const out: string[] = [];
    for (const e of counted) if (!out.includes(e.indicator) && out.length < MAX_INDICATORS) out.push(e.indicator);
    return out;
  }

  /** The connection as far as Event 3 alone tells; the join fills process and hostname later. */
  private buildConnection(ev: SysmonEvent, host: HostRef, origin: Origin): ConnectionEvent | RecordError {
    const f = ev.fields;
    const need = (name: string, label: string): string | RecordError => {
      const v = f.get(name);
      return v === undefined || v.trim() === ''
        ? this.error('missing-field', `Sysmon event 3: missing field "${label}"`, origin)
        : v.trim();
    };
    const bad = (label: string, v: string): RecordError =>
      this.error('bad-value', `Sysmon event 3: field "${label}" has a bad value "${v.slice(0, 60)}"`, origin);
    const fields: Array<[string, string]> = [
      ['destinationip', 'DestinationIp'],
      ['destinationport', 'DestinationPort'],
      ['protocol', 'Protocol'],
    ];
    const got: string[] = [];
    for (const [name, label] of fields) {
      const v = need(name, label);
      if (typeof v !== 'string') return v;
      got.push(v);
    }
    const [dIp, dPort, proto] = got as [string, string, string];
    const destIp = normaliseIp(dIp);
    if (destIp === null) return bad('DestinationIp', dIp);
    const destPort = int(dPort, 0, 65535);
    if (destPort === null) return bad('DestinationPort', dPort);
    const protocol = proto.toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') return bad('Protocol', proto);
    // Some exports leave ProcessId out of every event; the join may still know it from Event 1.
    const pidText = f.get('processid')?.trim() ?? '';
    const pid = pidText === '' ? UNKNOWN_PID : int(pidText, 0, 2 ** 32 - 1);
    if (pid === null) return bad('ProcessId', pidText);
    const srcIp = normaliseIp(f.get('sourceip') ?? '');
    const srcPort = int(f.get('sourceport'), 0, 65535);
    const source = srcIp !== null && srcPort !== null ? { ip: srcIp, port: srcPort } : null;
    // Sysmon names the TCP client "source" whichever side initiated, so an
    // inbound connection's remote end is its source.
    const outbound = f.get('initiated')?.trim().toLowerCase() !== 'false';
    const dest = { ip: destIp, port: destPort };
    const remote = outbound ? dest : (source ?? dest);
    const local = outbound ? source : source !== null ? dest : null;
    return {
      type: 'connection',
      timeMs: ev.timeMs ?? 0,
      host,
      process: {
        pid,
        tid: null,
        startTimeMs: null,
        path: known(f.get('image')),
        sha256: null,
        signer: { ...UNKNOWN_SIGNER },
        injection: { injected: false, indicators: [] },
        cmdline: null,
        user: known(f.get('user')),
        parent: null,
        unusualLibraries: [],
      },
      protocol,
      direction: outbound ? 'outbound' : 'inbound',
      remote: { ip: remote.ip, port: remote.port, hostname: null },
      local,
      origin,
    };
  }

  private emit(ready: Pending[]): ReaderItem[] {
    if (ready.length === 0) return NO_ITEMS;
    const out: ReaderItem[] = [];
    for (const p of ready) {
      if (p.kind === 'dns') this.emitDns(p, out);
      else if (p.kind === 'run') this.emitRun(p, out);
      else if (p.kind === 'connection') this.emitConnection(p, out);
      else if (p.guid !== null) this.processes.delete(`${p.hostKey}|${p.guid}`);
    }
    return out;
  }

  private emitDns(p: Pending, out: ReaderItem[]): void {
    const query = known(p.event.fields.get('queryname'));
    const ips = ipsFromQueryResults(p.event.fields.get('queryresults') ?? '');
    if (query === null || ips.length === 0) return; // push() skipped these
    const ttl = this.opts.dnsTtlSeconds;
    const expiresMs = p.timeMs + ttl * 1000 + this.opts.dnsGraceMs;
    for (const ip of ips) {
      const key = `${p.hostKey}|${ip}`;
      this.dns.delete(key);
      this.dns.set(key, { query, expiresMs });
      if (this.dns.size > this.opts.maxDnsEntries) {
        const oldest = this.dns.keys().next().value;
        if (oldest !== undefined) this.dns.delete(oldest);
      }
    }
    this.counts.dnsAnswers++;
    out.push({ type: 'dns', timeMs: p.timeMs, host: p.host, query, answers: ips.map((ip) => ({ ip, ttl })), origin: p.origin });
  }

  private emitRun(p: Pending, out: ReaderItem[]): void {
    const sha256 = sha256FromHashes(p.event.fields.get('hashes') ?? '');
    if (sha256 === null) return; // push() joined these
    this.counts.processRuns++;
    out.push({ type: 'process', timeMs: p.timeMs, host: p.host, sha256, path: known(p.event.fields.get('image')), origin: p.origin });
  }

  private emitConnection(p: Pending, out: ReaderItem[]): void {
    const c = p.connection;
    if (c === undefined) return;
    const s = p.guid !== null ? this.processes.get(`${p.hostKey}|${p.guid}`) : undefined;
    if (p.guid !== null) c.process.uid = p.guid;
    if (s !== undefined) {
      const proc = c.process;
      proc.startTimeMs = s.startTimeMs;
      if (proc.pid === UNKNOWN_PID && s.pid !== null) proc.pid = s.pid;
      proc.path ??= s.image;
      proc.sha256 = s.sha256;
      if (s.signer !== null) proc.signer = { ...s.signer };
      proc.cmdline = s.cmdline;
      proc.user = s.user ?? proc.user;
      proc.parent = s.parent === null ? null : { ...s.parent };
      const indicators = this.indicatorsFor(s, c.timeMs);
      proc.injection = { injected: indicators.length > 0, indicators };
      if (indicators.length > 0) this.track(this.injected, `${p.hostKey}|${p.guid}`);
      proc.unusualLibraries = s.libraries.filter((l) => l.timeMs <= c.timeMs).map((l) => l.path);
    }
    const answer = this.dns.get(`${p.hostKey}|${c.remote.ip}`);
    if (answer !== undefined && c.timeMs <= answer.expiresMs) {
      c.remote.hostname = answer.query;
    } else if (p.remoteNameFallback !== undefined && p.remoteNameFallback !== null) {
      // Sysmon's own name for the address is its reverse lookup (PTR), not the name asked for.
      c.remote.hostname = p.remoteNameFallback;
      c.remote.reverseDns = true;
      this.counts.reverseDnsNames++;
    }
    if (c.process.pid === UNKNOWN_PID && c.process.path?.toLowerCase() !== 'system idle process') this.counts.connectionsWithoutPid++;
    this.counts.connections++;
    out.push(c);
  }
}
