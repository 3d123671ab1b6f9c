// The `source:` section's shape for the one config validator (defaults: config/defaults.ts).
import { count, timerMs, type Spec } from '../config/spec.js';

export const SOURCE_SPEC: Spec = {
  kind: 'object',
  fields: {
    kind: { kind: 'string', oneOf: ['auto', 'ebpf', 'procfs'] },
    helperPath: { kind: 'string', nullable: true },
    pollIntervalMs: timerMs(50),
    // The helper keeps it in 32 bits; a timer's bound is well inside.
    udpDedupMs: timerMs(0),
    stackFrames: { kind: 'number', integer: true, min: 0, max: 32 },
    queueMaxEvents: count(1, 100_000_000),
  },
};
