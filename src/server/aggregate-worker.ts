// Worker-thread entry of the aggregation: runs aggregate() (SQLite) or
// aggregatePg() (PostgreSQL) with the options it is given and posts the result
// back. Keeps the server's HTTP loop free while minutes of synchronous SQLite
// and builder work (or the baseline file's writing) go on.
import { parentPort, workerData } from 'node:worker_threads';
import { aggregate } from './aggregate.js';
import { aggregatePg } from './pg-aggregate.js';
import type { BuildJob } from './build-runner.js';

if (parentPort !== null) {
  const job = workerData as BuildJob;
  const port = parentPort;
  if (job.store === 'sqlite') port.postMessage(aggregate(job.opts));
  else void aggregatePg(job.opts).then((r) => port.postMessage(r));
}
