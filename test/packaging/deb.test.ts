// The Debian package as an administrator meets it: built by `npm run package`
// (here without rebuilding dist/ under the running tests), installed with dpkg
// into a throwaway copy of this machine (an overlay of / in a private mount
// namespace, chrooted into), then `rarecon --version`, `rarecon validate`,
// `systemd-analyze verify` on the installed unit, a first scoring, and a purge
// that leaves none of its files. Prints the package's size and the install time.
// Needs root (mount namespace, overlayfs); skips with the reason otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/cli.js';
import { rootReason } from '../support/env.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`deb.test: skipping: ${skipReason}`);

const VERSION = (
  JSON.parse(execFileSync('node', ['-p', 'JSON.stringify(require("./package.json"))'], { cwd: REPO, encoding: 'utf8' })) as {
    version: string;
  }
).version;

let dir = '';
let deb = '';
/** What the script in the chroot printed, by marker: `@@name` lines start a section. */
const sections = new Map<string, string>();

// Runs inside the chroot: each step's output under a marker, never stopping early.
const CHROOT_SCRIPT = `
set +e
mark() { echo "@@$1"; }
mark before; dpkg-query -W -f='\${Status}' rarecon 2>&1; echo
mark install; t0=$(date +%s%N); DEBIAN_FRONTEND=noninteractive dpkg -i /pkg/rarecon.deb 2>&1; echo "rc=$?"; t1=$(date +%s%N); echo "ms=$(( (t1 - t0) / 1000000 ))"
mark status; dpkg-query -W -f='\${Status} \${Version} \${Installed-Size}' rarecon 2>&1; echo
mark version; rarecon --version 2>&1; echo "rc=$?"
mark validate; rarecon validate 2>&1; echo "rc=$?"
mark configline; head -n 1 /etc/rarecon/config.yaml
mark verify; systemd-analyze verify /lib/systemd/system/rarecon.service 2>&1; echo "rc=$?"
mark security; systemd-analyze security --offline=true /lib/systemd/system/rarecon.service 2>&1 | tail -n 1
mark score; rarecon baseline build --unit host --out /pkg/b.db /pkg/history.jsonl >/dev/null 2>&1; rarecon score --baseline /pkg/b.db /pkg/today.jsonl 2>/dev/null | head -c 300; echo; echo "rc=$?"
mark files; dpkg -L rarecon > /pkg/files; grep -c . /pkg/files
mark purge; DEBIAN_FRONTEND=noninteractive dpkg -P rarecon 2>&1; echo "rc=$?"
mark after; dpkg-query -W -f='\${Status}' rarecon 2>&1; echo
mark left; while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done < /pkg/files; for d in /usr/lib/rarecon /etc/rarecon /var/lib/rarecon /usr/share/rarecon; do [ -e "$d" ] && echo "$d"; done
mark end
`;

beforeAll(async () => {
  if (skipReason !== null) return;
  dir = mkdtempSync(join(tmpdir(), 'rarecon-deb-'));
  deb = join(dir, 'pkg', 'rarecon.deb');
  const built = spawnSync('bash', [join(REPO, 'packaging', 'build-deb.sh'), '--no-build', '--out', deb], { cwd: REPO, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`npm run package failed:\n${built.stdout}${built.stderr}`);
  console.log(`deb.test: ${built.stdout.trim().split('\n').pop() ?? ''}`);
  const golden = join(REPO, 'test', 'golden', 'basic');
  for (const f of ['history.jsonl', 'today.jsonl']) execFileSync('cp', [join(golden, f), join(dir, 'pkg', f)]);
  const merged = join(dir, 'merged');
  for (const d of ['upper', 'work', 'merged']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'inside.sh'), CHROOT_SCRIPT);
  // The package folder is bind-mounted at /pkg in the chroot; the rest is this machine, copy-on-write.
  const outer = [
    `mount -t overlay overlay -o lowerdir=/,upperdir=${dir}/upper,workdir=${dir}/work ${merged}`,
    `for m in proc sys dev; do mount --rbind /$m ${merged}/$m; done`,
    `mkdir -p ${merged}/pkg && mount --bind ${dir}/pkg ${merged}/pkg`,
    `cp ${dir}/inside.sh ${merged}/pkg/inside.sh`,
    `chroot ${merged} sh /pkg/inside.sh`,
  ].join(' && ');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0 && !r.stdout.includes('@@end')) throw new Error(`the chroot install failed (${r.status}):\n${r.stdout}${r.stderr}`);
  let name = '';
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('@@')) {
      name = line.slice(2);
      sections.set(name, '');
    } else if (name !== '') sections.set(name, `${sections.get(name) ?? ''}${line}\n`);
  }
}, 600_000);

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const section = (name: string): string => (sections.get(name) ?? '').trim();

describe.skipIf(skipReason !== null)('the Debian package (npm run package)', () => {
  it('is a .deb of rarecon with the built JavaScript, production node_modules, the helper and its CO-RE object, the unit and the config', () => {
    const info = execFileSync('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Depends'], { encoding: 'utf8' });
    expect(info).toContain('Package: rarecon\n');
    expect(info).toContain(`Version: ${VERSION}\n`);
    expect(info).toMatch(/^Depends: nodejs \(>= 20\.12\)/m);
    const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 })
      .split('\n')
      .map((l) => l.split(/\s+/)[5] ?? '')
      .filter((f) => f !== '');
    for (const f of [
      './usr/bin/rarecon',
      './usr/lib/rarecon/dist/src/cli/main.js',
      './usr/lib/rarecon/native-events/build/rarecon-events',
      './usr/lib/rarecon/native-events/build/rarecon_events.bpf.o',
      './usr/lib/rarecon/native-events/build/line_scan.node',
      './usr/lib/rarecon/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './usr/lib/rarecon/node_modules/tldts/package.json',
      './lib/systemd/system/rarecon.service',
      './etc/rarecon/config.yaml',
      './usr/share/rarecon/config.schema.json',
    ]) {
      expect(files, f).toContain(f);
    }
    // No development packages, tests or benchmarks.
    expect(files.filter((f) => /node_modules\/(typescript|vitest|eslint|prettier|dependency-cruiser)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\/dist\/(test|bench)\//.test(f))).toEqual([]);
    const bytes = statSync(deb).size;
    console.log(`deb.test: rarecon_${VERSION}.deb is ${(bytes / 2 ** 20).toFixed(2)} MiB (${bytes} bytes)`);
  });

  it('installs with dpkg, runs, validates its config, and its unit passes systemd-analyze verify', () => {
    expect(section('before')).toMatch(/no packages found matching rarecon|not-installed/);
    const install = section('install');
    expect(install).toContain('rc=0');
    const ms = Number(/ms=(\d+)/.exec(install)?.[1]);
    console.log(`deb.test: dpkg -i took ${ms} ms; installed: ${section('status')}`);
    expect(section('status')).toMatch(new RegExp(`^install ok installed ${VERSION.replace(/\./g, '\\.')} \\d+$`));
    expect(section('version')).toBe(`rarecon ${VERSION}\nrc=0`);
    expect(section('validate')).toBe('/etc/rarecon/config.yaml: valid\nrc=0');
    expect(section('configline')).toBe('# yaml-language-server: $schema=/usr/share/rarecon/config.schema.json');
    expect(section('verify')).toBe('rc=0');
    const score = Number(/exposure level for rarecon\.service: (\d+\.\d+)/.exec(section('security'))?.[1]);
    expect(score).toBeLessThanOrEqual(3.5);
  });

  it('scores logs from the installed files (better-sqlite3, the line scanner)', () => {
    const out = section('score');
    expect(out).toMatch(/^\{"category_uid":2,"category_name":"Findings","class_uid":2004/);
    expect(out.endsWith('rc=0')).toBe(true);
  });

  it('purges cleanly: not installed, and none of its files left', () => {
    expect(Number(section('files'))).toBeGreaterThan(100);
    expect(section('purge')).toContain('rc=0');
    expect(section('after')).toMatch(/no packages found matching rarecon|not-installed/);
    expect(section('left')).toBe('');
  });
});
