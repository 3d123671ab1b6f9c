// One Sysmon event, whichever exporter wrote it, as a flat field map. NXLog
// writes the event data as top-level fields; Winlogbeat nests it under
// `winlog.event_data` (or flattens it to dotted keys). Field names are looked
// up case-insensitively since Sysmon itself spells `SourceProcessGuid` in
// Event 8 and `SourceProcessGUID` in Event 10.
import { isJsonObject, timeFromNumber, timeFromString, type JsonObject } from './field-reader.js';
import { normaliseIp } from '../../model/address.js';
import { isEventTimeMs } from '../../model/records.js';

export const SYSMON_PROVIDER = 'microsoft-windows-sysmon';

export interface SysmonEvent {
  eventId: number;
  /**
   * From `UtcTime` (UTC), else (no `UtcTime` at all) the exporter's
   * `@timestamp`; null when the one that is there does not read as an instant
   * of the years 1970-9999, or neither is there.
   */
  timeMs: number | null;
  /** The time field as written, for an error message; null when the event has none. */
  timeText: string | null;
  /** As written, e.g. `WORKSTATION5.theshire.local`; '' when absent. */
  hostname: string;
  /** Event data by lower-cased field name; values as strings, HTML entities decoded. */
  fields: Map<string, string>;
}

export type Classified =
  | { kind: 'sysmon'; event: SysmonEvent }
  /** A Windows event of another channel (Security, PowerShell, ...), by its channel or provider as written ('' when neither). */
  | { kind: 'other-windows'; channel: string }
  | { kind: 'not-windows' };

function channelOf(...candidates: unknown[]): string {
  for (const c of candidates) if (typeof c === 'string' && c.trim() !== '') return c.trim().slice(0, 80);
  return '';
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** `&lt;unknown process&gt;` -> `<unknown process>`; exporters escape values for XML. */
export function unescapeHtml(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-zA-Z]+);/g, (whole, ent: string) => {
    if (ent[0] === '#') {
      const code = ent[1] === 'x' || ent[1] === 'X' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      return Number.isInteger(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[ent.toLowerCase()] ?? whole;
  });
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return unescapeHtml(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * NXLog's own fields whose lower-cased names are Sysmon event data names:
 * `ProcessID` and `ThreadID` are the process that wrote the event (Sysmon's
 * service), not the event's own `ProcessId`.
 */
const NXLOG_SYSTEM_FIELDS: ReadonlySet<string> = new Set(['ProcessID', 'ThreadID']);
const NO_SKIP: ReadonlySet<string> = new Set();

function addFields(into: Map<string, string>, o: JsonObject, skip: ReadonlySet<string> = NO_SKIP): void {
  for (const k of Object.keys(o)) {
    if (skip.has(k)) continue;
    const s = scalar(o[k]);
    if (s !== undefined) into.set(k.toLowerCase(), s);
  }
}

/** The process ids each event's data holds (Sysmon schema): an export that left them out may still have them in its message. */
const PID_FIELDS: Record<number, readonly string[]> = {
  1: ['processid', 'parentprocessid'],
  3: ['processid'],
  5: ['processid'],
  7: ['processid'],
  8: ['sourceprocessid', 'targetprocessid'],
  10: ['sourceprocessid', 'targetprocessid'],
  22: ['processid'],
};

/**
 * Fills event data the export left out from Sysmon's rendered message
 * (`Key: value`, one a line), e.g. `ProcessId` in an NXLog export that carries
 * only its own `ProcessID`. Fields the export has are kept.
 */
function addMessageFields(into: Map<string, string>, eventId: number, message: unknown): void {
  if (typeof message !== 'string' || message === '') return;
  const wanted = PID_FIELDS[eventId];
  if (wanted === undefined || wanted.every((k) => into.has(k))) return;
  for (const line of message.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i).trim().toLowerCase();
    if (!/^[a-z]+$/.test(key) || into.has(key)) continue;
    into.set(key, unescapeHtml(line.slice(i + 1).trim()));
  }
}

const UTC_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?$/;

/** Sysmon `UtcTime`, `2020-10-12 22:34:38.169`, always UTC; null when it does not read or is outside the years 1970-9999. */
export function parseUtcTime(s: string): number | null {
  const m = UTC_TIME.exec(s.trim());
  if (m === null) return null;
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  // Date.UTC rolls 2020-13-45 over into 2021; a field that is out of range is a bad value instead.
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const t = Date.UTC(Number(m[1]), month - 1, day, hour, minute, second, ms);
  return isEventTimeMs(t) && new Date(t).getUTCDate() === day ? t : null;
}

/** The exporter's `@timestamp`: an RFC 3339 string (or epoch ms) of the years 1970-9999. */
function exporterTime(v: unknown): number | null {
  const t = typeof v === 'string' ? timeFromString(v) : typeof v === 'number' ? timeFromNumber(v) : NaN;
  return Number.isFinite(t) ? t : null;
}

/** The event's time: its own `UtcTime` when it has one (a bad one is not replaced by the exporter's), else `@timestamp`. */
function eventTime(utc: string | undefined, timestamp: unknown): Pick<SysmonEvent, 'timeMs' | 'timeText'> {
  if (utc !== undefined) return { timeMs: parseUtcTime(utc), timeText: `UtcTime "${utc.slice(0, 40)}"` };
  if (timestamp === undefined || timestamp === null) return { timeMs: null, timeText: null };
  return { timeMs: exporterTime(timestamp), timeText: `@timestamp ${JSON.stringify(timestamp).slice(0, 42)}` };
}

function eventIdOf(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) ? n : null;
}

function isSysmonName(v: unknown): boolean {
  return typeof v === 'string' && v.toLowerCase().startsWith(SYSMON_PROVIDER);
}

/** Looks like an exported Windows event at all (used to detect a file's format). */
export function isWindowsEventObject(o: JsonObject): boolean {
  return (
    'EventID' in o || 'SourceName' in o || 'Channel' in o || isJsonObject(o.winlog) || 'winlog.event_id' in o || 'winlog.provider_name' in o
  );
}

function classifyWinlogbeat(o: JsonObject, w: JsonObject | null): Classified {
  const get = (k: string): unknown => (w !== null ? w[k] : o[`winlog.${k}`]);
  if (!isSysmonName(get('provider_name')) && !isSysmonName(get('channel')))
    return { kind: 'other-windows', channel: channelOf(get('channel'), get('provider_name')) };
  const eventId = eventIdOf(get('event_id'));
  if (eventId === null) return { kind: 'other-windows', channel: channelOf(get('channel'), get('provider_name')) };
  const fields = new Map<string, string>();
  const data = get('event_data');
  if (isJsonObject(data)) addFields(fields, data);
  if (w === null) {
    for (const k of Object.keys(o)) {
      if (!k.startsWith('winlog.event_data.')) continue;
      const s = scalar(o[k]);
      if (s !== undefined) fields.set(k.slice('winlog.event_data.'.length).toLowerCase(), s);
    }
  }
  // Winlogbeat's own process (`winlog.process.pid`) is the one that wrote the event: never read.
  addMessageFields(fields, eventId, o.message ?? o.Message);
  const computer = scalar(get('computer_name'));
  return {
    kind: 'sysmon',
    event: { eventId, ...eventTime(fields.get('utctime'), o['@timestamp']), hostname: computer ?? '', fields },
  };
}

/** Sorts a parsed JSON object into Sysmon, another Windows channel, or neither. */
export function classifyWindowsEvent(o: JsonObject): Classified {
  const winlog = isJsonObject(o.winlog) ? o.winlog : null;
  if (winlog !== null || 'winlog.event_id' in o || 'winlog.provider_name' in o) return classifyWinlogbeat(o, winlog);
  if (!('EventID' in o) && !('SourceName' in o) && !('Channel' in o)) return { kind: 'not-windows' };
  if (!isSysmonName(o.SourceName) && !isSysmonName(o.Channel) && !isSysmonName(o.ProviderName))
    return { kind: 'other-windows', channel: channelOf(o.Channel, o.SourceName, o.ProviderName) };
  const eventId = eventIdOf(o.EventID);
  if (eventId === null) return { kind: 'other-windows', channel: channelOf(o.Channel, o.SourceName, o.ProviderName) };
  const fields = new Map<string, string>();
  addFields(fields, o, NXLOG_SYSTEM_FIELDS);
  addMessageFields(fields, eventId, o.Message);
  return {
    kind: 'sysmon',
    event: {
      eventId,
      ...eventTime(fields.get('utctime'), o['@timestamp']),
      hostname: fields.get('hostname') ?? fields.get('computer') ?? '',
      fields,
    },
  };
}

/**
 * Host ids: the computer name as written, fully qualified when the log gives
 * it (DETECTION.md section 5), so `WS5.theshire.local` and `WS5.mordor.local`
 * are two hosts. Computer names are case-insensitive: a name is written as it
 * was first seen (`ws5.THESHIRE.local` is `WS5.theshire.local` once that was
 * seen). Exporters write some events with the short name only (`WS5`): such a
 * name is the host of that name's one fully qualified form seen so far, and
 * stays its own host when none was seen or several were.
 */
export class HostIds {
  /** Lower-cased first label -> the qualified name seen with it, or null once two different ones were. */
  private readonly qualified = new Map<string, string | null>();
  /** Lower-cased name -> its first spelling. */
  private readonly spelling = new Map<string, string>();

  of(hostname: string): string {
    const written = hostname.trim();
    const lower = written.toLowerCase();
    let name = this.spelling.get(lower);
    if (name === undefined) {
      name = written;
      if (this.spelling.size < 100_000) this.spelling.set(lower, name);
    }
    const dot = lower.indexOf('.');
    const label = dot === -1 ? lower : lower.slice(0, dot);
    if (dot !== -1) {
      const seen = this.qualified.get(label);
      if (seen === undefined) {
        if (this.qualified.size < 100_000) this.qualified.set(label, name);
      } else if (seen !== null && seen !== name) {
        this.qualified.set(label, null);
      }
      return name;
    }
    return this.qualified.get(label) ?? name;
  }
}

/** `{71B87C12-...}` and `71b87c12-...` are the same process. */
export function normaliseGuid(g: string): string {
  return g
    .trim()
    .replace(/^\{|\}$/g, '')
    .toLowerCase();
}

/** SHA256 from `SHA1=..,MD5=..,SHA256=..,IMPHASH=..`, lower-cased; null when absent. */
export function sha256FromHashes(hashes: string): string | null {
  const m = /(?:^|[,\s])SHA256=([0-9a-fA-F]{64})(?:$|[,\s])/i.exec(hashes);
  return m?.[1] !== undefined ? m[1].toLowerCase() : null;
}

/**
 * The addresses in an Event 22 `QueryResults` such as
 * `type:  5 cs9.wac.phicdn.net;::ffff:72.21.91.29;`: CNAME records (`type: N name`)
 * and names are skipped, IPv4-mapped addresses unwrapped.
 */
export function ipsFromQueryResults(results: string): string[] {
  const out: string[] = [];
  for (const token of results.split(';')) {
    const t = token.trim();
    if (t === '' || t === '-' || t.toLowerCase().startsWith('type:')) continue;
    const ip = normaliseIp(t);
    if (ip !== null && !out.includes(ip)) out.push(ip);
  }
  return out;
}

/** `&lt;unknown process&gt;`-style placeholders and `-` mean "not known". */
export function known(v: string | undefined): string | null {
  if (v === undefined) return null;
  const t = v.trim();
  if (t === '' || t === '-' || (t.startsWith('<') && t.endsWith('>'))) return null;
  return t;
}

export function basename(winPath: string): string {
  const i = Math.max(winPath.lastIndexOf('\\'), winPath.lastIndexOf('/'));
  return i === -1 ? winPath : winPath.slice(i + 1);
}
