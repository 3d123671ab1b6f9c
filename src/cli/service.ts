// `rarecon service install|uninstall|status [--root DIR] [--no-start]` on Linux (systemd).
// install writes the hardened unit from service/rarecon.service with ExecStart
// running this rarecon, a commented config if none exists, then enables and
// starts it. It refuses what would not run: no systemd (unless --root or
// --no-start, for an image being built), or a rarecon under /tmp, which the
// unit's PrivateTmp hides from the service.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Writable } from 'node:stream';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { helpText, parseCommand, usageHint, wantsHelp } from './command-spec.js';
import { SERVICE, SERVICE_SUBCOMMANDS } from './commands.js';
import { commentedDefaultConfig } from './config-schema.js';
import { UsageError } from './io.js';

/** The install folder (the checkout, or /usr/lib/rarecon of the Debian package): the nearest folder up with a package.json. */
function installHome(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
const HOME = installHome();
const UNIT_TEMPLATE = join(HOME, 'service', 'rarecon.service');
/** The schema the package installs beside the command (npm run package). */
export const INSTALLED_SCHEMA = '/usr/share/rarecon/config.schema.json';

/** The unit with ExecStart running `main.js` of this install with `nodePath`. */
export function renderUnit(nodePath: string, mainJs: string): string {
  const template = readFileSync(UNIT_TEMPLATE, 'utf8');
  return template.replace(/^ExecStart=.*$/m, `ExecStart=${nodePath} ${mainJs} run`);
}

function systemctl(args: string[], out: Writable): boolean {
  const r = spawnSync('systemctl', args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    out.write(`systemctl ${args.join(' ')}: ${r.error.message}\n`);
    return false;
  }
  if (r.stdout) out.write(r.stdout);
  if (r.stderr && r.status !== 0) out.write(`systemctl ${args.join(' ')} failed: ${r.stderr.trim()}\n`);
  return r.status === 0;
}

function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

/** Paths the unit cannot reach: PrivateTmp gives the service its own /tmp and /var/tmp. */
function hiddenFromUnit(path: string): boolean {
  return /^\/(var\/)?tmp(\/|$)/.test(path);
}

export async function serviceCommand(argv: string[], out: Writable): Promise<number> {
  const first = argv[0] as keyof typeof SERVICE_SUBCOMMANDS | undefined;
  if (first !== undefined && first in SERVICE_SUBCOMMANDS && wantsHelp(argv)) {
    out.write(helpText(SERVICE_SUBCOMMANDS[first]));
    return 0;
  }
  const parsed = parseCommand(SERVICE, argv, out);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const action = positionals[0];
  if (action !== 'install' && action !== 'uninstall' && action !== 'status') {
    throw new UsageError(
      `${action === undefined ? 'service needs install, uninstall or status' : `unknown service command "${action}"`}\n${usageHint(SERVICE)}`,
    );
  }
  if (process.platform !== 'linux')
    throw new UsageError('rarecon service manages a systemd unit on Linux; see service/ for launchd and Windows');
  const root = values.root;
  const unitPath = join(root, 'etc/systemd/system/rarecon.service');
  const configPath = join(root, DEFAULT_CONFIG_PATH);
  const intoImage = root !== '/' || values['no-start'];
  const live = !intoImage && systemdRunning();
  switch (action) {
    case 'install': {
      if (!intoImage && !systemdRunning()) {
        throw new UsageError(
          'systemd is not running on this host (no /run/systemd/system): nothing written. Run the daemon with "rarecon run", or write the unit into an image with --root DIR or --no-start',
        );
      }
      const mainJs = join(HOME, 'dist', 'src', 'cli', 'main.js');
      if (hiddenFromUnit(mainJs)) {
        throw new UsageError(
          `rarecon is under ${HOME}, which the unit's PrivateTmp hides from the service: install it elsewhere (e.g. the Debian package, npm run package)`,
        );
      }
      mkdirSync(dirname(unitPath), { recursive: true });
      writeFileSync(unitPath, renderUnit(process.execPath, mainJs));
      out.write(`wrote ${unitPath}\n`);
      if (!existsSync(configPath)) {
        mkdirSync(dirname(configPath), { recursive: true, mode: 0o755 });
        writeFileSync(configPath, commentedDefaultConfig(INSTALLED_SCHEMA), { mode: 0o640 });
        out.write(`wrote ${configPath} (every setting commented out: the embedded default)\n`);
      }
      if (!live) {
        out.write('not started (--no-start or --root)\n');
        return 0;
      }
      return systemctl(['daemon-reload'], out) && systemctl(['enable', '--now', 'rarecon.service'], out) ? 0 : 1;
    }
    case 'uninstall': {
      if (live) systemctl(['disable', '--now', 'rarecon.service'], out);
      rmSync(unitPath, { force: true });
      out.write(`removed ${unitPath} (config and state kept: /etc/rarecon, /var/lib/rarecon)\n`);
      if (live) systemctl(['daemon-reload'], out);
      return 0;
    }
    case 'status': {
      out.write(`unit: ${existsSync(unitPath) ? unitPath : 'not installed'}\n`);
      if (systemdRunning()) systemctl(['status', '--no-pager', 'rarecon.service'], out);
      else out.write('systemd is not running on this host\n');
      return 0;
    }
  }
}
