// `rarecon status [--state DIR] [--json]`: the daemon's state at a glance.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { DEFAULT_STATE_DIR } from '../config/defaults.js';
import { formatStatus, readStatus, STATUS_FILE } from '../daemon/status.js';

export async function statusCommand(argv: string[], out: Writable): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { state: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const dir = values.state ?? DEFAULT_STATE_DIR;
  const s = readStatus(dir);
  if (s === null && unreadable(join(dir, STATUS_FILE))) {
    out.write(
      `rarecon daemon: ${join(dir, STATUS_FILE)} is readable only by the user rarecon runs as (0600 in a 0700 folder): run this as that user, e.g. with sudo\n`,
    );
    return 1;
  }
  if (s === null) {
    out.write(`rarecon daemon: no status in ${dir} (never started here, or another --state)\n`);
    return 1;
  }
  out.write(values.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
  return 0;
}

function unreadable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EACCES';
  }
}
