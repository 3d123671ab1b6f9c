// `rarecon status [--state DIR] [--json]`: the daemon's state at a glance.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { formatStatus, readStatus, STATUS_FILE } from '../daemon/status.js';
import { parseCommand } from './command-spec.js';
import { STATUS } from './commands.js';

export async function statusCommand(argv: string[], out: Writable): Promise<number> {
  const parsed = parseCommand(STATUS, argv, out);
  if (parsed === null) return 0;
  const { values } = parsed;
  const dir = values.state;
  const s = readStatus(dir);
  if (s === null && unreadable(join(dir, STATUS_FILE))) {
    out.write(
      `rarecon daemon: ${join(dir, STATUS_FILE)} is readable only by the user rarecon runs as (0600 in a 0700 folder): run this as that user, e.g. with sudo\n`,
    );
    return 1;
  }
  if (s === null) {
    // Asked for JSON, a script gets JSON either way.
    out.write(
      values.json
        ? JSON.stringify({ running: false, stateDir: dir, reason: 'no status file: never started here, or another --state' }) + '\n'
        : `rarecon daemon: no status in ${dir} (never started here, or another --state)\n`,
    );
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
