// The daemon's V8 heap, held close to what it keeps alive. V8 sizes the old
// generation's next collection from the largest heap it may reach (a few GiB
// on a machine with memory to spare) and lets it grow up to 4x what survived
// the last collection: in an alert storm the daemon kept ~45 MiB alive and
// its heap still grew to ~140 MiB of promoted garbage before a collection
// (docs/performance.md#the-daemon-at-its-worst). The growing factor is read
// at every full collection, so it can be set once the process runs, unlike
// the young generation's size (which `rarecon score` sets by running again).
import { setFlagsFromString } from 'node:v8';

/**
 * An old generation collected once it has grown by this much over what survived the last collection.
 * Measured in the storm bench; smaller costs more collections for little memory.
 */
export const DAEMON_HEAP_GROWING_PERCENT = 50;

const FLAG = '--heap-growing-percent';

/** Whether the operator set the flag (on the command line or in NODE_OPTIONS): then theirs stands. */
export function heapGrowthChosen(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env['NODE_OPTIONS'] ?? ''): boolean {
  return [...execArgv, nodeOptions].some((a) => a.includes(FLAG) || a.includes('--heap_growing_percent'));
}

/** Sets the growing factor for the rest of the process, unless the operator chose one; the percent set, or null. */
export function boundHeapGrowth(percent = DAEMON_HEAP_GROWING_PERCENT): number | null {
  if (heapGrowthChosen()) return null;
  setFlagsFromString(`${FLAG}=${percent}`);
  return percent;
}
