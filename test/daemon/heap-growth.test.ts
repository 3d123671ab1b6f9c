import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { heapGrowthChosen } from '../../src/daemon/heap-growth.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function peakHeapMiB(mode: 'bounded' | 'default'): number {
  const out = execFileSync(
    process.execPath,
    ['--import', path.join(HERE, '..', 'support', 'ts-register.mjs'), path.join(HERE, '..', 'support', 'heap-growth-child.ts'), mode],
    { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 120_000 },
  );
  return (JSON.parse(out.trim().split('\n').pop() ?? '{}') as { peakHeapBytes: number }).peakHeapBytes / 2 ** 20;
}

describe('the daemon heap bound', () => {
  it('collects a storm of short-lived records near what is kept alive, where V8 alone lets the heap grow several times that', () => {
    const bounded = peakHeapMiB('bounded');
    const unbounded = peakHeapMiB('default');
    // ~20 MiB kept alive and a few MiB of records in flight: measured ~107 MiB bounded (young generation
    // included), ~227 MiB not, on a loaded 2-core machine.
    expect(bounded).toBeLessThan(160);
    expect(bounded).toBeLessThan(unbounded * 0.7);
  }, 240_000);

  it("leaves the operator's own setting alone", () => {
    expect(heapGrowthChosen(['--heap-growing-percent=80'], '')).toBe(true);
    expect(heapGrowthChosen([], '--max-old-space-size=300 --heap-growing-percent=10')).toBe(true);
    expect(heapGrowthChosen(['--max-old-space-size=300'], '')).toBe(false);
  });
});
