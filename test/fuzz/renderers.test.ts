// Fuzz: every rendering of what the readers let through, on seeded hostile
// input (hostile-lines.ts). Each record read from hostile NDJSON and Sysmon is
// written back as a rarecon record (and reads back the same), scored (an
// always-common baseline, so connections alert and hosts trip the safety
// valve), and every alert, plus one built straight from each connection with
// extreme times and counts, is rendered as OCSF, ECS, NDJSON and RFC 5424
// syslog in both formats: none may throw, each is JSON, and a time a Date
// cannot hold is left out (ECS) or the syslog NILVALUE, never an exception.
// RARECON_FUZZ_SEED / RARECON_FUZZ_LINES pick another input or a longer run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DETECT, SYSLOG_FACILITIES } from '../../src/config/defaults.js';
import { Scorer } from '../../src/detect/scorer.js';
import { StateStore } from '../../src/detect/state-store.js';
import { HEALTH_ALERT_NAME, VARIATIONS, type Alert, type DetectionAlert, type HealthAlert } from '../../src/model/alert.js';
import type { BaselineReader } from '../../src/model/baseline.js';
import { toEcs } from '../../src/model/ecs.js';
import { toOcsf } from '../../src/model/ocsf.js';
import { toRareconRecord } from '../../src/model/rarecon-record.js';
import type { ConnectionEvent, SourceRecord } from '../../src/model/records.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { ndjson } from '../../src/report/render.js';
import { formatRfc5424, octetFrame } from '../../src/report/syslog-format.js';
import { readLogFile } from '../../src/sources/replay/log-reader.js';
import { parseRareconRecord } from '../../src/sources/replay/ndjson-reader.js';
import { fuzzSettings, hostileNdjson, hostileSysmon, Rng } from './hostile-lines.js';

const { seed, lines } = fuzzSettings(20_000);
const tmp = mkdtempSync(join(tmpdir(), 'rarecon-fuzz-renderers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every sha256 is common and every combo unseen: each eligible connection alerts (very rare). */
const ALWAYS_RARE: BaselineReader = {
  process: () => 10_000,
  combo: () => 0,
  meta: () => ({
    version: 3,
    builtAtMs: Date.UTC(2026, 8, 1),
    windowStartMs: Date.UTC(2026, 7, 1),
    windowEndMs: Date.UTC(2026, 8, 1),
    observerUnit: 'host',
    populationSize: 10_000,
    policy: DEFAULT_POLICY,
    thresholds: { uncommonBelowObservers: 10, rareMaxObservers: 3, veryRareMaxObservers: 1, commonProcessMinObservers: 10 },
    omitsSingleObserverCombos: false,
    processCount: 1,
    comboCount: 0,
  }),
};

/** What Date gives for `ms`, or undefined where it has no time (the rule the renderers keep). */
function dateText(ms: number | null): string | undefined {
  if (ms === null) return undefined;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

const EXTREME_TIMES = [0, -1, 1e21, -1e21, 8.64e15, 8.64e15 + 1, 253_402_300_800_000, Number.MAX_VALUE, NaN, Infinity, -Infinity];

/** A detection built straight from a connection, with times and counts no scorer would give. */
function detectionOf(rec: ConnectionEvent, r: Rng): DetectionAlert {
  const v = r.pick(VARIATIONS);
  const first = r.chance(0.5) ? rec.timeMs : r.pick(EXTREME_TIMES);
  return {
    kind: 'detection',
    uid: `fuzz-${rec.origin?.line ?? 0}`,
    variation: v.id,
    name: v.name,
    severity: v.severity,
    severityId: v.severityId,
    variationsHeld: VARIATIONS.filter((x) => x.order >= v.order).map((x) => x.id),
    host: rec.host,
    process: r.chance(0.3) ? { ...rec.process, startTimeMs: r.pick(EXTREME_TIMES) } : rec.process,
    connection: {
      protocol: rec.protocol,
      ip: rec.remote.ip,
      port: rec.remote.port,
      hostname: rec.remote.hostname ?? rec.remote.ip,
      rootDomain: rec.remote.hostname ?? rec.remote.ip,
      localIp: rec.local?.ip ?? null,
      localPort: rec.local?.port ?? null,
    },
    prevalence: {
      processObservers: r.pick([0, 10_000, Number.MAX_SAFE_INTEGER]),
      comboObservers: r.pick([0, 1, 9]),
      tier: 'very-rare',
      thresholds: ALWAYS_RARE.meta().thresholds,
      observerUnit: r.pick(['org', 'host', 'day'] as const),
      populationSize: r.pick([1, 10_000]),
      baselineVersion: r.pick([1, 2 ** 53]),
      windowStartMs: r.pick(EXTREME_TIMES),
      windowEndMs: rec.timeMs,
    },
    injection: rec.process.injection,
    firstSeenMs: first,
    lastSeenMs: r.chance(0.5) ? first : r.pick(EXTREME_TIMES),
    count: r.pick([1, 2, 2 ** 31, Number.MAX_SAFE_INTEGER]),
  };
}

function healthOf(rec: SourceRecord, r: Rng): HealthAlert {
  return {
    kind: 'health',
    uid: `fuzz-health-${rec.origin?.line ?? 0}`,
    name: HEALTH_ALERT_NAME,
    severity: 'High',
    severityId: 4,
    host: rec.host,
    reason: 'fuzz',
    alertsInWindow: 5001,
    pausedUntilMs: rec.timeMs + r.pick([86_400_000, 8.64e15, 1e21]),
    firstSeenMs: rec.timeMs,
    lastSeenMs: rec.timeMs,
    count: 1,
  };
}

const RFC5424 =
  /^<(\d{1,3})>1 (-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([\x21-\x7e]{1,255}) rarecon ([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) \[rarecon@32473(?: [a-zA-Z0-9]+="(?:[^"\\\]]|\\["\\\]])*")*\] (\{.*\})$/s;

/**
 * Every rendering of `a`, checked; what is wrong is added to `problems` (one
 * expect at the end: an expect per rendering cost more than the rendering).
 * A renderer that throws fails the test on the spot.
 */
function renderAll(a: Alert, r: Rng, problems: string[]): void {
  const bad = (what: string): void => void problems.push(`${a.kind} ${a.uid}: ${what} (seed ${seed})`);
  const ocsf = JSON.parse(JSON.stringify(toOcsf(a))) as Record<string, unknown>;
  if (ocsf.class_uid !== 2004) bad('OCSF class_uid');
  const ecs = JSON.parse(JSON.stringify(toEcs(a))) as Record<string, { start?: string; end?: string }>;
  const first = dateText(a.firstSeenMs);
  if (ecs['@timestamp'] !== first || ecs.event!.start !== first || ecs.event!.end !== dateText(a.lastSeenMs))
    bad(`ECS times ${JSON.stringify([ecs['@timestamp'], ecs.event!.start, ecs.event!.end])} for ${a.firstSeenMs}, ${a.lastSeenMs}`);
  for (const format of ['ocsf', 'ecs'] as const) {
    const line = ndjson([a], format);
    if (!line.endsWith('\n') || line.indexOf('\n') !== line.length - 1) bad(`${format} NDJSON is not one line`);
    JSON.parse(line);
    const msg = formatRfc5424(a, { facility: r.pick(SYSLOG_FACILITIES), format, procId: 4242 });
    const m = RFC5424.exec(msg);
    if (m === null) {
      bad(`not RFC 5424: ${msg.slice(0, 200)}`);
      continue;
    }
    if (m[2] !== (first !== undefined && /^\d{4}-/.test(first) ? first : '-')) bad(`syslog TIMESTAMP ${m[2]} for ${a.firstSeenMs}`);
    JSON.parse(m[6]!);
    const frame = octetFrame(msg);
    const sp = frame.indexOf(32);
    if (Number(frame.toString('latin1', 0, sp)) !== frame.length - sp - 1) bad('octet count');
  }
}

async function recordsOf(file: string): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const item of readLogFile(file)) if (item.type !== 'error') out.push(item);
  return out;
}

describe(`fuzz: renderers on what the readers let through (seed ${seed}, ${lines.toLocaleString('en-US')} lines)`, () => {
  let records: SourceRecord[] = [];
  beforeAll(async () => {
    const files: Array<[string, Buffer]> = [
      ['ascii.ndjson', hostileNdjson(new Rng(seed), lines, { ascii: true })],
      ['bytes.ndjson', hostileNdjson(new Rng(seed + 1), Math.ceil(lines / 2))],
      ['sysmon.json', hostileSysmon(new Rng(seed + 2), Math.ceil(lines / 4))],
    ];
    for (const [name, bytes] of files) {
      writeFileSync(join(tmp, name), bytes);
      records = records.concat(await recordsOf(join(tmp, name)));
    }
    expect(records.filter((x) => x.type === 'connection').length).toBeGreaterThan(lines / 4);
  });

  it('writes every record back as a rarecon record that reads back the same', () => {
    const problems: string[] = [];
    for (const rec of records) {
      const text = JSON.stringify(toRareconRecord(rec));
      const back = parseRareconRecord(text, rec.origin ?? { file: '', line: 0 });
      // Compared as written: a Sysmon record may carry more than section 10 holds.
      if (back.type === 'error') problems.push(`${back.code}: ${back.message}, reading back ${text}`);
      else if (JSON.stringify(toRareconRecord(back)) !== text) problems.push(`reads back otherwise: ${text}`);
    }
    expect(problems.slice(0, 20), `seed ${seed}`).toEqual([]);
  });

  it('scores every record and renders every alert and health alert it raises', () => {
    const state = StateStore.open(null);
    const scorer = new Scorer({
      baseline: ALWAYS_RARE,
      config: { ...DEFAULT_DETECT, activationDays: 0, minBaselineDays: 0, maxAlertsPerHostPerDay: 3 },
      state,
      nowMs: 0,
      alertWrites: 'never',
    });
    const r = new Rng(seed + 3);
    const alerts: Alert[] = [];
    try {
      for (const rec of records) {
        const o = scorer.handle(rec);
        if (o.kind === 'new' || o.kind === 'health') alerts.push(o.alert);
      }
      alerts.push(...scorer.finish());
    } finally {
      state.close();
    }
    expect(alerts.filter((a) => a.kind === 'detection').length).toBeGreaterThan(0);
    expect(alerts.filter((a) => a.kind === 'health').length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const a of alerts) renderAll(a, r, problems);
    expect(problems.slice(0, 20)).toEqual([]);
  });

  it('renders an alert built from each connection, with times a Date cannot hold among them', () => {
    const r = new Rng(seed + 4);
    let beyond = 0;
    const problems: string[] = [];
    for (const rec of records) {
      const a = rec.type === 'connection' ? detectionOf(rec, r) : healthOf(rec, r);
      if (dateText(a.firstSeenMs) === undefined) beyond++;
      renderAll(a, r, problems);
    }
    expect(problems.slice(0, 20)).toEqual([]);
    expect(beyond).toBeGreaterThan(0);
  });
});
