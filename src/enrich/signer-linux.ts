// The Linux "signer" of an image: the distribution package that installed it,
// checked against the digest the package manager recorded. dpkg first (its
// database is indexed here, no subprocess per lookup), then rpm where an rpm
// database exists, then an IMA signature xattr. The digest is taken from the
// open image (for a pid, /proc/<pid>/exe), so what is verified is what runs.
import { execFile } from 'node:child_process';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { lstat, open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import type { Signer } from '../model/records.js';
import { UNKNOWN_SIGNER } from '../model/records.js';
import { BoundedCache, type CacheStats } from '../common/bounded-cache.js';
import { contentKey, digestHandle, readExeLink } from './image-hash.js';
import { ABORTED, deadline, procErrorCode, raceAbort, type ProcErrorCode } from '../common/proc.js';

export type SignerErrorCode = ProcErrorCode | 'no-such-file';

export interface ImaInfo {
  /** `signature`: an appraisal signature (key id when v2); `digest`: a bare hash, which proves nothing about origin. */
  kind: 'signature' | 'digest' | 'other';
  keyId: string | null;
}

export interface SignerResult {
  signer: Signer;
  ima: ImaInfo | null;
  /** Set when the lookup failed; `signer` is then UNKNOWN_SIGNER. */
  error: SignerErrorCode | null;
}

/**
 * True when `signer` verified and its vendor or subject names one of
 * `knownVendors`, case-insensitively and on word boundaries (so `HP` does not
 * match `PHP`, but `Red Hat` matches `Red Hat, Inc.`).
 */
export function isKnownVendor(signer: Signer, knownVendors: readonly string[]): boolean {
  if (signer.status !== 'valid') return false;
  const fields = [signer.vendor, signer.subject].filter((f): f is string => f !== null && f !== '').map((f) => f.toLowerCase());
  if (fields.length === 0) return false;
  for (const known of knownVendors) {
    const k = known.trim().toLowerCase();
    if (k === '') continue;
    for (const f of fields) {
      let at = f.indexOf(k);
      while (at !== -1) {
        const before = f[at - 1];
        const after = f[at + k.length];
        if ((before === undefined || !/[a-z0-9]/.test(before)) && (after === undefined || !/[a-z0-9]/.test(after))) return true;
        at = f.indexOf(k, at + 1);
      }
    }
  }
  return false;
}

// os-release IDs whose NAME does not read as a vendor ("Red Hat Enterprise Linux", "Debian GNU/Linux").
const VENDOR_BY_ID: Readonly<Record<string, string>> = {
  debian: 'Debian',
  ubuntu: 'Ubuntu',
  rhel: 'Red Hat',
  fedora: 'Fedora',
  centos: 'CentOS',
  rocky: 'Rocky Linux',
  almalinux: 'AlmaLinux',
  sles: 'SUSE',
  sled: 'SUSE',
  'opensuse-leap': 'openSUSE',
  'opensuse-tumbleweed': 'openSUSE',
  opensuse: 'openSUSE',
  arch: 'Arch Linux',
  alpine: 'Alpine',
  amzn: 'Amazon',
  ol: 'Oracle',
  linuxmint: 'Linux Mint',
  raspbian: 'Raspbian',
  kali: 'Kali',
  pop: 'Pop!_OS',
  mariner: 'Microsoft',
  azurelinux: 'Microsoft',
};

/** The distribution that vouches for its packages, from /etc/os-release text. */
export function vendorFromOsRelease(text: string): string | null {
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^${name}=(.*)$`, 'm').exec(text);
    return m?.[1]?.trim().replace(/^(["'])(.*)\1$/, '$2');
  };
  const id = field('ID')?.toLowerCase();
  if (id !== undefined && VENDOR_BY_ID[id] !== undefined) return VENDOR_BY_ID[id] ?? null;
  const name = field('NAME')?.replace(/\s+(GNU\/Linux|Linux)$/i, '');
  return name === undefined || name === '' ? null : name;
}

const MERGED_DIRS = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'libo32'];

/** On a /usr-merged system `/bin/x` and `/usr/bin/x` are one file; index both spellings under the /usr one. */
function canonicalPath(p: string, merged: boolean): string {
  if (!merged) return p;
  const slash = p.indexOf('/', 1);
  const top = slash === -1 ? p.slice(1) : p.slice(1, slash);
  return MERGED_DIRS.includes(top) ? `/usr${p}` : p;
}

interface Owner {
  pkg: string;
  /** The path as the package lists it (differs from the queried one under /usr-merge or a diversion). */
  listedPath: string;
}

type Digest = (algo: string) => Promise<string | { error: SignerErrorCode }>;

/** A package database's word on a file: a signer, null when no package owns it, or why it could not say. */
type Verdict = Signer | null | { error: SignerErrorCode };

interface PackageSource {
  verify(path: string, digest: Digest): Promise<Verdict>;
}

async function mtimeKey(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}`;
  } catch {
    return 'missing';
  }
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The dpkg database under `root`: which package lists a path, its version and
 * recorded md5. Loaded on first use and again when dpkg changes it (the info
 * folder, status or diversions file changed).
 */
export class DpkgDatabase implements PackageSource {
  root: string;
  generation = 0;
  private loaded: Promise<void> | null = null;
  private stamp = '';
  private checkedAtMs = -Infinity;
  private merged = false;
  private vendor: string | null = null;
  private packages: string[] = [];
  private index = new Map<string, number | number[]>();
  private versions = new Map<string, string>();
  private divertedTo = new Map<string, { from: string; by: string }>();
  private divertedFrom = new Map<string, { to: string; by: string }>();
  private readonly md5s = new BoundedCache<string, Map<string, string>>({ maxEntries: 64 });

  constructor(
    root: string,
    private readonly recheckMs = 1_000,
  ) {
    this.root = root;
  }

  private get admin(): string {
    return `${this.root === '/' ? '' : this.root}/var/lib/dpkg`;
  }

  get size(): { packages: number; paths: number } {
    return { packages: this.packages.length, paths: this.index.size };
  }

  /** Reloads if dpkg changed the database; the generation names the loaded version. */
  async fresh(): Promise<number> {
    await this.ensureFresh();
    return this.generation;
  }

  async verify(path: string, digest: Digest): Promise<Verdict> {
    await this.ensureFresh();
    const owners = this.owners(path);
    if (owners.length === 0) return null;
    const vendor = this.vendor ?? 'dpkg';
    let unverified: Owner | null = null;
    let mismatched: Owner | null = null;
    for (const owner of owners) {
      const recorded = await this.recordedMd5(owner);
      if (recorded === null) {
        unverified ??= owner;
        continue;
      }
      const actual = await digest('md5');
      if (typeof actual !== 'string') return actual;
      if (actual === recorded) return { status: 'valid', vendor, subject: this.subject(vendor, owner) };
      mismatched ??= owner;
    }
    if (mismatched !== null)
      return { status: 'invalid', vendor, subject: `${this.subject(vendor, mismatched)} (file differs from the package)` };
    const o = unverified ?? (owners[0] as Owner);
    return { status: 'unknown', vendor: null, subject: `${this.subject(vendor, o)} (no recorded checksum)` };
  }

  /** Packages whose file is at `path`, diversions applied. */
  owners(path: string): Owner[] {
    const p = canonicalPath(path, this.merged);
    const to = this.divertedTo.get(p);
    // The diverted-away original: it is listed under its old name by the package that was diverted.
    if (to !== undefined) return this.listing(to.from).filter((o) => o.pkg !== to.by);
    const from = this.divertedFrom.get(p);
    // A local diversion (by ':') means the admin replaced the file: nobody vouches for it.
    if (from !== undefined) return this.listing(p).filter((o) => o.pkg === from.by);
    return this.listing(p);
  }

  private listing(canonical: string): Owner[] {
    const hit = this.index.get(canonical);
    if (hit === undefined) return [];
    const ids = typeof hit === 'number' ? [hit] : hit;
    return ids.map((i) => ({ pkg: this.packages[i] ?? '', listedPath: canonical }));
  }

  private subject(vendor: string, owner: Owner): string {
    const name = owner.pkg.replace(/:[^:]+$/, '');
    const version = this.versions.get(owner.pkg) ?? this.versions.get(name);
    return `${vendor} package ${name}${version === undefined ? '' : ` ${version}`}`;
  }

  private async recordedMd5(owner: Owner): Promise<string | null> {
    let sums = this.md5s.get(owner.pkg);
    if (sums === undefined) {
      sums = new Map();
      try {
        const text = await readFile(`${this.admin}/info/${owner.pkg}.md5sums`, 'utf8');
        for (const line of text.split('\n')) {
          const m = /^([0-9a-f]{32}) {1,2}(.+)$/.exec(line);
          if (m?.[1] !== undefined && m[2] !== undefined) sums.set(canonicalPath(`/${m[2]}`, this.merged), m[1]);
        }
      } catch {
        // No md5sums file: the package recorded no checksums.
      }
      this.md5s.set(owner.pkg, sums);
    }
    return sums.get(owner.listedPath) ?? null;
  }

  private async ensureFresh(): Promise<void> {
    const now = Date.now();
    if (this.loaded !== null && now - this.checkedAtMs < this.recheckMs) return this.loaded;
    this.checkedAtMs = now;
    const stamp = (await Promise.all([`${this.admin}/info`, `${this.admin}/status`, `${this.admin}/diversions`].map(mtimeKey))).join('|');
    if (this.loaded === null || stamp !== this.stamp) {
      this.stamp = stamp;
      this.loaded = this.load();
    }
    return this.loaded;
  }

  private async load(): Promise<void> {
    const rootPrefix = this.root === '/' ? '' : this.root;
    const merged = await lstat(`${rootPrefix}/bin`).then(
      (s) => s.isSymbolicLink(),
      () => false,
    );
    const osRelease = await readFile(`${rootPrefix}/etc/os-release`, 'utf8').catch(() =>
      readFile(`${rootPrefix}/usr/lib/os-release`, 'utf8').catch(() => ''),
    );
    const listing = await readdir(`${this.admin}/info`).catch(() => null);
    if (listing === null) {
      // The root vanished (the process whose view we used exited): keep the last index and retry on the next lookup.
      this.stamp = '';
      return;
    }
    const names = listing.filter((n) => n.endsWith('.list'));
    const packages: string[] = [];
    const index = new Map<string, number | number[]>();
    await mapLimit(names, 16, async (name) => {
      const text = await readFile(`${this.admin}/info/${name}`, 'utf8').catch(() => '');
      const id = packages.push(name.slice(0, -'.list'.length)) - 1;
      let sinceYield = 0;
      for (const line of text.split('\n')) {
        // Some packages list tens of thousands of files: let other events through meanwhile.
        if (++sinceYield === 5_000) {
          sinceYield = 0;
          await yieldToLoop();
        }
        if (line === '' || line === '/.') continue;
        const p = canonicalPath(line, merged);
        const prev = index.get(p);
        if (prev === undefined) index.set(p, id);
        else if (typeof prev === 'number') {
          if (prev !== id) index.set(p, [prev, id]);
        } else if (!prev.includes(id)) prev.push(id);
      }
    });
    this.versions = parseDpkgStatus(await readFile(`${this.admin}/status`, 'utf8').catch(() => ''));
    const diversions = (await readFile(`${this.admin}/diversions`, 'utf8').catch(() => '')).split('\n');
    this.divertedTo = new Map();
    this.divertedFrom = new Map();
    for (let i = 0; i + 2 < diversions.length; i += 3) {
      const [from, to, by] = [diversions[i], diversions[i + 1], diversions[i + 2]];
      if (from === undefined || to === undefined || by === undefined || from === '') continue;
      this.divertedTo.set(canonicalPath(to, merged), { from: canonicalPath(from, merged), by });
      this.divertedFrom.set(canonicalPath(from, merged), { to: canonicalPath(to, merged), by });
    }
    this.merged = merged;
    this.vendor = vendorFromOsRelease(osRelease);
    this.packages = packages;
    this.index = index;
    this.md5s.clear();
    this.generation++;
  }
}

/** `Package[:Architecture] -> Version` for installed packages in a dpkg status file. One pass, no regex per field. */
export function parseDpkgStatus(text: string): Map<string, string> {
  const versions = new Map<string, string>();
  let pkg = '';
  let arch = '';
  let version = '';
  let installed = false;
  const commit = (): void => {
    if (pkg !== '' && version !== '' && installed) {
      versions.set(pkg, version);
      if (arch !== '') versions.set(`${pkg}:${arch}`, version);
    }
    pkg = arch = version = '';
    installed = false;
  };
  for (const line of text.split('\n')) {
    if (line === '') commit();
    else if (line.startsWith('Package: ')) pkg = line.slice(9).trim();
    else if (line.startsWith('Version: ')) version = line.slice(9).trim();
    else if (line.startsWith('Architecture: ')) arch = line.slice(14).trim();
    else if (line.startsWith('Status: ')) installed = line.trimEnd().endsWith(' installed');
  }
  commit();
  return versions;
}

// rpm's PGP hash algorithm numbers (FILEDIGESTALGO) -> node crypto names.
const RPM_DIGESTS: Readonly<Record<string, string>> = {
  '1': 'md5',
  '2': 'sha1',
  '8': 'sha256',
  '9': 'sha384',
  '10': 'sha512',
  '11': 'sha224',
};

const RPM_QUERY_FORMAT =
  '@@%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{VENDOR}\\t%{RSAHEADER:pgpsig}\\t%{SIGPGP:pgpsig}\\t%{FILEDIGESTALGO}\\n[%{FILENAMES}\\t%{FILEDIGESTS}\\n]';

/**
 * The rpm database under `root`, asked through `rpm -qf` with the package's
 * file digests, which we compare with the open image ourselves: that is
 * `rpm -V`'s digest check, made on the image that runs rather than on the
 * file now on disk.
 */
export class RpmDatabase implements PackageSource {
  constructor(
    public root: string,
    private readonly dbPath: string,
    private readonly command: string,
    private readonly vendor: string | null,
    private readonly timeoutMs: number,
    private readonly merged: boolean,
  ) {}

  private unavailable = false;

  async verify(path: string, digest: Digest): Promise<Verdict> {
    if (this.unavailable) return null;
    const out = await new Promise<string | null>((resolve) => {
      execFile(
        this.command,
        ['--root', this.root, '--dbpath', this.dbPath, '-qf', '--qf', RPM_QUERY_FORMAT, '--', path],
        { timeout: this.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          // No rpm tool installed: stop asking.
          if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
            this.unavailable = true;
            resolve('');
          } else if (err === null || stdout.includes('@@')) resolve(stdout);
          // Exit 1 is rpm's ordinary answer for a file no package owns, or one gone from disk (a replaced image).
          else if (/not owned by any package|No such file or directory/.test(`${stdout}${stderr}`)) resolve('');
          else resolve(null);
        },
      );
    });
    if (out === null) return { error: 'read-failed' };
    let result: Verdict = null;
    for (const block of out.split('@@').slice(1)) {
      const [head = '', ...files] = block.split('\n');
      const [name = '', evr = '', vendorTag = '', rsa = '', pgp = '', algo = ''] = head.split('\t');
      const wanted = canonicalPath(path, this.merged);
      const recorded = files.map((l) => l.split('\t')).find(([f]) => f !== undefined && canonicalPath(f, this.merged) === wanted)?.[1];
      if (recorded === undefined) continue;
      const keyId = /Key ID ([0-9a-f]+)/i.exec(`${rsa} ${pgp}`)?.[1] ?? null;
      const vendor = vendorTag !== '' && vendorTag !== '(none)' ? vendorTag : (this.vendor ?? 'rpm');
      const subject = `${vendor} package ${name} ${evr}${keyId === null ? '' : ` (key ${keyId})`}`;
      if (recorded === '') {
        result ??= { status: 'unknown', vendor: null, subject: `${subject} (no recorded checksum)` };
        continue;
      }
      const actual = await digest(RPM_DIGESTS[algo === '' ? '1' : algo] ?? 'md5');
      if (typeof actual !== 'string') return actual;
      if (actual !== recorded) {
        result = { status: 'invalid', vendor, subject: `${subject} (file differs from the package)` };
        continue;
      }
      // An rpm installed without a signature was never vouched for by anyone.
      return keyId === null
        ? { status: 'unsigned', vendor: null, subject: `${subject} (package not signed)` }
        : { status: 'valid', vendor, subject };
    }
    return result;
  }
}

/** Parses a `security.ima` value (hex). */
export function parseImaXattr(hex: string): ImaInfo | null {
  if (hex.length < 2) return null;
  const type = parseInt(hex.slice(0, 2), 16);
  // 3 = EVM_IMA_XATTR_DIGSIG (v2: type, version, hash algo, 4-byte key id), 5 = portable EVM sig, 6 = fs-verity sig.
  if (type === 3 || type === 6) return { kind: 'signature', keyId: hex.slice(2, 4) === '02' && hex.length >= 14 ? hex.slice(6, 14) : null };
  if (type === 1 || type === 4) return { kind: 'digest', keyId: null };
  return { kind: 'other', keyId: null };
}

export interface LinuxSignerOptions {
  /** The file system that `signerOfFile` paths and its package databases live under (tests use a fake one). */
  root?: string | undefined;
  procRoot?: string | undefined;
  maxEntries?: number | undefined;
  timeoutMs?: number | undefined;
  /** How often the dpkg database is checked for changes. */
  dpkgRecheckMs?: number | undefined;
  /** null disables rpm lookups. */
  rpmCommand?: string | null | undefined;
  /** null disables the IMA xattr check. */
  getfattrCommand?: string | null | undefined;
}

export interface LinuxSignerStats {
  cache: CacheStats;
  databases: number;
  errorsTotal: Record<SignerErrorCode, number>;
}

interface Target {
  /** Where the package databases are: for a pid, /proc/<pid>/root, as a container has its own. */
  root: string;
  /** The path packages would list (for a pid, read from its exe link). */
  path: string;
  /** What to open to read the bytes. */
  openPath: string;
  pid: number | null;
  /** The image has no name on disk (known from elsewhere when pid is null). */
  deleted?: boolean;
}

interface Databases {
  id: string;
  dpkg: DpkgDatabase | null;
  rpm: RpmDatabase | null;
}

/** How long a lookup waits for a package database to load (its list files read cold) before giving up. */
const DATABASE_LOAD_MS = 30_000;

const UNSIGNED: Signer = Object.freeze({ status: 'unsigned', vendor: null, subject: null });

export class LinuxSigner {
  private readonly root: string;
  private readonly procRoot: string;
  private readonly timeoutMs: number;
  private readonly dpkgRecheckMs: number;
  private readonly rpmCommand: string | null;
  private getfattrCommand: string | null;
  private readonly cache: BoundedCache<string, { signer: Signer; ima: ImaInfo | null }>;
  // Keyed by the identity of the database folder, so every namespace that sees the host's dpkg shares one index.
  private readonly dpkgs = new BoundedCache<string, DpkgDatabase>({ maxEntries: 16 });
  private readonly rpms = new BoundedCache<string, RpmDatabase>({ maxEntries: 16 });
  // root -> its databases, so a cache hit costs no stat of the database folders.
  private readonly roots = new BoundedCache<string, Databases>({ maxEntries: 1_024, ttlMs: 1_000 });
  private readonly errorsTotal: Record<SignerErrorCode, number> = {
    'no-such-process': 0,
    'no-such-file': 0,
    'permission-denied': 0,
    timeout: 0,
    'read-failed': 0,
  };

  constructor(opts: LinuxSignerOptions = {}) {
    this.root = opts.root ?? '/';
    this.procRoot = opts.procRoot ?? '/proc';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.dpkgRecheckMs = opts.dpkgRecheckMs ?? 1_000;
    this.rpmCommand = opts.rpmCommand === undefined ? 'rpm' : opts.rpmCommand;
    this.getfattrCommand = opts.getfattrCommand === undefined ? 'getfattr' : opts.getfattrCommand;
    this.cache = new BoundedCache({ maxEntries: opts.maxEntries ?? 4_096 });
  }

  /** The signer of the file at `path` inside the configured root. Never throws. */
  async signerOfFile(path: string, signal?: AbortSignal): Promise<SignerResult> {
    const openPath = this.root === '/' ? path : `${this.root}${path}`;
    return this.settle({ root: this.root, path, openPath, pid: null }, 'no-such-file', signal);
  }

  /** The signer of the image `pid` runs, looked up in that process's own file system. Never throws. */
  async signerOfPid(pid: number, signal?: AbortSignal): Promise<SignerResult> {
    const base = `${this.procRoot}/${pid}`;
    return this.settle({ root: `${base}/root`, path: '', openPath: `${base}/exe`, pid }, 'no-such-process', signal);
  }

  /**
   * The signer of an image through a handle another process holds (see ImageHasher.hashHeld), for a
   * process that is gone: `path` is its name at exec, looked up in our own file system. Never throws.
   */
  async signerOfHeld(
    heldPath: string,
    image: { path: string; memfd: boolean; deleted: boolean },
    signal?: AbortSignal,
  ): Promise<SignerResult> {
    // Never on disk, so no package can vouch for it.
    if (image.memfd) return { signer: { ...UNSIGNED }, ima: null, error: null };
    return this.settle(
      { root: this.root, path: image.path, openPath: heldPath, pid: null, deleted: image.deleted },
      'no-such-process',
      signal,
    );
  }

  stats(): LinuxSignerStats {
    return { cache: this.cache.stats(), databases: this.dpkgs.size + this.rpms.size, errorsTotal: { ...this.errorsTotal } };
  }

  /**
   * Loads this host's package databases now, so the first connections do not wait for them
   * (hundreds of list files, read cold after a boot). Never throws.
   */
  async warm(): Promise<void> {
    const dbs = await this.databasesFor(this.root).catch(() => null);
    await dbs?.dpkg?.fresh().catch(() => undefined);
  }

  private async settle(t: Target, missing: SignerErrorCode, signal: AbortSignal | undefined): Promise<SignerResult> {
    // A database load is shared by every lookup and bounded on its own: a slow first load must not
    // turn the first connections' signers into timeouts. The per-file deadline starts once it is loaded.
    const outer = deadline(Math.max(this.timeoutMs, DATABASE_LOAD_MS), signal);
    let result: SignerResult | typeof ABORTED;
    try {
      result = await raceAbort(this.lookup(t, signal), outer);
    } catch (err) {
      const code = procErrorCode(err);
      result = { signer: { ...UNKNOWN_SIGNER }, ima: null, error: code === 'no-such-process' ? missing : code };
    }
    if (result === ABORTED) result = { signer: { ...UNKNOWN_SIGNER }, ima: null, error: 'timeout' };
    if (result.error !== null) this.errorsTotal[result.error]++;
    return result;
  }

  private async lookup(t: Target, signal: AbortSignal | undefined): Promise<SignerResult> {
    const fh = await open(t.openPath, 'r');
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile()) return { signer: { ...UNKNOWN_SIGNER }, ima: null, error: 'read-failed' };
      let path = t.path;
      let deletedImage = t.deleted === true || (t.pid === null && t.deleted !== undefined && st.nlink === 0n);
      if (t.pid !== null) {
        const link = await readExeLink(this.procRoot, t.pid, st);
        // Never on disk, so no package can vouch for it.
        if (link.memfd) return { signer: { ...UNSIGNED }, ima: null, error: null };
        path = link.path;
        deletedImage = link.deleted;
      }
      const dbs = await this.databasesFor(t.root);
      const generation = dbs.dpkg === null ? 0 : await dbs.dpkg.fresh();
      const key = `${dbs.id}:${generation}:${path}:${deletedImage}:${contentKey(st)}`;
      const hit = this.cache.get(key);
      if (hit !== undefined) return { ...hit, error: null };

      const sig = deadline(this.timeoutMs, signal);
      const work = this.compute(fh, dbs, path, deletedImage, t.pid === null ? t.openPath : `${this.procRoot}/${t.pid}/exe`, sig);
      const computed = await raceAbort(work, sig);
      if (computed === ABORTED) return { signer: { ...UNKNOWN_SIGNER }, ima: null, error: 'timeout' };
      if (computed.error === null) this.cache.set(key, { signer: computed.signer, ima: computed.ima });
      return computed;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private async compute(
    fh: FileHandle,
    dbs: Databases,
    path: string,
    deletedImage: boolean,
    xattrPath: string,
    sig: AbortSignal,
  ): Promise<SignerResult> {
    // Each algorithm is computed at most once, and only if a database records a digest for the file.
    const digests = new Map<string, Promise<string | { error: SignerErrorCode }>>();
    const digest: Digest = (algo) => {
      let d = digests.get(algo);
      if (d === undefined) {
        d = digestHandle(fh, algo, sig).then((r) => ('error' in r ? r : r.hex));
        digests.set(algo, d);
      }
      return d;
    };
    let verdict: Verdict = null;
    for (const db of [dbs.dpkg, dbs.rpm]) {
      if (db === null) continue;
      verdict = await db.verify(path, digest);
      if (verdict !== null) break;
    }
    if (verdict !== null && 'error' in verdict) return { signer: { ...UNKNOWN_SIGNER }, ima: null, error: verdict.error };
    const ima = await this.imaOf(xattrPath);
    // With no package database we know of (apk, pacman, ...), "no package owns it" would be a guess.
    let signer: Signer = verdict ?? (dbs.dpkg === null && dbs.rpm === null ? { ...UNKNOWN_SIGNER } : { ...UNSIGNED });
    // A replaced (upgraded) image no longer matches what the database records now: we cannot tell it from a tampered one.
    if (deletedImage && signer.status === 'invalid') signer = { status: 'unknown', vendor: null, subject: signer.subject };
    if (ima?.kind === 'signature') {
      const note = `IMA signature${ima.keyId === null ? '' : ` key ${ima.keyId}`}`;
      // The kernel appraises IMA signatures against its keyring; we hold no keys, so it stays unverified here.
      signer =
        signer.status === 'unsigned' || signer.subject === null
          ? { status: 'unknown', vendor: null, subject: `${note} (not verified)` }
          : { ...signer, subject: `${signer.subject ?? ''}; ${note}` };
    }
    return { signer, ima, error: null };
  }

  private async databasesFor(root: string): Promise<Databases> {
    let dbs = this.roots.get(root);
    if (dbs === undefined) {
      const [dpkg, rpm] = await Promise.all([this.dpkgFor(root), this.rpmFor(root)]);
      dbs = { id: `${dpkg?.id ?? '-'}/${rpm?.id ?? '-'}`, dpkg: dpkg?.db ?? null, rpm: rpm?.db ?? null };
      this.roots.set(root, dbs);
    }
    return dbs;
  }

  private async dpkgFor(root: string): Promise<{ id: string; db: DpkgDatabase } | null> {
    const prefix = root === '/' ? '' : root;
    const dir = await stat(`${prefix}/var/lib/dpkg`, { bigint: true }).catch(() => null);
    const status = await stat(`${prefix}/var/lib/dpkg/status`).catch(() => null);
    if (dir === null || status === null) return null;
    // The status file is replaced on every dpkg run, so key by the folder, which stays.
    const id = `dpkg@${dir.dev}:${dir.ino}`;
    let db = this.dpkgs.get(id);
    if (db === undefined) {
      db = new DpkgDatabase(root, this.dpkgRecheckMs);
      this.dpkgs.set(id, db);
    }
    // Prefer our own root when it reaches the same database (it cannot exit); else the latest living process's view.
    db.root = id === (await this.ownDpkgId()) ? this.root : root;
    return { id, db };
  }

  private ownDpkg: Promise<string | null> | null = null;

  private ownDpkgId(): Promise<string | null> {
    this.ownDpkg ??= stat(`${this.root === '/' ? '' : this.root}/var/lib/dpkg`, { bigint: true }).then(
      (d) => `dpkg@${d.dev}:${d.ino}`,
      () => null,
    );
    return this.ownDpkg;
  }

  private async rpmFor(root: string): Promise<{ id: string; db: RpmDatabase } | null> {
    const command = this.rpmCommand;
    if (command === null) return null;
    const prefix = root === '/' ? '' : root;
    for (const dbPath of ['/var/lib/rpm', '/usr/lib/sysimage/rpm']) {
      const dir = await stat(`${prefix}${dbPath}`, { bigint: true }).catch(() => null);
      if (dir === null || !dir.isDirectory()) continue;
      const entries = await readdir(`${prefix}${dbPath}`).catch(() => [] as string[]);
      // Debian ships an empty /var/lib/rpm with the rpm tool: no database, nothing to ask.
      if (entries.length === 0) continue;
      // The database files change on every install, so they name this version of it. Not the
      // sqlite -shm, the lock or Berkeley DB's __db.* region files: reading the database touches those.
      const dataFiles = entries.filter((e) => !e.endsWith('-shm') && !e.endsWith('.lock') && !e.startsWith('__db.')).sort();
      const newest = await Promise.all(dataFiles.map((e) => mtimeKey(`${prefix}${dbPath}/${e}`)));
      const id = `rpm@${dir.dev}:${dir.ino}:${newest.join(',')}`;
      let db = this.rpms.get(id);
      if (db === undefined) {
        const osRelease = await readFile(`${prefix}/etc/os-release`, 'utf8').catch(() => '');
        const merged = await lstat(`${prefix}/bin`).then(
          (st) => st.isSymbolicLink(),
          () => false,
        );
        db = new RpmDatabase(root, dbPath, command, vendorFromOsRelease(osRelease), this.timeoutMs, merged);
        this.rpms.set(id, db);
      } else db.root = root;
      return { id, db };
    }
    return null;
  }

  private async imaOf(path: string): Promise<ImaInfo | null> {
    const command = this.getfattrCommand;
    if (command === null) return null;
    const out = await new Promise<string | null>((resolve) => {
      execFile(command, ['--absolute-names', '-n', 'security.ima', '-e', 'hex', '--', path], { timeout: this.timeoutMs }, (err, stdout) => {
        // No getfattr installed: stop asking.
        if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') this.getfattrCommand = null;
        resolve(err === null ? stdout : null);
      });
    });
    const hex = out === null ? undefined : /security\.ima=0x([0-9a-f]+)/i.exec(out)?.[1];
    return hex === undefined ? null : parseImaXattr(hex.toLowerCase());
  }
}
