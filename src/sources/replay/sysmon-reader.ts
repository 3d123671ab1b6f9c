// Turns Sysmon events into rarecon records. Sysmon spreads what the detector
// needs over several events of one process (ProcessGuid): the image hash and
// command line (Event 1), the image's signature and odd libraries (Event 7),
// injections (Events 8 and 10), the DNS answers of the host (Event 22) and the
// connection itself (Event 3). State events are folded in as they arrive,
// with their times; the events that become records are put back in time order
// per host and joined when they leave the reorder window, so a connection only
// sees the injections and DNS answers that came before it.
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
import { normaliseIp } from '../../model/address.js';
import { DEFAULT_ORG } from './ndjson-reader.js';
import { ReorderBuffer } from './reorder-buffer.js';
import {
  basename,
  classifyWindowsEvent,
  hostIdOf,
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
   * An Event 22 may be stamped a little after the connection it served (seen:
   * 8 ms); answers this much newer than a connection still name it.
   */
  dnsLeadMs: number;
  /**
   * Event 10 sources not taken as injection, by image path or bare file name
   * (case-insensitive). Empty by default, as DETECTION.md section 5 reads; note that
   * csrss.exe, lsass.exe and services.exe open most new processes with such rights.
   */
  processAccessIgnore: readonly string[];
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
  dnsLeadMs: 1_000,
  processAccessIgnore: Object.freeze([]) as readonly string[],
  dnsTtlSeconds: 300,
  dnsGraceMs: 5 * 60_000,
  maxProcesses: 100_000,
  maxDnsEntries: 100_000,
  maxBufferedPerHost: 100_000,
});

export interface SysmonStats {
  /** Sysmon events read, by EventID. */
  sysmonEvents: Record<string, number>;
  /** Lines of other Windows channels or not Windows events at all: counted and skipped. */
  nonSysmonLines: number;
  connections: number;
  /** Connections whose log gave no ProcessId (pid reads 0). */
  connectionsWithoutPid: number;
  dnsAnswers: number;
  /** Event 22 with no address in its results (failed lookups, CNAME-only answers). */
  dnsWithoutAddresses: number;
  processRuns: number;
  /** Event 1 without a SHA256 in `Hashes` (Sysmon configured for other hashes only). */
  processRunsWithoutHash: number;
  /** Distinct processes with at least one injection indicator. */
  injectedProcesses: number;
  /** Distinct processes whose image SHA256 is known (Event 1, or Event 7 of the image). */
  hashedProcesses: number;
  /** Events that arrived later than the reorder window allows; passed on unsorted. */
  lateEvents: number;
  reorderOverflows: number;
  errors: number;
}

// PROCESS_CREATE_THREAD | PROCESS_VM_WRITE: the rights a remote thread or a code write needs.
const INJECTION_ACCESS_MASK = 0x2 | 0x20;
const UNUSUAL_DIRS = ['\\users\\', '\\appdata\\', '\\temp\\', '\\programdata\\', '\\downloads\\', '\\windows\\temp\\'];
const MAX_LIBRARIES = 32;
const MAX_INDICATORS = 16;
/** Distinct-process counters stop growing here; the stats are then a lower bound. */
const MAX_DISTINCT_TRACKED = 1_000_000;
const NO_ITEMS: ReaderItem[] = [];
/** The record type needs a pid; 0 stands for "the log did not say" (counted in `connectionsWithoutPid`). */
const UNKNOWN_PID = 0;

interface ProcessState {
  image: string | null;
  pid: number | null;
  startTimeMs: number | null;
  sha256: string | null;
  signer: Signer | null;
  cmdline: string | null;
  user: string | null;
  parent: ParentInfo | null;
  libraries: Array<{ timeMs: number; path: string }>;
  /** Indicator -> earliest time seen. */
  injections: Map<string, number>;
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
    connections: 0,
    connectionsWithoutPid: 0,
    dnsAnswers: 0,
    dnsWithoutAddresses: 0,
    processRuns: 0,
    processRunsWithoutHash: 0,
    errors: 0,
  };
  private readonly byEventId = new Map<number, number>();
  private readonly ignoredAccess: Set<string>;

  constructor(opts: Partial<SysmonReaderOptions> = {}) {
    this.opts = { ...DEFAULT_SYSMON_OPTIONS, ...opts };
    this.ignoredAccess = new Set(this.opts.processAccessIgnore.map((p) => p.trim().toLowerCase()));
    this.reorder = new ReorderBuffer<Pending>(this.opts.reorderWindowMs, this.opts.maxBufferedPerHost);
  }

  /** Counts a line that is not a Sysmon event (the caller skipped it). */
  countNonSysmon(): void {
    this.counts.nonSysmonLines++;
  }

  /** Feeds one parsed line; returns the records (and errors) now ready, each host in time order. */
  push(o: JsonObject, origin: Origin): ReaderItem[] {
    const c = classifyWindowsEvent(o);
    if (c.kind !== 'sysmon') {
      this.counts.nonSysmonLines++;
      return NO_ITEMS;
    }
    const ev = c.event;
    this.byEventId.set(ev.eventId, (this.byEventId.get(ev.eventId) ?? 0) + 1);
    if (![1, 3, 5, 7, 8, 10, 22].includes(ev.eventId)) return NO_ITEMS;
    if (ev.timeMs === null) {
      return [
        this.error(ev.fields.has('utctime') ? 'bad-value' : 'missing-field', `Sysmon event ${ev.eventId}: no readable UtcTime`, origin),
      ];
    }
    if (hostIdOf(ev.hostname) === '') return [this.error('missing-field', `Sysmon event ${ev.eventId}: no Hostname`, origin)];
    const host: HostRef = { id: hostIdOf(ev.hostname), org: this.opts.org, name: ev.hostname.trim() };
    const hostKey = `${host.org}/${host.id}`;
    const timeMs = ev.timeMs;
    const f = ev.fields;
    const guidOf = (name: string): string | null => {
      const g = known(f.get(name));
      return g === null ? null : normaliseGuid(g);
    };
    const guid = guidOf('processguid');
    const pending: Pending = { kind: 'run', timeMs, hostKey, host, guid, event: ev, origin };
    switch (ev.eventId) {
      case 1:
        if (guid === null) return [this.error('missing-field', 'Sysmon event 1: no ProcessGuid', origin)];
        this.onProcessCreate(hostKey, guid, ev);
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
        if (guid === null) return NO_ITEMS;
        pending.kind = 'exit';
        break;
      case 7:
        if (guid !== null) this.onImageLoad(hostKey, guid, ev);
        return NO_ITEMS;
      case 8:
        this.onRemoteThread(hostKey, guidOf('sourceprocessguid'), guidOf('targetprocessguid'), ev);
        return NO_ITEMS;
      case 10:
        this.onProcessAccess(hostKey, guidOf('sourceprocessguid'), guidOf('targetprocessguid'), ev);
        return NO_ITEMS;
      case 22:
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
        libraries: [],
        injections: new Map(),
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
  }

  private onImageLoad(hostKey: string, guid: string, ev: SysmonEvent): void {
    const f = ev.fields;
    const loaded = known(f.get('imageloaded'));
    if (loaded === null) return;
    const image = known(f.get('image'));
    const s = this.state(hostKey, guid);
    if (image !== null && loaded.toLowerCase() === image.toLowerCase()) {
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

  private addIndicator(hostKey: string, guid: string, indicator: string, timeMs: number): void {
    const s = this.state(hostKey, guid);
    const seen = s.injections.get(indicator);
    if (seen !== undefined) {
      if (timeMs < seen) s.injections.set(indicator, timeMs);
    } else if (s.injections.size < MAX_INDICATORS) {
      s.injections.set(indicator, timeMs);
    }
    this.track(this.injected, `${hostKey}|${guid}`);
  }

  private onRemoteThread(hostKey: string, source: string | null, target: string | null, ev: SysmonEvent): void {
    if (target === null || source === target) return;
    const from = basename(known(ev.fields.get('sourceimage')) ?? 'unknown');
    this.addIndicator(hostKey, target, `sysmon-create-remote-thread:${from}`, ev.timeMs ?? 0);
  }

  private onProcessAccess(hostKey: string, source: string | null, target: string | null, ev: SysmonEvent): void {
    const f = ev.fields;
    if (target === null) return;
    if (source === target) return;
    if (source === null && f.get('sourceprocessid') === f.get('targetprocessid')) return;
    const raw = f.get('grantedaccess')?.trim() ?? '';
    const access = /^0x[0-9a-f]+$/i.test(raw) ? parseInt(raw.slice(2), 16) : /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(access) || (access & INJECTION_ACCESS_MASK) === 0) return;
    const sourceImage = known(f.get('sourceimage')) ?? 'unknown';
    const from = basename(sourceImage);
    if (this.ignoredAccess.has(sourceImage.toLowerCase()) || this.ignoredAccess.has(from.toLowerCase())) return;
    this.addIndicator(hostKey, target, `sysmon-process-access:${from}:0x${access.toString(16)}`, ev.timeMs ?? 0);
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
    if (query === null || ips.length === 0) {
      this.counts.dnsWithoutAddresses++;
      return;
    }
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
    if (sha256 === null) {
      this.counts.processRunsWithoutHash++;
      return;
    }
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
      // Only what happened before the connection: a later injection did not make this one.
      const indicators = [...s.injections]
        .filter(([, t]) => t <= c.timeMs)
        .sort((a, b) => a[1] - b[1])
        .map(([i]) => i);
      proc.injection = { injected: indicators.length > 0, indicators };
      proc.unusualLibraries = s.libraries.filter((l) => l.timeMs <= c.timeMs).map((l) => l.path);
    }
    const answer = this.dns.get(`${p.hostKey}|${c.remote.ip}`);
    if (answer !== undefined && c.timeMs <= answer.expiresMs) c.remote.hostname = answer.query;
    else c.remote.hostname = p.remoteNameFallback ?? null;
    if (c.process.pid === UNKNOWN_PID && c.process.path?.toLowerCase() !== 'system idle process') this.counts.connectionsWithoutPid++;
    this.counts.connections++;
    out.push(c);
  }
}
