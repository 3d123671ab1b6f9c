// Checks an alert upload (POST /v1/alerts). Endpoints send what their HTTP sink
// renders: a JSON array, {"alerts": [...]}, or NDJSON, each alert in OCSF
// (uid in metadata.uid) or ECS (event.id) or rarecon's own form (uid).
import type { AlertIn } from './store.js';

export type AlertsResult = { ok: true; alerts: AlertIn[] } | { ok: false; status: 400 | 413; error: string };

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

export function parseAlertsBody(raw: Buffer, maxAlerts: number): AlertsResult {
  const text = raw.toString('utf8').trim();
  let items: unknown[];
  if (text.startsWith('[') || text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
      items = Array.isArray(parsed)
        ? parsed
        : Array.isArray((parsed as Record<string, unknown>).alerts)
          ? ((parsed as Record<string, unknown>).alerts as unknown[])
          : [parsed];
    } catch {
      // NDJSON: one alert a line
      items = [];
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = (lines[i] as string).trim();
        if (line === '') continue;
        try {
          items.push(JSON.parse(line));
        } catch (e) {
          return { ok: false, status: 400, error: `line ${i + 1}: not JSON (${(e as Error).message})` };
        }
      }
    }
  } else {
    return { ok: false, status: 400, error: '(body): expected a JSON array of alerts, {"alerts": [...]}, or NDJSON' };
  }
  if (items.length > maxAlerts) return { ok: false, status: 413, error: `alerts: ${items.length} in one batch, the limit is ${maxAlerts}` };
  const out: AlertIn[] = [];
  for (let i = 0; i < items.length; i++) {
    const a = items[i] as Record<string, unknown>;
    if (a === null || typeof a !== 'object' || Array.isArray(a))
      return { ok: false, status: 400, error: `alerts[${i}]: expected an alert object` };
    const uid = uidOf(a);
    if (typeof uid !== 'string' || uid === '' || uid.length > 200) {
      return {
        ok: false,
        status: 400,
        error: `alerts[${i}].uid: every alert needs a uid (metadata.uid in OCSF, event.id in ECS, or uid), 1 to 200 characters`,
      };
    }
    out.push({ uid, timeMs: timeOf(a), severityId: severityOf(a), body: JSON.stringify(a) });
  }
  return { ok: true, alerts: out };
}
