// Runs one aggregation at a time, in a worker thread when the code runs
// compiled (a worker cannot load TypeScript source), inline otherwise.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { aggregate, type AggregateOptions, type AggregateResult } from './aggregate.js';
import { aggregatePg, type PgAggregateOptions } from './pg-aggregate.js';

const WORKER_URL = new URL('./aggregate-worker.js', import.meta.url);

export type BuildJob = { store: 'sqlite'; opts: AggregateOptions } | { store: 'postgresql'; opts: PgAggregateOptions };

export function workerAvailable(): boolean {
  return existsSync(fileURLToPath(WORKER_URL));
}

export function runAggregation(job: BuildJob, inWorker: boolean): Promise<AggregateResult> {
  if (!inWorker || !workerAvailable()) {
    if (job.store === 'postgresql') return aggregatePg(job.opts);
    const opts = job.opts;
    return new Promise((resolve) => setImmediate(() => resolve(aggregate(opts))));
  }
  return new Promise((resolve) => {
    const worker = new Worker(WORKER_URL, { workerData: job });
    let settled = false;
    const done = (r: AggregateResult): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    worker.once('message', (r: AggregateResult) => done(r));
    worker.once('error', (e) => done({ ok: false, error: `the aggregation worker failed: ${e.message}` }));
    worker.once('exit', (code) => done({ ok: false, error: `the aggregation worker exited with code ${code} before answering` }));
  });
}
