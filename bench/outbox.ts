// Outbox figures: durable enqueue rate (batched and one by one, WAL with
// synchronous NORMAL and FULL) and the drain rate to an HTTP receiver on
// loopback. Prints figures; never fails on a time.
//
// Durability: with WAL and synchronous=NORMAL a committed enqueue survives a
// crash or kill -9 of rarecon, but the last commits before a power loss or an
// OS crash may be lost (WAL is fsynced at checkpoints only). FULL fsyncs the
// WAL on every commit and survives those too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DetectionAlert } from '../src/model/alert.js';
import { SINK_DEFAULTS } from '../src/config/defaults.js';
import { DeliveryLoop } from '../src/report/delivery.js';
import { HttpSink } from '../src/report/http-sink.js';
import { Outbox } from '../src/report/outbox.js';
import { fleetDetection } from '../test/support/alerts.js';

function openOutbox(dir: string, name: string, synchronous: 'normal' | 'full'): Outbox {
  return Outbox.open({
    path: join(dir, `${name}.db`),
    sinks: ['bench'],
    maxRows: 10_000_000,
    maxBytes: 8 * 1024 ** 3,
    synchronous,
    deadLetterMaxRows: 1000,
  });
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
}

function enqueueBatched(o: Outbox, alerts: readonly DetectionAlert[], batch: number): number {
  const t0 = performance.now();
  for (let i = 0; i < alerts.length; i += batch) {
    const r = o.enqueueMany(alerts.slice(i, i + batch));
    if (!r.ok) throw new Error(`enqueue failed: ${r.error}`);
  }
  return performance.now() - t0;
}

// The receiver runs in a worker thread so that parsing what arrives does not
// share the event loop (and the figure) with the sending side.
const RECEIVER = `
const http = require('node:http');
const { parentPort } = require('node:worker_threads');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const n = JSON.parse(Buffer.concat(chunks).toString('utf8')).length;
    res.writeHead(200).end();
    parentPort.postMessage({ alerts: n });
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

async function drain(o: Outbox, total: number, batchMaxAlerts: number): Promise<{ ms: number; requests: number }> {
  let received = 0;
  let requests = 0;
  const worker = new Worker(RECEIVER, { eval: true });
  const port = await new Promise<number>((resolve) =>
    worker.on('message', (m: { port?: number; alerts?: number }) => {
      if (m.port !== undefined) resolve(m.port);
      if (m.alerts !== undefined) {
        received += m.alerts;
        requests++;
      }
    }),
  );
  const url = `http://127.0.0.1:${port}/ingest`;
  const sink = new HttpSink({ ...SINK_DEFAULTS.http, name: 'bench', url, batchMaxAlerts, lingerMs: 0 });
  const loop = new DeliveryLoop(o, sink, {
    batchMaxAlerts,
    lingerMs: 0,
    pollMs: 100,
    backoff: { initialMs: 100, maxMs: 1000, maxRetryAfterMs: 1000 },
    maxAttempts: 0,
  });
  const t0 = performance.now();
  loop.start();
  while (o.size.rows > 0) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  await loop.shutdown();
  await sink.close();
  while (received < total && performance.now() - t0 < ms + 5_000) await new Promise((r) => setTimeout(r, 10));
  await worker.terminate();
  if (received < total) throw new Error(`the receiver got ${received} of ${total}`);
  return { ms, requests };
}

export async function benchOutbox(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rarecon-bench-outbox-'));
  try {
    const n = 100_000;
    const alerts = Array.from({ length: n }, (_, i) => fleetDetection(i));
    const bytes = Buffer.byteLength(JSON.stringify(alerts[0]));
    console.log(`outbox: ${n.toLocaleString('en-US')} alerts of ~${bytes} B (stored JSON), one sink`);

    for (const sync of ['normal', 'full'] as const) {
      for (const batch of [100, 500]) {
        const o = openOutbox(dir, `b-${sync}-${batch}`, sync);
        const ms = enqueueBatched(o, alerts, batch);
        console.log(`  enqueue, WAL synchronous=${sync.toUpperCase()}, ${batch} a transaction: ${rate(n, ms)} (${ms.toFixed(0)} ms)`);
        o.close();
      }
      const single = 10_000;
      const o = openOutbox(dir, `s-${sync}`, sync);
      const ms = enqueueBatched(o, alerts.slice(0, single), 1);
      console.log(`  enqueue, WAL synchronous=${sync.toUpperCase()}, one a transaction: ${rate(single, ms)}`);
      o.close();
    }

    const held = openOutbox(dir, 'drain', 'normal');
    enqueueBatched(held, alerts, 500);
    held.close();
    let t0 = performance.now();
    const o = openOutbox(dir, 'drain', 'normal');
    console.log(`  open with ${n.toLocaleString('en-US')} alerts held: ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
    o.stats();
    console.log(`  stats() with ${n.toLocaleString('en-US')} alerts held: ${(performance.now() - t0).toFixed(0)} ms`);
    const d = await drain(o, n, 1000);
    console.log(
      `  drain to HTTP on loopback (OCSF JSON array, 1000 a request): ${rate(n, d.ms)} (${d.requests} requests, ${d.ms.toFixed(0)} ms)`,
    );
    const s = o.stats();
    console.log(`  after drain: ${s.rows} rows held, ${s.deliveredTotal.toLocaleString('en-US')} delivered`);
    o.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await benchOutbox();
}
