// The `server:` section's shape for the one config validator and the checks a
// shape cannot make (defaults: config/defaults.ts).
import { count, cronExpression, MAX_TIMER_MS, nullableString, timerMs, type Spec } from '../config/spec.js';
import type { ServerConfig } from '../config/defaults.js';
import { BODY_MEMORY_FACTOR } from './memory-budget.js';

const nullablePath = nullableString;
const RATE: Spec = { kind: 'object', fields: { perMinute: count(0, 10_000_000), burst: count(1, 10_000_000) } };

export const SERVER_SPEC: Spec = {
  kind: 'object',
  fields: {
    stateDir: { kind: 'string' },
    listenHost: { kind: 'string' },
    port: count(0, 65_535),
    tlsCertFile: nullablePath,
    tlsKeyFile: nullablePath,
    plainHttp: { kind: 'boolean' },
    enrolMaxHostsDefault: count(1, 10_000_000),
    hostMinUploadDays: count(1, 365),
    credentialLifetimeMs: count(0, 10 * 365 * 86_400_000),
    credentialGraceMs: count(0, MAX_TIMER_MS),
    buildGraceMs: count(0, MAX_TIMER_MS),
    rateLimits: {
      kind: 'object',
      fields: {
        enrolPerAddress: RATE,
        uploadPerAddress: RATE,
        uploadPerCredential: RATE,
        downloadPerAddress: RATE,
        downloadPerCredential: RATE,
        adminPerAddress: RATE,
      },
    },
    observerUnit: { kind: 'string', oneOf: ['org', 'host'] },
    windowDays: count(1, 365),
    thresholds: {
      kind: 'object',
      fields: {
        uncommonBelowObservers: count(1),
        rareMaxObservers: count(0),
        veryRareMaxObservers: count(0),
        commonProcessMinObservers: count(1),
      },
    },
    omitSingleObserverCombos: { kind: 'boolean' },
    allowPrivateDomains: { kind: 'boolean' },
    buildCron: cronExpression,
    bucketHexChars: count(1, 8),
    heavyProcessCombos: count(1, 1_000_000_000),
    combosPerCell: count(1, 1_000_000_000),
    deltaHistoryVersions: count(1, 10_000),
    keepSnapshots: count(1, 10_000),
    retainExtraDays: count(0, 3650),
    requestTimeoutMs: timerMs(1000),
    buildInWorker: { kind: 'boolean' },
    limits: {
      kind: 'object',
      fields: {
        // A body is held in memory: 4 GiB is past any sane upload.
        maxBodyBytes: count(1024, 2 ** 32),
        maxDaysPerBatch: count(1, 3660),
        maxCombosPerDay: count(1, 1_000_000_000),
        maxProcessesPerDay: count(1, 1_000_000_000),
        maxAlertsPerBatch: count(1, 1_000_000_000),
        maxPrefixesPerRequest: count(1, 1_000_000_000),
        memoryBudgetBytes: count(1024 * 1024, 2 ** 44),
      },
    },
    store: { kind: 'string', oneOf: ['sqlite', 'postgresql'] },
    postgres: {
      kind: 'object',
      fields: {
        url: nullableString,
        readUrl: nullableString,
        poolSize: count(1, 1000),
        statementTimeoutMs: timerMs(0),
        aggregateTimeoutMs: timerMs(0),
        aggregateWorkMemMiB: count(4, 1024 * 1024),
      },
    },
  },
};

/** What a shape check cannot see; empty when the config is usable. */
export function serverConfigProblems(c: ServerConfig): string[] {
  const out: string[] = [];
  if ((c.tlsCertFile === null) !== (c.tlsKeyFile === null))
    out.push('server.tlsCertFile and server.tlsKeyFile go together: set both for HTTPS, or neither');
  if (c.plainHttp && c.tlsCertFile !== null)
    out.push('server.plainHttp listens without TLS: it cannot go with server.tlsCertFile and server.tlsKeyFile (drop one or the other)');
  if (c.limits.memoryBudgetBytes < c.limits.maxBodyBytes * BODY_MEMORY_FACTOR)
    out.push(
      `server.limits.memoryBudgetBytes (${c.limits.memoryBudgetBytes}) must hold one request of limits.maxBodyBytes (${c.limits.maxBodyBytes}) at ${BODY_MEMORY_FACTOR} bytes a body byte, ${c.limits.maxBodyBytes * BODY_MEMORY_FACTOR} or more`,
    );
  if (c.omitSingleObserverCombos && c.thresholds.veryRareMaxObservers < 1) {
    out.push(
      'server.omitSingleObserverCombos needs thresholds.veryRareMaxObservers >= 1 (otherwise 0 and 1 observers are different tiers)',
    );
  }
  if (c.store === 'postgresql' && (c.postgres.url === null || c.postgres.url === ''))
    out.push('server.store postgresql needs server.postgres.url (the primary, e.g. postgresql://rarecon@db1/rarecon)');
  for (const [name, u] of [
    ['url', c.postgres.url],
    ['readUrl', c.postgres.readUrl],
  ] as const) {
    if (u !== null && u !== '' && !/^postgres(ql)?:\/\//.test(u))
      out.push(`server.postgres.${name} must be a postgresql:// URL, got "${u.replace(/:[^:@/]*@/, ':***@')}"`);
  }
  return out;
}
