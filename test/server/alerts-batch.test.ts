// The alert upload body, split on its bytes and parsed an alert at a time:
// the same answers as parsing it whole, each alert stored as sent.
import { describe, expect, it } from 'vitest';
import { parseAlertsBody } from '../../src/server/alerts-batch.js';

const ocsf = (uid: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  metadata: { uid },
  severity_id: 4,
  time: 1_795_837_327_704,
  ...extra,
});

function ok(body: string): Array<{ uid: string; body: string; severityId: number | null }> {
  const r = parseAlertsBody(Buffer.from(body), 100);
  if (!r.ok) throw new Error(r.error);
  return r.alerts.slice(0, r.alerts.count).map((a) => ({ uid: a.uid, body: a.body, severityId: a.severityId }));
}

function refused(body: string, max = 100): { status: number; error: string } {
  const r = parseAlertsBody(Buffer.from(body), max);
  if (r.ok) throw new Error(`accepted ${r.alerts.count} alerts`);
  return r;
}

describe('alert upload bodies', () => {
  it('takes a JSON array, {"alerts": [...]}, NDJSON and one object, each alert stored as sent', () => {
    const tricky = ocsf('u-2', { cmd: 'a "quoted" ] }, [ { , \\" \\\\', name: 'naïve ☃' });
    const arr = `\ufeff [ ${JSON.stringify(ocsf('u-1'))} ,\n  ${JSON.stringify(tricky, null, 2)} ] \n`;
    const a = ok(arr);
    expect(a.map((x) => x.uid)).toEqual(['u-1', 'u-2']);
    expect(JSON.parse(a[1]?.body as string)).toEqual(tricky);
    expect(a[1]?.body).toBe(JSON.stringify(tricky, null, 2));
    expect(ok(`{"alerts": [${JSON.stringify(ocsf('u-1'))}]}`).map((x) => x.uid)).toEqual(['u-1']);
    expect(ok(`{"batch": 7, "alerts": [${JSON.stringify(ocsf('u-1'))}]}`).map((x) => x.uid)).toEqual(['u-1']);
    expect(ok(`${JSON.stringify(ocsf('u-1'))}\n\n${JSON.stringify(tricky)}\r\n`).map((x) => x.uid)).toEqual(['u-1', 'u-2']);
    expect(ok(JSON.stringify(tricky, null, 2)).map((x) => x.uid)).toEqual(['u-2']);
    expect(ok('[]')).toEqual([]);
    expect(ok(`[${JSON.stringify({ event: { id: 'e-1', severity: 3 } })}]`)).toMatchObject([{ uid: 'e-1', severityId: 3 }]);
  });

  it('refuses a broken body whole, naming the alert or line', () => {
    expect(refused(`[${JSON.stringify(ocsf('u-1'))}, {"metadata": {"uid": "u-2"}`).error).toMatch(/not closed|alerts\[1\]: not JSON/);
    expect(refused(`[${JSON.stringify(ocsf('u-1'))}, {"metadata": }]`).error).toMatch(/^alerts\[1\]: not JSON/);
    expect(refused(`[${JSON.stringify(ocsf('u-1'))}] [1]`).error).toMatch(/more after the JSON array/);
    expect(refused(`[${JSON.stringify(ocsf('u-1'))},,]`).error).toMatch(/^alerts\[1\]: expected an alert object/);
    expect(refused(`[1]`).error).toMatch(/^alerts\[0\]: expected an alert object/);
    expect(refused(`[${JSON.stringify({ metadata: {} })}]`).error).toMatch(/^alerts\[0\]\.uid: every alert needs a uid/);
    expect(refused(`${JSON.stringify(ocsf('u-1'))}\n{"metadata": {"uid": "u-2"}\n`).error).toMatch(/^line 2: not JSON/);
    expect(refused(`${JSON.stringify(ocsf('u-1'))}\n\n${JSON.stringify({ x: 1 })}\n`).error).toMatch(/^line 3: uid: every alert/);
    expect(refused('hello').error).toMatch(/expected a JSON array/);
    expect(refused(`[${JSON.stringify(ocsf('a'))},${JSON.stringify(ocsf('b'))}]`, 1)).toMatchObject({ status: 413 });
  });

  it('splits exactly as parsing whole would (seeded random bodies with brackets, quotes and escapes in strings)', () => {
    let seed = 15;
    const rnd = (n: number): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31), seed % n);
    const chars = ['[', ']', '{', '}', ',', '"', '\\', ':', ' ', '\n', 'é', '☃', 'a', '0'];
    const str = (): string => Array.from({ length: rnd(12) }, () => chars[rnd(chars.length)]).join('');
    const value = (depth: number): unknown => {
      const k = rnd(depth > 2 ? 3 : 5);
      if (k === 0) return str();
      if (k === 1) return rnd(1000) - 500;
      if (k === 2) return rnd(2) === 0 ? null : true;
      if (k === 3) return Array.from({ length: rnd(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), value(depth + 1)]));
    };
    for (let n = 0; n < 300; n++) {
      const alerts = Array.from({ length: rnd(6) }, (_, i) => ({ metadata: { uid: `u${n}-${i}${str()}` }, x: value(0) }));
      const body = rnd(2) === 0 ? JSON.stringify(alerts) : JSON.stringify(alerts, null, rnd(3));
      const got = ok(body);
      expect(got.map((g) => g.uid)).toEqual(alerts.map((a) => a.metadata.uid));
      expect(got.map((g) => JSON.parse(g.body) as unknown)).toEqual(alerts);
    }
  });
});
