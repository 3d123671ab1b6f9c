// The `baselineStore:` section's shape for the one config validator (defaults: config/defaults.ts).
import { count, type Spec } from '../config/spec.js';

export const BASELINE_STORE_SPEC: Spec = {
  kind: 'object',
  // Bounds: a 16 GiB page cache and 100 million cached lookups are beyond any host rarecon runs on.
  fields: { cacheSizeKiB: count(256, 16 * 1024 * 1024), lookupCacheEntries: count(1, 100_000_000) },
};
