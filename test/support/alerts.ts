// Alerts for tests of the report stage: complete records, plain values.
import type { DetectionAlert, HealthAlert, SeverityId, VariationId } from '../../src/model/alert.js';
import { VARIATIONS, HEALTH_ALERT_NAME } from '../../src/model/alert.js';

const BY_SEVERITY: Record<SeverityId, VariationId> = { 4: 'injected-thread', 3: 'very-rare', 2: 'rare', 1: 'uncommon' };

export function detection(
  i: number,
  over: { host?: string; severityId?: SeverityId; uid?: string; padBytes?: number } = {},
): DetectionAlert {
  const v = VARIATIONS.find((x) => x.id === BY_SEVERITY[over.severityId ?? 2])!;
  const t = Date.UTC(2026, 9, 1, 12) + i * 1000;
  return {
    kind: 'detection',
    uid: over.uid ?? `uid-${over.host ?? 'h1'}-${String(i).padStart(6, '0')}`,
    variation: v.id,
    name: v.name,
    severity: v.severity,
    severityId: v.severityId,
    variationsHeld: [v.id],
    host: { id: over.host ?? 'h1', org: 'o1', name: `${over.host ?? 'h1'}.example.net` },
    process: {
      pid: 4242,
      tid: 4243,
      startTimeMs: null,
      path: '/usr/bin/curl',
      sha256: 'a'.repeat(64),
      signer: { status: 'unsigned', subject: null, vendor: null },
      injection: { injected: false, indicators: [] },
      cmdline: over.padBytes === undefined ? `curl https://c2.example.com/${i}` : `curl ${'x'.repeat(over.padBytes)}`,
      user: 'root',
      parent: null,
      unusualLibraries: [],
    },
    connection: {
      protocol: 'tcp',
      ip: '203.0.113.10',
      port: 8443,
      hostname: 'c2.example.com',
      rootDomain: 'example.com',
      localIp: null,
      localPort: null,
    },
    prevalence: {
      processObservers: 500,
      comboObservers: 1,
      tier: 'very-rare',
      thresholds: { uncommonBelowObservers: 10, rareMaxObservers: 3, veryRareMaxObservers: 1, commonProcessMinObservers: 10 },
      observerUnit: 'host',
      populationSize: 1000,
      baselineVersion: 7,
      windowStartMs: t - 30 * 86_400_000,
      windowEndMs: t,
    },
    injection: { injected: false, indicators: [] },
    firstSeenMs: t,
    lastSeenMs: t,
    count: 1,
  };
}

/**
 * A detection with a busy fleet's values (a browser on one of 50 hosts to a rare
 * CDN, a signer, a parent, a local endpoint): the benchmarks' alert, whose stored
 * JSON size (1,402 B for i = 0) their figures depend on.
 */
export function fleetDetection(i: number): DetectionAlert {
  const t = Date.UTC(2026, 9, 1) + i;
  const host = `host-${i % 50}`;
  const d = detection(i, { host, severityId: 2, uid: `bench-${i.toString(16).padStart(12, '0')}` });
  return {
    ...d,
    variationsHeld: ['rare', 'uncommon'],
    host: { id: host, org: 'org-1', name: `${host}.corp.example` },
    process: {
      ...d.process,
      pid: 1000 + (i % 3000),
      tid: 1001,
      startTimeMs: t - 60_000,
      path: '/usr/lib/firefox/firefox',
      sha256: 'ab'.repeat(32),
      signer: { status: 'valid', subject: 'Mozilla Corporation', vendor: 'Mozilla' },
      cmdline: '/usr/lib/firefox/firefox -contentproc -childID 12 -isForBrowser',
      user: 'alice',
      parent: { pid: 999, path: '/usr/lib/firefox/firefox', cmdline: '/usr/lib/firefox/firefox' },
    },
    connection: {
      ...d.connection,
      ip: '198.51.100.7',
      hostname: `cdn${i % 97}.rare-domain.example`,
      rootDomain: 'rare-domain.example',
      localIp: '10.0.0.5',
      localPort: 50_000 + (i % 10_000),
    },
    prevalence: {
      ...d.prevalence,
      processObservers: 4000,
      comboObservers: 2,
      tier: 'rare',
      populationSize: 12_000,
      baselineVersion: 42,
      windowStartMs: t - 30 * 86_400_000,
      windowEndMs: t,
    },
    firstSeenMs: t,
    lastSeenMs: t,
  };
}

export function health(i: number, host = 'h1'): HealthAlert {
  const t = Date.UTC(2026, 9, 1, 12) + i * 1000;
  return {
    kind: 'health',
    uid: `health-${host}-${i}`,
    name: HEALTH_ALERT_NAME,
    severity: 'Medium',
    severityId: 3,
    host: { id: host, org: 'o1' },
    reason: 'too many alerts',
    alertsInWindow: 5000,
    pausedUntilMs: t + 86_400_000,
    firstSeenMs: t,
    lastSeenMs: t,
    count: 1,
  };
}

/** Polls until `check` holds or the time is up; returns whether it held. */
export async function eventually(check: () => boolean, timeoutMs = 10_000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}
