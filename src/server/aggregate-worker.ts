// Worker-thread entry of the aggregation: runs aggregate() with the options it
// is given and posts the result back. Keeps the server's HTTP loop free while
// minutes of synchronous SQLite and builder work go on.
import { parentPort, workerData } from 'node:worker_threads';
import { aggregate, type AggregateOptions } from './aggregate.js';

if (parentPort !== null) {
  const result = aggregate(workerData as AggregateOptions);
  parentPort.postMessage(result);
}
