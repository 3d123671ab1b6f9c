// Every number of the config schema has a bound, and every setting that
// reaches a Node timer is bounded by Node's longest timer (2^31-1 ms; longer
// ones become 1 ms timers that spin the daemon). A new *Ms setting must say
// which it is: a timer, or a window compared with event times.
import { describe, expect, it } from 'vitest';
import { CONFIG_SPEC, parseConfigText } from '../../src/cli/config-file.js';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { MAX_TIMER_MS, validate, type Problem, type Spec } from '../../src/config/spec.js';

/** *Ms settings that are windows over event or wall-clock times, compared, never handed to a timer. */
const WINDOWS = new Set([
  'detect.dedupWindowMs',
  'detect.dnsGraceMs',
  'detect.processAccessParentMs',
  'sync.pendingTimeoutMs',
  'sync.bucketIdleMs',
  'sync.staleGraceMs',
  'server.credentialLifetimeMs',
  'server.credentialGraceMs',
  'server.buildGraceMs',
  'watchdog.startupGraceMs',
]);

function numbers(spec: Spec, path: string, out: Array<{ path: string; spec: Extract<Spec, { kind: 'number' }> }>): typeof out {
  if (spec.kind === 'number') out.push({ path, spec });
  else if (spec.kind === 'array') numbers(spec.of, `${path}[]`, out);
  else if (spec.kind === 'object') for (const [k, v] of Object.entries(spec.fields)) numbers(v, path === '' ? k : `${path}.${k}`, out);
  return out;
}

const all = numbers(CONFIG_SPEC, '', []);

describe('config bounds', () => {
  it('bounds every number', () => {
    expect(all.length).toBeGreaterThan(60);
    expect(all.filter((n) => n.spec.max === undefined || !(n.spec.max <= Number.MAX_SAFE_INTEGER)).map((n) => n.path)).toEqual([]);
  });

  it('keeps every timer setting within 2^31-1 ms, and names every *Ms setting a timer or a window', () => {
    const ms = all.filter((n) => /Ms$/.test(n.path));
    expect(ms.filter((n) => n.spec.timer !== true && !WINDOWS.has(n.path)).map((n) => n.path)).toEqual([]);
    expect(ms.filter((n) => n.spec.timer === true && n.spec.max! > MAX_TIMER_MS).map((n) => n.path)).toEqual([]);
    // The ones the issue met: the watchdog, the delivery poll and backoff, the sync jitter, the enrichment timeout.
    for (const p of [
      'watchdog.intervalMs',
      'report.pollMs',
      'report.backoff.maxMs',
      'sync.jitterMs',
      'enrich.timeoutMs',
      'statusIntervalMs',
    ])
      expect(ms.find((n) => n.path === p)?.spec.timer, p).toBe(true);
  });

  it('takes every default', () => {
    const problems: Problem[] = [];
    validate(JSON.parse(JSON.stringify(DEFAULT_CONFIG)) as unknown, CONFIG_SPEC, '', problems);
    expect(problems).toEqual([]);
  });

  it('refuses 2^31 ms in each timer setting, with why, and takes 2^31-1', () => {
    for (const { path, spec } of all.filter((n) => n.spec.timer === true && n.spec.max === MAX_TIMER_MS && !n.path.includes('[]'))) {
      const yaml = (v: number): string =>
        path
          .split('.')
          .map((k, i, a) => `${'  '.repeat(i)}${k}:${i === a.length - 1 ? ` ${v}` : ''}`)
          .join('\n');
      const r = parseConfigText(yaml(2 ** 31), 'c.yaml');
      expect(r.ok ? [] : r.problems, path).toEqual([
        {
          path,
          line: path.split('.').length,
          message: `must be at most 2147483647 (Node's longest timer, about 24.8 days), got 2147483648`,
        },
      ]);
      // 2^31-1 itself passes the bound (another rule may still tie it to a second setting, as backoff's initial to max).
      const at = parseConfigText(yaml(MAX_TIMER_MS), 'c.yaml');
      if (spec.min! <= MAX_TIMER_MS) expect(at.ok ? [] : at.problems.filter((p) => p.message.includes('at most')), path).toEqual([]);
    }
  });
});
