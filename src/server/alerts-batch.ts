// Checks an alert upload (POST /v1/alerts). Endpoints send what their HTTP sink
// renders: a JSON array, {"alerts": [...]}, or NDJSON, each alert in OCSF
// (uid in metadata.uid) or ECS (event.id) or rarecon's own form (uid).
import type { AlertIn } from './store.js';

function uidOf(a: Record<string, unknown>): unknown {
  const meta = a.metadata as Record<string, unknown> | undefined;
  const event = a.event as Record<string, unknown> | undefined;
  return (
    (meta !== null && typeof meta === 'object' ? meta.uid : undefined) ??
    (event !== null && typeof event === 'object' ? event.id : undefined) ??
    a.uid
  );
}

function timeOf(a: Record<string, unknown>): number | null {
  if (typeof a.time === 'number' && Number.isFinite(a.time)) return a.time;
  if (typeof a.timeMs === 'number' && Number.isFinite(a.timeMs)) return a.timeMs;
  const ts = a['@timestamp'] ?? a.time;
  if (typeof ts === 'string') {
    const t = Date.parse(ts);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

function severityOf(a: Record<string, unknown>): number | null {
  if (typeof a.severity_id === 'number') return a.severity_id;
  if (typeof a.severityId === 'number') return a.severityId;
  const event = a.event as Record<string, unknown> | undefined;
  if (event !== null && typeof event === 'object' && typeof event.severity === 'number') return event.severity;
  return null;
}

// The body is split into its alerts on the bytes (structural characters are
// ASCII, never part of a UTF-8 sequence) and each alert is parsed alone and
// stored as sent: a 30 MB batch never becomes one 30 MB string plus its parsed
// tree plus a re-serialised copy (memory-budget.ts counts what a body costs).

const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

function skipSpace(raw: Buffer, i: number): number {
  while (i < raw.length && isSpace(raw[i])) i++;
  return i;
}

/** The end (exclusive) of the JSON value starting at `i`: its closing bracket at depth 0, or the first `,` `]` `}` outside it. */
function valueEnd(raw: Buffer, i: number): number {
  let depth = 0;
  let inString = false;
  for (; i < raw.length; i++) {
    const c = raw[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (c === 0x2c && depth === 0) return i;
  }
  return i;
}

type Spans = { ok: true; spans: Array<[number, number]>; end: number } | { ok: false; error: string };

/** The byte spans of the elements of the array whose `[` is at `open`, and where the array ends. */
function arraySpans(raw: Buffer, open: number): Spans {
  const spans: Array<[number, number]> = [];
  let i = skipSpace(raw, open + 1);
  if (raw[i] === 0x5d) return { ok: true, spans, end: i + 1 };
  for (;;) {
    const start = i;
    let end = valueEnd(raw, i);
    i = skipSpace(raw, end);
    while (end > start && isSpace(raw[end - 1])) end--;
    if (end === start) return { ok: false, error: `alerts[${spans.length}]: expected an alert object` };
    spans.push([start, end]);
    if (i >= raw.length) return { ok: false, error: '(body): the JSON array is not closed' };
    if (raw[i] === 0x5d) return { ok: true, spans, end: i + 1 };
    if (raw[i] !== 0x2c)
      return { ok: false, error: `alerts[${spans.length - 1}]: not JSON (unexpected "${String.fromCharCode(raw[i] as number)}")` };
    i = skipSpace(raw, i + 1);
  }
}

/** A body `{"alerts": [` ...: the offset of its `[`, or -1. */
function alertsArrayOpen(raw: Buffer, open: number): number {
  const key = '"alerts"';
  let i = skipSpace(raw, open + 1);
  if (raw.toString('latin1', i, i + key.length) !== key) return -1;
  i = skipSpace(raw, i + key.length);
  if (raw[i] !== 0x3a) return -1;
  i = skipSpace(raw, i + 1);
  return raw[i] === 0x5b ? i : -1;
}

/** One alert checked: what the store files it by, and where its text is (kept as bytes until stored). */
interface Checked {
  uid: string;
  timeMs: number | null;
  severityId: number | null;
  /** Its bytes in the body, stored as sent; null when `text` holds it (re-serialised from a whole-body parse). */
  span: [number, number] | null;
  text: string | null;
}

/** A checked batch, every alert valid; its texts are decoded a slice at a time as they are stored. */
export class CheckedAlerts {
  constructor(
    private readonly raw: Buffer,
    private readonly items: readonly Checked[],
  ) {}

  get count(): number {
    return this.items.length;
  }

  slice(from: number, to: number): AlertIn[] {
    return this.items.slice(from, to).map((c) => ({
      uid: c.uid,
      timeMs: c.timeMs,
      severityId: c.severityId,
      body: c.span === null ? (c.text as string) : this.raw.toString('utf8', c.span[0], c.span[1]),
    }));
  }
}

export type AlertsResult = { ok: true; alerts: CheckedAlerts } | { ok: false; status: 400 | 413; error: string };
type Failed = Extract<AlertsResult, { ok: false }>;

function check(value: unknown, where: string): Omit<Checked, 'span' | 'text'> | Failed {
  const a = value as Record<string, unknown>;
  if (a === null || typeof a !== 'object' || Array.isArray(a))
    return { ok: false, status: 400, error: `${where}: expected an alert object` };
  const uid = uidOf(a);
  if (typeof uid !== 'string' || uid === '' || uid.length > 200) {
    return {
      ok: false,
      status: 400,
      error: `${where.startsWith('line') ? `${where}: uid` : `${where}.uid`}: every alert needs a uid (metadata.uid in OCSF, event.id in ECS, or uid), 1 to 200 characters`,
    };
  }
  return { uid, timeMs: timeOf(a), severityId: severityOf(a) };
}

const tooMany = (n: number, max: number): Failed => ({ ok: false, status: 413, error: `alerts: ${n} in one batch, the limit is ${max}` });

/** Each span parsed alone and dropped once checked. */
function checkSpans(raw: Buffer, spans: ReadonlyArray<[number, number]>, name: (i: number) => string, maxAlerts: number): AlertsResult {
  if (spans.length > maxAlerts) return tooMany(spans.length, maxAlerts);
  const items: Checked[] = [];
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i] as [number, number];
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8', span[0], span[1]));
    } catch (e) {
      return { ok: false, status: 400, error: `${name(i)}: not JSON (${(e as Error).message})` };
    }
    const c = check(value, name(i));
    if ('ok' in c) return c;
    items.push({ ...c, span, text: null });
  }
  return { ok: true, alerts: new CheckedAlerts(raw, items) };
}

export function parseAlertsBody(raw: Buffer, maxAlerts: number): AlertsResult {
  const first = skipSpace(raw, raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? 3 : 0);
  const alertsAt = (i: number): string => `alerts[${i}]`;
  if (raw[first] === 0x5b) {
    const a = arraySpans(raw, first);
    if (!a.ok) return { ok: false, status: 400, error: a.error };
    if (skipSpace(raw, a.end) < raw.length) return { ok: false, status: 400, error: '(body): more after the JSON array of alerts' };
    return checkSpans(raw, a.spans, alertsAt, maxAlerts);
  }
  if (raw[first] !== 0x7b)
    return { ok: false, status: 400, error: '(body): expected a JSON array of alerts, {"alerts": [...]}, or NDJSON' };
  const open = alertsArrayOpen(raw, first);
  if (open >= 0) {
    const a = arraySpans(raw, open);
    if (a.ok && raw[skipSpace(raw, a.end)] === 0x7d && skipSpace(raw, skipSpace(raw, a.end) + 1) >= raw.length)
      return checkSpans(raw, a.spans, alertsAt, maxAlerts);
  }
  const end = valueEnd(raw, first);
  if (skipSpace(raw, end) >= raw.length) {
    // One JSON object: one alert, or {"alerts": [...]} with other keys first (parsed whole, re-serialised).
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8', first, end));
    } catch (e) {
      return { ok: false, status: 400, error: `line 1: not JSON (${(e as Error).message})` };
    }
    const list = (parsed as Record<string, unknown>).alerts;
    const values = Array.isArray(list) ? (list as unknown[]) : [parsed];
    if (values.length > maxAlerts) return tooMany(values.length, maxAlerts);
    const items: Checked[] = [];
    for (let i = 0; i < values.length; i++) {
      const c = check(values[i], alertsAt(i));
      if ('ok' in c) return c;
      items.push({ ...c, span: null, text: JSON.stringify(values[i]) });
    }
    return { ok: true, alerts: new CheckedAlerts(raw, items) };
  }
  // NDJSON: one alert a line.
  const spans: Array<[number, number]> = [];
  const lineNo: number[] = [];
  for (let at = 0, n = 1; at < raw.length; n++) {
    let nl = raw.indexOf(0x0a, at);
    if (nl < 0) nl = raw.length;
    const a = skipSpace(raw, at);
    let b = nl;
    while (b > a && isSpace(raw[b - 1])) b--;
    if (b > a) {
      spans.push([a, b]);
      lineNo.push(n);
    }
    at = nl + 1;
  }
  return checkSpans(raw, spans, (i) => `line ${lineNo[i] as number}`, maxAlerts);
}
