// `rarecon status [--state DIR] [--json]`: the daemon's state at a glance.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { DEFAULT_STATE_DIR } from '../config/defaults.js';
import { formatStatus, readStatus } from '../daemon/status.js';

export async function statusCommand(argv: string[], out: Writable): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { state: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const dir = values.state ?? DEFAULT_STATE_DIR;
  const s = readStatus(dir);
  if (s === null) {
    out.write(`rarecon daemon: no status in ${dir} (never started here, or another --state)\n`);
    return 1;
  }
  out.write(values.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
  return 0;
}
