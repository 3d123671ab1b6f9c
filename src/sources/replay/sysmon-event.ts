// One Sysmon event, whichever exporter wrote it, as a flat field map. NXLog
// writes the event data as top-level fields; Winlogbeat nests it under
// `winlog.event_data` (or flattens it to dotted keys). Field names are looked
// up case-insensitively since Sysmon itself spells `SourceProcessGuid` in
// Event 8 and `SourceProcessGUID` in Event 10.
import { isJsonObject, type JsonObject } from './field-reader.js';
import { normaliseIp } from '../../model/address.js';

export const SYSMON_PROVIDER = 'microsoft-windows-sysmon';

export interface SysmonEvent {
  eventId: number;
  /** From `UtcTime` (UTC), else the exporter's `@timestamp`; null when neither reads. */
  timeMs: number | null;
  /** As written, e.g. `WORKSTATION5.theshire.local`; '' when absent. */
  hostname: string;
  /** Event data by lower-cased field name; values as strings, HTML entities decoded. */
  fields: Map<string, string>;
}

export type Classified =
  | { kind: 'sysmon'; event: SysmonEvent }
  /** A Windows event of another channel (Security, PowerShell, ...). */
  | { kind: 'other-windows' }
  | { kind: 'not-windows' };

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

function addFields(into: Map<string, string>, o: JsonObject): void {
  for (const k of Object.keys(o)) {
    const s = scalar(o[k]);
    if (s !== undefined) into.set(k.toLowerCase(), s);
  }
}

const UTC_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?$/;

/** Sysmon `UtcTime`, `2020-10-12 22:34:38.169`, always UTC. */
export function parseUtcTime(s: string): number | null {
  const m = UTC_TIME.exec(s.trim());
  if (m === null) return null;
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms);
  return Number.isFinite(t) ? t : null;
}

function isoTime(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : null;
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
  if (!isSysmonName(get('provider_name')) && !isSysmonName(get('channel'))) return { kind: 'other-windows' };
  const eventId = eventIdOf(get('event_id'));
  if (eventId === null) return { kind: 'other-windows' };
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
  const computer = scalar(get('computer_name'));
  const utc = fields.get('utctime');
  return {
    kind: 'sysmon',
    event: {
      eventId,
      timeMs: (utc !== undefined ? parseUtcTime(utc) : null) ?? isoTime(o['@timestamp']),
      hostname: computer ?? '',
      fields,
    },
  };
}

/** Sorts a parsed JSON object into Sysmon, another Windows channel, or neither. */
export function classifyWindowsEvent(o: JsonObject): Classified {
  const winlog = isJsonObject(o.winlog) ? o.winlog : null;
  if (winlog !== null || 'winlog.event_id' in o || 'winlog.provider_name' in o) return classifyWinlogbeat(o, winlog);
  if (!('EventID' in o) && !('SourceName' in o) && !('Channel' in o)) return { kind: 'not-windows' };
  if (!isSysmonName(o.SourceName) && !isSysmonName(o.Channel) && !isSysmonName(o.ProviderName)) return { kind: 'other-windows' };
  const eventId = eventIdOf(o.EventID);
  if (eventId === null) return { kind: 'other-windows' };
  const fields = new Map<string, string>();
  addFields(fields, o);
  const utc = fields.get('utctime');
  return {
    kind: 'sysmon',
    event: {
      eventId,
      timeMs: (utc !== undefined ? parseUtcTime(utc) : null) ?? isoTime(o['@timestamp']),
      hostname: fields.get('hostname') ?? fields.get('computer') ?? '',
      fields,
    },
  };
}

/** Host id: the lower-cased first label, so `WS5` and `WS5.corp.example` are one host. */
export function hostIdOf(hostname: string): string {
  const h = hostname.trim().toLowerCase();
  const dot = h.indexOf('.');
  return dot === -1 ? h : h.slice(0, dot);
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
