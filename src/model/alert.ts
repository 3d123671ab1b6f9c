// The alert as rarecon holds it; `ocsf.ts` and `ecs.ts` render it for the outside.
import type { HostRef, Injection, ProcessInfo, Protocol } from './records.js';
import type { ObserverUnit, TierThresholds } from './baseline.js';

export const BASE_ALERT_NAME = 'Globally uncommon root-domain port combination by a common process (sha256)';

export type VariationId = 'injected-thread' | 'very-rare' | 'known-vendor' | 'rare' | 'uncommon';
export type SeverityName = 'High' | 'Medium' | 'Low' | 'Informational';
/** OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High. */
export type SeverityId = 1 | 2 | 3 | 4;

export interface Variation {
  id: VariationId;
  /** 1 is the highest; the alert takes the name of the highest that held. */
  order: number;
  name: string;
  severity: SeverityName;
  severityId: SeverityId;
}

// DETECTION.md section 5, in order.
export const VARIATIONS: readonly Variation[] = [
  {
    id: 'injected-thread',
    order: 1,
    name: `${BASE_ALERT_NAME} from an injected thread`,
    severity: 'High',
    severityId: 4,
  },
  {
    id: 'very-rare',
    order: 2,
    name: 'Globally uncommon and very rare root-domain port combination by a common process (sha256)',
    severity: 'Medium',
    severityId: 3,
  },
  {
    id: 'known-vendor',
    order: 3,
    name: `${BASE_ALERT_NAME} from a known vendor`,
    severity: 'Medium',
    severityId: 3,
  },
  {
    id: 'rare',
    order: 4,
    name: 'Globally uncommon and rare root-domain port combination by a common process (sha256)',
    severity: 'Low',
    severityId: 2,
  },
  { id: 'uncommon', order: 5, name: BASE_ALERT_NAME, severity: 'Informational', severityId: 1 },
];

export function variation(id: VariationId): Variation {
  const v = VARIATIONS.find((x) => x.id === id);
  if (v === undefined) throw new Error(`unknown variation ${id}`);
  return v;
}

export type Tier = 'common' | 'uncommon' | 'rare' | 'very-rare';

export interface PrevalenceEvidence {
  processObservers: number;
  comboObservers: number;
  tier: Exclude<Tier, 'common'>;
  thresholds: TierThresholds;
  observerUnit: ObserverUnit;
  populationSize: number;
  baselineVersion: number;
  windowStartMs: number;
  windowEndMs: number;
}

export interface ConnectionEvidence {
  protocol: Protocol;
  ip: string;
  port: number;
  hostname: string;
  /** The hostname is a reverse-DNS (PTR) name, scored because `detect.reverseDnsNames` is on. */
  hostnameFromReverseDns?: true;
  rootDomain: string;
  localIp: string | null;
  localPort: number | null;
}

export interface DetectionAlert {
  kind: 'detection';
  /** Stable id: the same events scored twice give the same uid (idempotency key upstream). */
  uid: string;
  variation: VariationId;
  name: string;
  severity: SeverityName;
  severityId: SeverityId;
  /** Every variation that held, highest first. */
  variationsHeld: VariationId[];
  host: HostRef;
  process: ProcessInfo;
  connection: ConnectionEvidence;
  prevalence: PrevalenceEvidence;
  injection: Injection;
  firstSeenMs: number;
  lastSeenMs: number;
  count: number;
}

/** Raised once when the safety valve pauses the detector for a host. */
export interface HealthAlert {
  kind: 'health';
  uid: string;
  name: string;
  severity: SeverityName;
  severityId: SeverityId;
  host: HostRef;
  reason: string;
  alertsInWindow: number;
  pausedUntilMs: number;
  firstSeenMs: number;
  lastSeenMs: number;
  count: number;
}

export type Alert = DetectionAlert | HealthAlert;

/** Appended to an alert's message when its hostname is a reverse-DNS name (DETECTION.md section 2.2). */
export const REVERSE_DNS_NOTE = '; the name came from reverse DNS (a PTR name), not from a DNS answer the process asked for';

export const HEALTH_ALERT_NAME = 'rarecon detector paused for a host that raised too many alerts';
