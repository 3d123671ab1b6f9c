import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rarecon, REPO } from '../support/cli.js';

const root = mkdtempSync(join(tmpdir(), 'rarecon-service-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('service', () => {
  it("installs a unit with this checkout's paths and a config, and uninstalls it keeping the config", async () => {
    const r = await rarecon(['service', 'install', '--root', root]);
    expect(r.code).toBe(0);
    const unit = readFileSync(join(root, 'etc/systemd/system/rarecon.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(REPO, 'dist/src/cli/main.js')} run --config /etc/rarecon/config.yaml`);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    expect(unit).toMatch(/^ReadWritePaths=\/var\/lib\/rarecon$/m);
    expect(unit).toMatch(/^MemoryMax=/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    const cfg = await rarecon(['validate', '--config', join(root, 'etc/rarecon/config.yaml')]);
    expect(cfg.code).toBe(0);
    const u = await rarecon(['service', 'uninstall', '--root', root]);
    expect(u.code).toBe(0);
    expect(existsSync(join(root, 'etc/systemd/system/rarecon.service'))).toBe(false);
    expect(existsSync(join(root, 'etc/rarecon/config.yaml'))).toBe(true);
  });

  it.skipIf(!hasAnalyze)('the shipped unit passes systemd-analyze verify', () => {
    if (!hasAnalyze) console.log('skipped: systemd-analyze is not installed');
    const r = spawnSync('systemd-analyze', ['verify', join(REPO, 'service/rarecon.service')], { encoding: 'utf8' });
    // verify prints nothing and exits 0 for a clean unit; ExecStart must name an existing binary.
    expect(r.stderr.replace(/.*Failed to .*(cgroup|bus).*\n?/g, '')).toBe('');
    expect(r.status).toBe(0);
  });
});
