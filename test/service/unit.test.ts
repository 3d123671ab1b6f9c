// The shipped systemd unit, checked with systemd's own tools: `systemd-analyze
// verify` clean, `systemd-analyze security --offline=true` exposure 3.5 or lower,
// and the capabilities it grants are the ones the manual lists.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderUnit } from '../../src/cli/service.js';
import { REPO, rarecon } from '../support/cli.js';
import { UNIT_PATH, unitCapabilities, unitSettings, unitSyscalls } from '../support/unit-file.js';

const root = mkdtempSync(join(tmpdir(), 'rarecon-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function analyze(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`systemd-analyze: ${r.error.message} (apt-get install systemd)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the systemd unit', () => {
  it('rates exposure 3.5 or lower in systemd-analyze security --offline=true', () => {
    const r = analyze(['security', '--offline=true', UNIT_PATH]);
    const score = Number(/Overall exposure level for rarecon\.service: (\d+\.\d+)/.exec(r.out)?.[1]);
    console.log(`unit.test: systemd-analyze security exposure ${score}`);
    expect(score).toBeLessThanOrEqual(3.5);
    for (const must of [
      'SystemCallFilter=~@mount',
      'PrivateDevices=',
      'ProtectKernelTunables=',
      'ProtectKernelLogs=',
      'PrivateMounts=',
      'UMask=',
      'CapabilityBoundingSet=~CAP_SYS_ADMIN',
      'CapabilityBoundingSet=~CAP_NET_ADMIN',
    ]) {
      expect(r.out).toMatch(new RegExp(`^✓ ${must.replace(/[~=*]/g, (c) => `\\${c}`)}`, 'm'));
    }
  });

  it('with ExecStart running node, passes systemd-analyze verify with no message', () => {
    const unitPath = join(root, 'verify', 'rarecon.service');
    mkdirSync(dirname(unitPath), { recursive: true });
    writeFileSync(unitPath, renderUnit(process.execPath, '/usr/lib/rarecon/dist/src/cli/main.js'));
    const v = analyze(['verify', unitPath]);
    expect(v.out).toBe('');
    expect(v.code).toBe(0);
  });

  it('`rarecon service install --root` writes it with ExecStart this rarecon and the commented config, or refuses a checkout under /tmp', async () => {
    const r = await rarecon(['service', 'install', '--root', root]);
    if (/^\/(var\/)?tmp\//.test(REPO)) {
      // PrivateTmp would hide this checkout from the service.
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `rarecon: rarecon is under ${REPO}, which the unit's PrivateTmp hides from the service: install it elsewhere (e.g. the Debian package, npm run package)\n`,
      );
      expect(existsSync(join(root, 'etc/systemd/system/rarecon.service'))).toBe(false);
      return;
    }
    expect(r.code, r.stderr).toBe(0);
    const unitPath = join(root, 'etc/systemd/system/rarecon.service');
    const unit = readFileSync(unitPath, 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(REPO, 'dist/src/cli/main.js')} run\n`);
    expect(analyze(['verify', unitPath])).toEqual({ code: 0, out: '' });
    // The config it writes is the commented default, under the schema line, and valid.
    const cfg = readFileSync(join(root, 'etc/rarecon/config.yaml'), 'utf8');
    expect(cfg.split('\n')[0]).toBe('# yaml-language-server: $schema=/usr/share/rarecon/config.schema.json');
    expect((await rarecon(['validate', '--config', join(root, 'etc/rarecon/config.yaml')])).code).toBe(0);
    const u = await rarecon(['service', 'uninstall', '--root', root]);
    expect(u.code).toBe(0);
    expect(existsSync(unitPath)).toBe(false);
    expect(existsSync(join(root, 'etc/rarecon/config.yaml'))).toBe(true);
  });

  it('grants exactly the capabilities the manual lists, and none of CAP_SYS_ADMIN, CAP_NET_ADMIN', () => {
    const caps = unitCapabilities();
    const ops = readFileSync(join(REPO, 'docs', 'operations.md'), 'utf8');
    const listed = /It needs root \(or ([^)]*)\)/.exec(ops.replace(/\s+/g, ' '))?.[1] ?? '';
    expect([...new Set([...listed.matchAll(/CAP_[A-Z_]+/g)].map((m) => m[0]))].sort()).toEqual([...caps].sort());
    expect(caps).not.toContain('CAP_SYS_ADMIN');
    expect(caps).not.toContain('CAP_NET_ADMIN');
    expect(unitSettings('AmbientCapabilities')).toEqual([]);
  });

  it('lets through bpf and perf_event_open for the sensor, and no mount, module, reboot or swap call', () => {
    const allowed = unitSyscalls();
    for (const s of ['bpf', 'perf_event_open', 'read', 'openat', 'socket', 'setrlimit']) expect(allowed).toContain(s);
    for (const s of ['mount', 'umount2', 'init_module', 'reboot', 'swapon', 'kexec_load', 'settimeofday']) expect(allowed).not.toContain(s);
  });
});
