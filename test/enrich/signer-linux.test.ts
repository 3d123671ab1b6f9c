import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_KNOWN_VENDORS } from '../../src/config/defaults.js';
import { LinuxSigner, isKnownVendor, parseDpkgStatus, parseImaXattr, vendorFromOsRelease } from '../../src/enrich/signer-linux.js';

const CURL = '/usr/bin/curl';
const md5Of = (path: string): string => createHash('md5').update(readFileSync(path)).digest('hex');
const hasDpkg = existsSync('/var/lib/dpkg/status');

let dir: string;
const children: ChildProcess[] = [];

async function run(file: string, args: string[], imageMatches: (link: string) => boolean): Promise<number> {
  const child = spawn(file, args, { stdio: 'ignore' });
  children.push(child);
  const pid = child.pid as number;
  for (let i = 0; i < 200; i++) {
    if (imageMatches(await readlink(`/proc/${pid}/exe`).catch(() => ''))) return pid;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${file} did not start`);
}

/** A dpkg database in a folder: the files a package lists, its md5sums and status. */
function fakeDpkgRoot(name: string, files: Record<string, string>, listed: Record<string, string>): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'var/lib/dpkg/info'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  symlinkSync('usr/bin', join(root, 'bin')); // a /usr-merged system
  writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\n');
  writeFileSync(
    join(root, 'var/lib/dpkg/status'),
    'Package: fakepkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.2-3\n\n',
  );
  writeFileSync(join(root, 'var/lib/dpkg/diversions'), '');
  for (const [path, source] of Object.entries(files)) copyFileSync(source, join(root, path));
  writeFileSync(join(root, 'var/lib/dpkg/info/fakepkg.list'), `/.\n/usr\n/usr/bin\n${Object.keys(listed).join('\n')}\n`);
  writeFileSync(
    join(root, 'var/lib/dpkg/info/fakepkg.md5sums'),
    Object.entries(listed)
      .map(([p, md5]) => `${md5}  ${p.slice(1)}\n`)
      .join(''),
  );
  return root;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-signer-'));
  if (!existsSync(CURL)) spawnSync('apt-get', ['install', '-y', 'curl'], { stdio: 'ignore' });
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasDpkg)('LinuxSigner on this Debian host', () => {
  it('finds /usr/bin/curl valid, signed by Debian, a known vendor', async () => {
    const r = await new LinuxSigner().signerOfFile(CURL);
    expect(r.error).toBeNull();
    expect(r.signer.status).toBe('valid');
    expect(r.signer.vendor).toBe('Debian');
    expect(r.signer.subject).toMatch(/^Debian package curl \d\S+$/);
    expect(isKnownVendor(r.signer, DEFAULT_KNOWN_VENDORS)).toBe(true);
  });

  it('follows /usr-merge both ways (sleep is listed as /bin/sleep, curl as /usr/bin/curl)', async () => {
    const s = new LinuxSigner();
    for (const p of ['/usr/bin/sleep', '/bin/sleep', '/bin/curl']) {
      expect((await s.signerOfFile(p)).signer.status, p).toBe('valid');
    }
  });

  it('finds a modified copy in /tmp unsigned', async () => {
    const copy = join(dir, 'curl');
    copyFileSync(CURL, copy);
    appendFileSync(copy, 'x');
    const r = await new LinuxSigner().signerOfFile(copy);
    expect(r).toEqual({ signer: { status: 'unsigned', vendor: null, subject: null }, ima: null, error: null });
    expect(isKnownVendor(r.signer, DEFAULT_KNOWN_VENDORS)).toBe(false);
  });

  it('verifies the image a process runs', async () => {
    const s = new LinuxSigner();
    const sleep = await run('/usr/bin/sleep', ['30'], (l) => l === '/usr/bin/sleep');
    expect((await s.signerOfPid(sleep)).signer).toMatchObject({
      status: 'valid',
      vendor: 'Debian',
      subject: expect.stringMatching(/^Debian package coreutils /),
    });
    const copy = join(dir, 'sleep-deleted');
    copyFileSync('/usr/bin/sleep', copy);
    const deleted = await run(copy, ['30'], (l) => l === copy);
    unlinkSync(copy);
    expect((await s.signerOfPid(deleted)).signer.status).toBe('unsigned');
  });

  it('answers repeats from its cache', async () => {
    const s = new LinuxSigner();
    await s.signerOfFile(CURL);
    const started = performance.now();
    for (let i = 0; i < 200; i++) await s.signerOfFile(CURL);
    const perLookupMs = (performance.now() - started) / 200;
    expect(s.stats().cache).toMatchObject({ missesTotal: 1, hitsTotal: 200 });
    console.log(`signer: cached lookup ${perLookupMs.toFixed(3)} ms`);
  });

  it('reports a missing file and a vanished process as errors, with an unknown signer', async () => {
    const s = new LinuxSigner();
    expect(await s.signerOfFile(join(dir, 'absent'))).toEqual({
      signer: { status: 'unknown', vendor: null, subject: null },
      ima: null,
      error: 'no-such-file',
    });
    const child = spawn('/usr/bin/sleep', ['0']);
    await new Promise((r) => child.on('exit', r));
    expect((await s.signerOfPid(child.pid as number)).error).toBe('no-such-process');
  });
});

describe('LinuxSigner with a fake dpkg root', () => {
  const tool = '/usr/bin/true';

  it('is valid when the bytes match the recorded md5, invalid when they differ', async () => {
    const root = fakeDpkgRoot(
      'root-md5',
      { 'usr/bin/good': tool, 'usr/bin/bad': tool },
      { '/usr/bin/good': md5Of(tool), '/usr/bin/bad': md5Of(tool) },
    );
    appendFileSync(join(root, 'usr/bin/bad'), 'tampered');
    const s = new LinuxSigner({ root, rpmCommand: null });
    expect((await s.signerOfFile('/usr/bin/good')).signer).toEqual({
      status: 'valid',
      vendor: 'Debian',
      subject: 'Debian package fakepkg 1.2-3',
    });
    const bad = await s.signerOfFile('/usr/bin/bad');
    expect(bad.signer).toEqual({
      status: 'invalid',
      vendor: 'Debian',
      subject: 'Debian package fakepkg 1.2-3 (file differs from the package)',
    });
    expect(isKnownVendor(bad.signer, DEFAULT_KNOWN_VENDORS)).toBe(false);
    expect(await s.signerOfFile('/usr/bin/not-listed-anywhere').then((r) => r.error)).toBe('no-such-file');
  });

  it('matches a file listed as /bin/x when asked for /usr/bin/x, and the reverse', async () => {
    const root = fakeDpkgRoot(
      'root-merge',
      { 'usr/bin/old-style': tool, 'usr/bin/new-style': tool },
      { '/bin/old-style': md5Of(tool), '/usr/bin/new-style': md5Of(tool) },
    );
    const s = new LinuxSigner({ root, rpmCommand: null });
    expect((await s.signerOfFile('/usr/bin/old-style')).signer.status).toBe('valid');
    expect((await s.signerOfFile('/bin/new-style')).signer.status).toBe('valid');
  });

  it('waits for a package database that loads slower than the per-lookup deadline, and warm() loads it before any lookup', async () => {
    // A list file that is a FIFO: the load blocks until the test writes it, as a cold disk after boot would.
    const root = fakeDpkgRoot('root-slow', { 'usr/bin/slow': tool }, { '/usr/bin/slow': md5Of(tool) });
    const fifo = join(root, 'var/lib/dpkg/info/zslow.list');
    execFileSync('mkfifo', [fifo]);
    const s = new LinuxSigner({ root, rpmCommand: null, timeoutMs: 100 });
    let settled = false;
    const lookup = s.signerOfFile('/usr/bin/slow').finally(() => (settled = true));
    // Several per-lookup deadlines pass while the database is still loading.
    await new Promise((r) => setTimeout(r, 500));
    const settledEarly = settled;
    writeFileSync(fifo, '/usr/bin/zslow\n'); // before any assertion: a reader blocked on the FIFO would hold a libuv thread
    expect(settledEarly).toBe(false);
    expect(await lookup).toEqual({
      signer: { status: 'valid', vendor: 'Debian', subject: 'Debian package fakepkg 1.2-3' },
      ima: null,
      error: null,
    });

    const root2 = fakeDpkgRoot('root-warm', { 'usr/bin/slow': tool }, { '/usr/bin/slow': md5Of(tool) });
    const s2 = new LinuxSigner({ root: root2, rpmCommand: null });
    await s2.warm();
    const before = s2.stats().cache.missesTotal;
    expect((await s2.signerOfFile('/usr/bin/slow')).signer.status).toBe('valid');
    expect(s2.stats()).toMatchObject({ databases: 1, cache: { missesTotal: before + 1 } });
  });

  it('reloads the index when the dpkg database changes', async () => {
    const root = fakeDpkgRoot('root-reload', { 'usr/bin/later': tool }, {});
    const s = new LinuxSigner({ root, rpmCommand: null, dpkgRecheckMs: 0 });
    expect((await s.signerOfFile('/usr/bin/later')).signer.status).toBe('unsigned');
    writeFileSync(join(root, 'var/lib/dpkg/info/laterpkg.list'), '/usr/bin/later\n');
    writeFileSync(join(root, 'var/lib/dpkg/info/laterpkg.md5sums'), `${md5Of(tool)}  usr/bin/later\n`);
    appendFileSync(join(root, 'var/lib/dpkg/status'), 'Package: laterpkg\nStatus: install ok installed\nVersion: 9\n\n');
    expect((await s.signerOfFile('/usr/bin/later')).signer).toEqual({
      status: 'valid',
      vendor: 'Debian',
      subject: 'Debian package laterpkg 9',
    });
  });

  it('applies a dpkg diversion: the diverted original belongs to its package, the replacement to the diverter', async () => {
    const root = fakeDpkgRoot(
      'root-divert',
      { 'usr/bin/tool': tool, 'usr/bin/tool.distrib': '/usr/bin/false' },
      { '/usr/bin/tool': md5Of('/usr/bin/false') },
    );
    writeFileSync(join(root, 'var/lib/dpkg/info/wrapper.list'), '/usr/bin/tool\n');
    writeFileSync(join(root, 'var/lib/dpkg/info/wrapper.md5sums'), `${md5Of(tool)}  usr/bin/tool\n`);
    writeFileSync(join(root, 'var/lib/dpkg/diversions'), '/usr/bin/tool\n/usr/bin/tool.distrib\nwrapper\n');
    const s = new LinuxSigner({ root, rpmCommand: null });
    expect((await s.signerOfFile('/usr/bin/tool')).signer.subject).toBe('Debian package wrapper');
    expect((await s.signerOfFile('/usr/bin/tool.distrib')).signer).toMatchObject({
      status: 'valid',
      subject: 'Debian package fakepkg 1.2-3',
    });
  });

  it('says unknown, not unsigned, where it knows no package database', async () => {
    const root = join(dir, 'root-nodb');
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    copyFileSync(tool, join(root, 'usr/bin/thing'));
    const r = await new LinuxSigner({ root, rpmCommand: null }).signerOfFile('/usr/bin/thing');
    expect(r).toEqual({ signer: { status: 'unknown', vendor: null, subject: null }, ima: null, error: null });
  });

  it('notes an IMA signature, and does not call an unpackaged IMA-signed file unsigned', async (ctx) => {
    const root = fakeDpkgRoot('root-ima', { 'usr/bin/pkgd': tool, 'usr/bin/loose': tool }, { '/usr/bin/pkgd': md5Of(tool) });
    // type 3 (digital signature), version 2, sha256, key id aabbccdd, then a (dummy) signature
    const value = `0x030204aabbccdd0100${'00'.repeat(256)}`;
    for (const f of ['usr/bin/pkgd', 'usr/bin/loose']) {
      if (spawnSync('setfattr', ['-n', 'security.ima', '-v', value, join(root, f)]).status !== 0) {
        console.warn('setfattr security.ima not possible here (needs the attr package, root and an xattr file system): IMA test skipped');
        return ctx.skip();
      }
    }
    const s = new LinuxSigner({ root, rpmCommand: null });
    const packaged = await s.signerOfFile('/usr/bin/pkgd');
    expect(packaged.ima).toEqual({ kind: 'signature', keyId: 'aabbccdd' });
    expect(packaged.signer).toEqual({
      status: 'valid',
      vendor: 'Debian',
      subject: 'Debian package fakepkg 1.2-3; IMA signature key aabbccdd',
    });
    expect((await s.signerOfFile('/usr/bin/loose')).signer).toEqual({
      status: 'unknown',
      vendor: null,
      subject: 'IMA signature key aabbccdd (not verified)',
    });
  });
});

const rpmTools = ['rpm', 'rpmbuild', 'rpmsign', 'gpg'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);

describe.skipIf(!rpmTools)('LinuxSigner with an rpm database', () => {
  let root: string;

  beforeAll(() => {
    const top = join(dir, 'rpmbuild');
    const gnupg = join(dir, 'gnupg');
    mkdirSync(join(top, 'SPECS'), { recursive: true });
    mkdirSync(join(top, 'SOURCES'), { recursive: true });
    mkdirSync(gnupg, { mode: 0o700 });
    // Two different binaries: rpm refuses two packages with the same build-id file.
    copyFileSync('/usr/bin/true', join(top, 'SOURCES/rc-signed'));
    copyFileSync('/usr/bin/false', join(top, 'SOURCES/rc-unsigned'));
    const spec = (name: string): string =>
      `Name: ${name}\nVersion: 1.0\nRelease: 1\nSummary: rarecon test\nLicense: MIT\nVendor: Rarecon Test Vendor\nBuildArch: x86_64\n` +
      `%description\ntest\n%install\nmkdir -p %{buildroot}/usr/bin\ncp %{_sourcedir}/${name} %{buildroot}/usr/bin/${name}\n%files\n/usr/bin/${name}\n`;
    const env = { ...process.env, GNUPGHOME: gnupg };
    for (const name of ['rc-signed', 'rc-unsigned']) {
      writeFileSync(join(top, `SPECS/${name}.spec`), spec(name));
      execFileSync(
        'rpmbuild',
        [
          '--define',
          `_topdir ${top}`,
          '--define',
          '__strip /bin/true',
          '--define',
          'debug_package %{nil}',
          '-bb',
          join(top, `SPECS/${name}.spec`),
        ],
        { stdio: 'ignore' },
      );
    }
    execFileSync(
      'gpg',
      ['--batch', '--passphrase', '', '--quick-gen-key', 'Rarecon Test <test@example.invalid>', 'rsa2048', 'sign', 'never'],
      { env, stdio: 'ignore' },
    );
    execFileSync(
      'rpmsign',
      [
        '--define',
        '_gpg_name Rarecon Test',
        '--define',
        '__gpg /usr/bin/gpg',
        '--addsign',
        join(top, 'RPMS/x86_64/rc-signed-1.0-1.x86_64.rpm'),
      ],
      { env, stdio: 'ignore' },
    );
    root = join(dir, 'rpmroot');
    mkdirSync(root);
    for (const name of ['rc-signed', 'rc-unsigned']) {
      execFileSync(
        'rpm',
        ['--root', root, '--dbpath', '/var/lib/rpm', '-i', '--nodeps', '--nosignature', join(top, `RPMS/x86_64/${name}-1.0-1.x86_64.rpm`)],
        { stdio: 'ignore' },
      );
    }
  });

  it('is valid for a signed package whose file digest matches, with the key id', async () => {
    const r = await new LinuxSigner({ root }).signerOfFile('/usr/bin/rc-signed');
    expect(r.error).toBeNull();
    expect(r.signer).toMatchObject({
      status: 'valid',
      vendor: 'Rarecon Test Vendor',
      subject: expect.stringMatching(/^Rarecon Test Vendor package rc-signed 1\.0-1 \(key [0-9a-f]{16}\)$/),
    });
  });

  it('keeps its answer while the rpm database is only read', async () => {
    const s = new LinuxSigner({ root });
    await s.signerOfFile('/usr/bin/rc-unsigned');
    await new Promise((r) => setTimeout(r, 1_100)); // past the 1 s in which a root's databases are not looked at again
    await s.signerOfFile('/usr/bin/rc-unsigned');
    expect(s.stats().cache).toMatchObject({ hitsTotal: 1, missesTotal: 1 });
  });

  it('is unsigned for a package installed without a signature', async () => {
    const r = await new LinuxSigner({ root }).signerOfFile('/usr/bin/rc-unsigned');
    expect(r.signer).toMatchObject({ status: 'unsigned', subject: 'Rarecon Test Vendor package rc-unsigned 1.0-1 (package not signed)' });
  });

  it('is invalid when the file no longer matches, and unsigned when no package owns it', async () => {
    const s = new LinuxSigner({ root });
    appendFileSync(join(root, 'usr/bin/rc-signed'), 'tampered');
    expect((await s.signerOfFile('/usr/bin/rc-signed')).signer.status).toBe('invalid');
    copyFileSync('/usr/bin/true', join(root, 'usr/bin/stray'));
    expect((await s.signerOfFile('/usr/bin/stray')).signer.status).toBe('unsigned');
  });
});

describe('isKnownVendor', () => {
  const valid = (vendor: string | null, subject: string | null) => ({ status: 'valid' as const, vendor, subject });

  it('matches vendor or subject case-insensitively on word boundaries', () => {
    expect(isKnownVendor(valid('debian', null), ['Debian'])).toBe(true);
    expect(isKnownVendor(valid('Red Hat, Inc.', null), ['Red Hat'])).toBe(true);
    expect(isKnownVendor(valid(null, 'CN=Google LLC, O=Google LLC'), ['Google'])).toBe(true);
    expect(isKnownVendor(valid('The PHP Group', null), ['HP'])).toBe(false);
    expect(isKnownVendor(valid('Intelligent Systems', null), ['Intel'])).toBe(false);
  });

  it('only counts a signer that verified', () => {
    expect(isKnownVendor({ status: 'invalid', vendor: 'Debian', subject: 'Debian package curl' }, ['Debian'])).toBe(false);
    expect(isKnownVendor({ status: 'unknown', vendor: 'Debian', subject: null }, ['Debian'])).toBe(false);
  });
});

describe('parsers', () => {
  it('names the distribution from os-release', () => {
    expect(vendorFromOsRelease('NAME="Debian GNU/Linux"\nID=debian\n')).toBe('Debian');
    expect(vendorFromOsRelease('NAME="Red Hat Enterprise Linux"\nID="rhel"\n')).toBe('Red Hat');
    expect(vendorFromOsRelease('NAME="Example OS Linux"\nID=exampleos\n')).toBe('Example OS');
    expect(vendorFromOsRelease('')).toBeNull();
  });

  it('reads installed versions from dpkg status', () => {
    const v = parseDpkgStatus(
      'Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n',
    );
    expect(v.get('a')).toBe('1');
    expect(v.get('a:amd64')).toBe('1');
    expect(v.has('b')).toBe(false);
  });

  it('tells an IMA signature from a bare digest', () => {
    expect(parseImaXattr('030204deadbeef0100')).toEqual({ kind: 'signature', keyId: 'deadbeef' });
    expect(parseImaXattr('0404aa')).toEqual({ kind: 'digest', keyId: null });
  });
});
