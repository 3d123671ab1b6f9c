// The `source:` section's shape for the one config validator (defaults: config/defaults.ts).
import { count, type Spec } from '../config/spec.js';

export const SOURCE_SPEC: Spec = {
  kind: 'object',
  fields: {
    kind: { kind: 'string', oneOf: ['auto', 'ebpf', 'procfs'] },
    helperPath: { kind: 'string', nullable: true },
    pollIntervalMs: count(50),
    udpDedupMs: count(0),
    stackFrames: { kind: 'number', integer: true, min: 0, max: 32 },
    queueMaxEvents: count(1),
  },
};
