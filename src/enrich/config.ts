// The `enrich:` and `host:` sections' shapes for the one config validator (defaults: config/defaults.ts).
import { count, timerMs, type Spec } from '../config/spec.js';

export const ENRICH_SPEC: Spec = {
  kind: 'object',
  fields: { concurrency: count(1, 1024), timeoutMs: timerMs(10), cacheEntries: count(16, 100_000_000) },
};

export const HOST_SPEC: Spec = {
  kind: 'object',
  fields: {
    org: { kind: 'string', pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: 'letters, digits, . _ - (1 to 64)' },
    id: { kind: 'string', nullable: true },
  },
};
