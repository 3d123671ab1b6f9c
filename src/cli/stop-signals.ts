// SIGTERM and SIGINT for `rarecon run`, caught from the moment the command is
// chosen, before its modules load: a stop asked during start-up is kept and
// honoured as soon as the daemon can stop cleanly (exit 0, stores closed,
// status written), instead of Node's default death with status 143.
import { constants as osConstants } from 'node:os';

export type StopSignal = 'SIGTERM' | 'SIGINT';

let installed = false;
let asked: StopSignal | null = null;
let handler: ((signal: StopSignal) => void) | null = null;

/** Installs the handlers (once). A second signal while stopping exits at once, as an impatient operator means. */
export function catchStopSignals(): void {
  if (installed) return;
  installed = true;
  for (const s of ['SIGTERM', 'SIGINT'] as const) {
    process.on(s, () => {
      if (asked !== null) process.exit(128 + (osConstants.signals[s] ?? 0));
      asked = s;
      handler?.(s);
    });
  }
}

// main.ts imports this module first, so for `rarecon run` the handlers are in place before any other
// module of the command is even read.
if (process.argv[2] === 'run') catchStopSignals();

/** The first stop signal so far, or null. */
export function stopSignalAsked(): StopSignal | null {
  return asked;
}

/** Who stops on the signal; called at once when one came already. */
export function onStopSignal(h: (signal: StopSignal) => void): void {
  handler = h;
  if (asked !== null) h(asked);
}
