// `rarecon service install|uninstall|status [--root DIR] [--no-start]` on Linux (systemd).
// install writes the hardened unit from service/rarecon.service with this
// checkout's paths, a commented config if none exists, then enables and starts it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { UsageError } from './io.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const UNIT_TEMPLATE = join(REPO, 'service', 'rarecon.service');

export function renderUnit(nodePath: string, mainJs: string): string {
  const template = readFileSync(UNIT_TEMPLATE, 'utf8');
  return template.replace(/^ExecStart=.*$/m, `ExecStart=${nodePath} ${mainJs} run --config /etc/rarecon/config.yaml`);
}

function systemctl(args: string[], out: Writable): boolean {
  const r = spawnSync('systemctl', args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    out.write(`systemctl ${args.join(' ')}: ${r.error.message}\n`);
    return false;
  }
  if (r.stdout) out.write(r.stdout);
  if (r.status !== 0) out.write(`systemctl ${args.join(' ')} failed: ${(r.stderr || '').trim()}\n`);
  return r.status === 0;
}

function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

export async function serviceCommand(argv: string[], out: Writable): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { root: { type: 'string', default: '/' }, 'no-start': { type: 'boolean', default: false } },
  });
  const action = positionals[0];
  if (process.platform !== 'linux')
    throw new UsageError('rarecon service manages a systemd unit on Linux; see service/ for launchd and Windows');
  const root = values.root;
  const unitPath = join(root, 'etc/systemd/system/rarecon.service');
  const configPath = join(root, 'etc/rarecon/config.yaml');
  const live = root === '/' && !values['no-start'] && systemdRunning();
  switch (action) {
    case 'install': {
      mkdirSync(dirname(unitPath), { recursive: true });
      writeFileSync(unitPath, renderUnit(process.execPath, join(REPO, 'dist', 'src', 'cli', 'main.js')));
      out.write(`wrote ${unitPath}\n`);
      if (!existsSync(configPath)) {
        mkdirSync(dirname(configPath), { recursive: true, mode: 0o755 });
        writeFileSync(
          configPath,
          '# rarecon config: every setting is optional; see docs/configuration.md.\n# Check it with: rarecon validate --config /etc/rarecon/config.yaml\n{}\n',
          { mode: 0o640 },
        );
        out.write(`wrote ${configPath}\n`);
      }
      if (!live) {
        out.write(
          root === '/' && !systemdRunning()
            ? 'systemd is not running here: enable the unit on a host that boots with systemd\n'
            : 'not started (--no-start or --root)\n',
        );
        return 0;
      }
      return systemctl(['daemon-reload'], out) && systemctl(['enable', '--now', 'rarecon.service'], out) ? 0 : 1;
    }
    case 'uninstall': {
      if (live) {
        systemctl(['disable', '--now', 'rarecon.service'], out);
      }
      rmSync(unitPath, { force: true });
      out.write(`removed ${unitPath} (config and state kept: /etc/rarecon, /var/lib/rarecon)\n`);
      if (live) systemctl(['daemon-reload'], out);
      return 0;
    }
    case 'status': {
      out.write(`unit: ${existsSync(unitPath) ? unitPath : 'not installed'}\n`);
      if (systemdRunning()) systemctl(['status', '--no-pager', 'rarecon.service'], out);
      return 0;
    }
    default:
      throw new UsageError('usage: rarecon service install|uninstall|status [--root DIR] [--no-start]');
  }
}
