// The `baselineStore:` section's shape for the one config validator (defaults: config/defaults.ts).
import { count, type Spec } from '../config/spec.js';

export const BASELINE_STORE_SPEC: Spec = { kind: 'object', fields: { cacheSizeKiB: count(256), lookupCacheEntries: count(1) } };
