// A child for heap-growth.test.ts: a storm's shape of allocation (a few MiB of records alive at
// once, each soon dropped, so many survive into the old generation) over ~20 MiB kept alive; prints
// the largest heap seen. argv[2] 'bounded' applies the daemon's bound first.
import { boundHeapGrowth } from '../../src/daemon/heap-growth.js';

if (process.argv[2] === 'bounded') boundHeapGrowth();
const kept: Array<{ s: string; n: number[] }> = [];
for (let i = 0; i < 100_000; i++) kept.push({ s: `kept-${'x'.repeat(120)}-${i}`, n: [i, i + 1] });
let window: Array<{ pid: number; stack: bigint[]; ip: string }> = [];
let peak = 0;
for (let i = 0; i < 700_000; i++) {
  const stack: bigint[] = [];
  for (let j = 0; j < 16; j++) stack.push(BigInt(i) * 1_000_003n + BigInt(j));
  window.push({ pid: i, stack, ip: `198.51.100.${i & 255}` });
  if (window.length > 8_000) window = window.slice(3_000);
  if ((i & 1023) === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
}
process.stdout.write(JSON.stringify({ peakHeapBytes: peak, kept: kept.length }) + '\n');
