import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LineBatch } from '../../src/daemon/line-batch.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function file(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'rarecon-line-batch-'));
  dirs.push(d);
  return path.join(d, 'out.jsonl');
}

describe('LineBatch', () => {
  it('writes the lines gathered meanwhile in one write, in their order, and all of them at the end', async () => {
    const f = file();
    const out = createWriteStream(f);
    const writes: number[] = [];
    let wrote: () => void = () => undefined;
    const first = new Promise<void>((r) => (wrote = r));
    const write = out.write.bind(out) as (chunk: string) => boolean;
    out.write = ((chunk: string) => {
      writes.push(chunk.split('\n').length - 1);
      wrote();
      return write(chunk);
    }) as typeof out.write;
    const b = new LineBatch(out, 20);
    for (let i = 0; i < 100; i++) b.write(`{"n":${i}}\n`);
    await first;
    b.write('{"n":100}\n');
    await b.end();
    expect(writes).toEqual([100, 1]);
    const lines = readFileSync(f, 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { n: number }).n)).toEqual(Array.from({ length: 101 }, (_, i) => i));
  });

  it('writes at once within the turn when a MiB is gathered', () => {
    const out = createWriteStream(file());
    let writes = 0;
    const write = out.write.bind(out) as (chunk: string) => boolean;
    out.write = ((chunk: string) => {
      writes++;
      return write(chunk);
    }) as typeof out.write;
    const b = new LineBatch(out);
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 1024; i++) b.write(line);
    expect(writes).toBe(1);
    return b.end();
  });
});
