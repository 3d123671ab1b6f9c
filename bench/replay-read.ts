// Reading speed of the replay source on a generated rarecon NDJSON file:
// line splitting alone, + JSON.parse, + record validation (item by item and in batches).
// Prints figures; never fails on a time.
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { readLineBatches } from '../src/sources/replay/read-lines.js';
import { readLogFile } from '../src/sources/replay/log-reader.js';

const LINES = 400_000;

async function writeSample(file: string): Promise<number> {
  const ws = createWriteStream(file);
  let bytes = 0;
  for (let i = 0; i < LINES; i++) {
    const line =
      i % 4 === 0
        ? `{"type":"dns","time":${1790848800000 + i},"host":{"id":"h${i % 50}"},"query":"s${i % 977}.example.com","answers":[{"ip":"203.0.113.${i % 250}","ttl":300}]}\n`
        : `{"type":"connection","time":${1790848800000 + i},"host":{"id":"h${i % 50}"},"process":{"pid":${1000 + (i % 300)},"sha256":"${(i % 64).toString(16).padStart(2, '0').repeat(32)}"},"protocol":"tcp","remote":{"ip":"203.0.113.${i % 250}","port":443}}\n`;
    bytes += line.length;
    if (!ws.write(line)) await once(ws, 'drain');
  }
  ws.end();
  await once(ws, 'finish');
  return bytes;
}

interface Clock {
  wallMs: number;
  cpu: NodeJS.CpuUsage;
}

const start = (): Clock => ({ wallMs: performance.now(), cpu: process.cpuUsage() });

/** Wall-clock rate, and the rate per CPU-second (steadier on a shared machine). */
function rate(label: string, lines: number, from: Clock, bytes: number): void {
  const ms = performance.now() - from.wallMs;
  const used = process.cpuUsage(from.cpu);
  const cpuMs = (used.user + used.system) / 1000;
  const perS = Math.round((lines / ms) * 1000);
  const perCpuS = Math.round((lines / cpuMs) * 1000);
  const mbS = (bytes / 1048576 / (ms / 1000)).toFixed(0);
  console.log(
    `${label.padEnd(34)} ${String(perS).padStart(9)} lines/s  ${mbS.padStart(4)} MiB/s  ${String(perCpuS).padStart(9)} lines/CPU-s  (${lines} lines, ${ms.toFixed(0)} ms)`,
  );
}

export async function benchReplay(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-replay-'));
  try {
    const file = join(dir, 'events.ndjson');
    const bytes = await writeSample(file);
    console.log(`replay read: ${LINES} lines, ${(bytes / LINES).toFixed(0)} B/line average`);

    let t = start();
    let n = 0;
    for await (const batch of readLineBatches(file)) n += batch.length;
    rate('split lines (readLineBatches)', n, t, bytes);

    t = start();
    n = 0;
    for await (const batch of readLineBatches(file)) {
      for (const item of batch) if ('text' in item && JSON.parse(item.text) !== null) n++;
    }
    rate('split + JSON.parse', n, t, bytes);

    t = start();
    n = 0;
    let errors = 0;
    for await (const item of readLogFile(file)) {
      n++;
      if (item.type === 'error') errors++;
    }
    rate('records, item by item (readLogFile)', n, t, bytes);

    t = start();
    n = 0;
    for await (const batch of readLogFile(file).batches()) n += batch.length;
    rate('records, in batches (.batches())', n, t, bytes);
    if (errors > 0) console.log(`  (${errors} errors: the sample should have none)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchReplay();
}
