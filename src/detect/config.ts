// The `detect:` section's shape for the one config validator (defaults: config/defaults.ts).
import { count, strings, port, windowMs, type Spec } from '../config/spec.js';

export const THRESHOLDS_SPEC: Spec = {
  kind: 'object',
  partial: true,
  fields: {
    uncommonBelowObservers: count(1),
    rareMaxObservers: count(0),
    veryRareMaxObservers: count(0),
    commonProcessMinObservers: count(1),
  },
};

export const DETECT_SPEC: Spec = {
  kind: 'object',
  fields: {
    activationDays: { kind: 'number', min: 0, max: 365 },
    trainingDays: { kind: 'number', min: 1, max: 365 },
    minBaselineDays: { kind: 'number', min: 0, max: 365 },
    dedupWindowMs: windowMs(1, 366),
    maxAlertsPerHostPerDay: count(1, 100_000_000),
    thresholds: THRESHOLDS_SPEC,
    knownVendors: strings,
    internalNetworks: { kind: 'array', of: { kind: 'cidr' } },
    internalDomains: strings,
    exclusions: {
      kind: 'object',
      fields: {
        domainSuffixes: strings,
        sha256: { kind: 'array', of: { kind: 'string', pattern: /^[0-9a-fA-F]{64}$/, patternText: '64 hex digits' } },
        signers: strings,
        ports: { kind: 'array', of: port },
        processPaths: strings,
      },
    },
    dnsGraceMs: windowMs(0, 7),
    dnsCacheMaxEntries: count(1, 100_000_000),
    reverseDnsNames: { kind: 'boolean' },
    processAccessIgnore: strings,
    processAccessParentMs: windowMs(0, 1),
  },
};
