// The files rarecon writes hold command lines, users, alerts and secrets, and
// root writes them. So: every file is 0600 in a 0700 folder (a umask of 0077
// for what a call forgets, explicit modes too); a state folder another user
// could write to is tightened when it is ours, else refused; output files are
// opened without following a symbolic link, and only when they are ours; a
// file replaced whole is written to an exclusive temp file of a random name
// and renamed, so a link planted by another user never redirects a write.
// Expected failures are values with a message saying what to fix.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  createWriteStream,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
  type WriteStream,
} from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;
const UMASK = 0o077;

/** Append, create 0600, never through a symbolic link in the last component. */
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
/** A new file only: fails when anything (a planted link included) has the name. */
const EXCLUSIVE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export type Checked = { ok: true } | { ok: false; error: string };

/** The user this process writes as (root when the platform has no uids). */
function me(): number {
  return process.geteuid?.() ?? 0;
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

/** Files and folders this process creates are 0600 and 0700, whatever mode a call gives. Main thread only. */
export function keepFilesPrivate(): void {
  process.umask(UMASK);
}

export type FolderResult = { ok: true; created: boolean; tightened: { from: string; to: string } | null } | { ok: false; error: string };

/**
 * Makes `path` a folder only this user can enter: created 0700, or, when it
 * exists, owned by this user (or root) and then tightened to 0700 when others
 * could read or write it. Refused when another user owns it, when this user
 * cannot tighten it, or when it holds a symbolic link or a file of another
 * user (planted while it was open to others). `dryRun`: the same verdict,
 * nothing created or changed (`rarecon validate`).
 */
export function preparePrivateFolder(path: string, what: string, opts: { dryRun?: boolean } = {}): FolderResult {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, error: `${what} ${path}: ${errorText(err)}` };
    if (opts.dryRun === true) return { ok: true, created: true, tightened: null };
    try {
      mkdirSync(path, { recursive: true, mode: PRIVATE_DIR_MODE });
      // mkdir applies the umask; an explicit chmod makes it 0700 under any umask.
      chmodSync(path, PRIVATE_DIR_MODE);
    } catch (e) {
      return { ok: false, error: `${what} ${path} cannot be created: ${errorText(e)}` };
    }
    return { ok: true, created: true, tightened: null };
  }
  if (!st.isDirectory()) return { ok: false, error: `${what} ${path} is not a folder` };
  const uid = me();
  if (st.uid !== uid && st.uid !== 0) {
    return {
      ok: false,
      error: `${what} ${path} belongs to uid ${st.uid}, not to the user rarecon runs as (uid ${uid}) or root: that user could plant files and links in it; chown ${uid} ${path}, or choose another folder`,
    };
  }
  let tightened: { from: string; to: string } | null = null;
  if ((st.mode & 0o077) !== 0) {
    if (st.uid !== uid) {
      if ((st.mode & 0o022) !== 0) {
        return {
          ok: false,
          error: `${what} ${path} (mode ${octal(st.mode)}, owner root) is writable by other users and rarecon (uid ${uid}) cannot tighten it: chmod 700 ${path}`,
        };
      }
    } else {
      try {
        if (opts.dryRun !== true) chmodSync(path, PRIVATE_DIR_MODE);
      } catch (e) {
        return {
          ok: false,
          error: `${what} ${path} (mode ${octal(st.mode)}) is open to other users and cannot be tightened: ${errorText(e)}`,
        };
      }
      tightened = { from: octal(st.mode), to: octal(PRIVATE_DIR_MODE) };
    }
  }
  const planted = plantedEntry(path, uid);
  if (planted !== null) return { ok: false, error: `${what} ${path} ${planted}` };
  return { ok: true, created: false, tightened };
}

/** A symbolic link or another user's file among the folder's entries, described; null when none. */
function plantedEntry(path: string, uid: number): string | null {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    return `cannot be listed: ${errorText(err)}`;
  }
  for (const name of names) {
    let st: Stats;
    try {
      st = lstatSync(join(path, name));
    } catch {
      continue; // gone meanwhile
    }
    if (st.isSymbolicLink())
      return `holds a symbolic link, ${name}: rarecon writes only its own files there and never through a link; remove it (and check what else another user may have left there)`;
    if (st.uid !== uid && st.uid !== 0)
      return `holds ${name}, which belongs to uid ${st.uid}: rarecon keeps only its own files there; remove it (and check what else another user may have left there)`;
  }
  return null;
}

/** Why an opened output file is not one rarecon may append to; null when it may. */
function outputProblem(st: Stats, path: string, what: string): string | null {
  const uid = me();
  if (st.isDirectory()) return `${what} ${path} is a folder, not a file`;
  if (!st.isFile() && !st.isFIFO() && !st.isCharacterDevice()) return `${what} ${path} is not a regular file`;
  if (st.uid !== uid && st.uid !== 0)
    return `${what} ${path} belongs to uid ${st.uid}: rarecon appends only to its own files (another user may have made it to read what rarecon writes); remove it, or chown ${uid} it`;
  if (st.isFile() && st.nlink > 1)
    return `${what} ${path} has ${st.nlink} hard links: one may point at a file rarecon must not write to; give it a file of its own`;
  return null;
}

function openErrorText(err: unknown, path: string, what: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'EMLINK')
    return `${what} ${path} is a symbolic link: rarecon does not write through links (another user may have planted it); remove it, or give the path of the real file`;
  return `${what} ${path} cannot be opened: ${errorText(err)}`;
}

export type OpenedOutput = { ok: true; fd: number; sizeBytes: number } | { ok: false; error: string };

/**
 * Opens an output file (`--alerts`, `--record`) to append to, created 0600
 * with its folder: never through a symbolic link, never another user's file.
 */
export function openOutputFile(path: string, what: string): OpenedOutput {
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
    fd = openSync(path, APPEND_FLAGS, PRIVATE_FILE_MODE);
  } catch (err) {
    return { ok: false, error: openErrorText(err, path, what) };
  }
  const st = fstatSync(fd);
  const problem = outputProblem(st, path, what);
  if (problem !== null) {
    closeSync(fd);
    return { ok: false, error: problem };
  }
  return { ok: true, fd, sizeBytes: st.size };
}

/** openOutputFile as a stream to append lines to; throws an Error saying what is wrong (a start-up failure). */
export function openOutputStream(path: string, what: string): WriteStream {
  const o = openOutputFile(path, what);
  if (!o.ok) throw new Error(o.error);
  return createWriteStream(path, { fd: o.fd });
}

/** openOutputFile for async writers (the file sink); throws an Error with the same messages. */
export async function openOutputFileAsync(path: string, what: string): Promise<{ handle: FileHandle; sizeBytes: number }> {
  let handle: FileHandle;
  try {
    await mkdir(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
    handle = await open(path, APPEND_FLAGS, PRIVATE_FILE_MODE);
  } catch (err) {
    throw new Error(openErrorText(err, path, what));
  }
  const st = await handle.stat();
  const problem = outputProblem(st, path, what);
  if (problem !== null) {
    await handle.close();
    throw new Error(problem);
  }
  return { handle, sizeBytes: st.size };
}

/**
 * Checks an output path before it is opened: not a symbolic link, not another
 * user's file (other problems are left for the open to report). With `privateFolder` (a file another library opens and, after a
 * rotation, creates again, following links: winston's log file) its folder must
 * also be one no other user can write to.
 */
export function checkOutputPath(path: string, what: string, opts: { privateFolder?: boolean } = {}): Checked {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink())
      return {
        ok: false,
        error: `${what} ${path} is a symbolic link: rarecon does not write through links (another user may have planted it); remove it, or give the path of the real file`,
      };
    const problem = outputProblem(st, path, what);
    if (problem !== null) return { ok: false, error: problem };
  } catch {
    // Missing, or unreachable: opening it says why.
  }
  if (opts.privateFolder !== true) return { ok: true };
  const dir = dirname(path);
  try {
    const d = statSync(dir);
    if ((d.mode & 0o022) !== 0 && d.uid !== me())
      return {
        ok: false,
        error: `${what} ${path} is in ${dir} (mode ${octal(d.mode)}), which other users can write to: they could plant a link where it is created again; choose a folder only rarecon's user can write to`,
      };
  } catch {
    // Not there yet (the writer makes it), or unreachable: opening the file says why.
  }
  return { ok: true };
}

/**
 * Replaces `path` whole: written to `<path>.<random>.tmp`, created exclusively
 * with `mode`, then renamed over it (rename replaces a link, never follows it).
 * Throws on a write failure, leaving no temp file behind.
 */
export function replaceFile(path: string, data: string | Buffer, opts: { mode?: number; fsync?: boolean } = {}): void {
  const mode = opts.mode ?? PRIVATE_FILE_MODE;
  const tmp = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(tmp, EXCLUSIVE_FLAGS, mode);
  try {
    try {
      // The umask may have taken bits the caller asked for (a public key is 0644).
      fchmodSync(fd, mode);
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      if (opts.fsync === true) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** A temp file name beside `path` nobody can guess, for a writer that creates it exclusively itself. */
export function tempNameFor(path: string): string {
  return `${path}.${randomBytes(8).toString('hex')}.tmp`;
}

/**
 * Before SQLite opens `path`: a missing file is created empty, exclusively and
 * 0600 (SQLite then gives its -wal and -shm files the same mode); an existing
 * one must not be a symbolic link, and is tightened to 0600 when it is ours
 * (a store made by an older rarecon was 0644). Throws, naming `what`.
 */
export function preparePrivateFile(path: string, what: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${what} (${path}): ${errorText(err)}`);
    try {
      closeSync(openSync(path, EXCLUSIVE_FLAGS, PRIVATE_FILE_MODE));
    } catch (e) {
      // Another process of ours may have made it meanwhile; the checks below then apply.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${what} (${path}) cannot be created: ${errorText(e)}`);
    }
    st = lstatSync(path);
  }
  if (st.isSymbolicLink())
    throw new Error(`${what} (${path}) is a symbolic link: rarecon opens its stores only as files of their own; remove the link`);
  if (!st.isFile()) throw new Error(`${what} (${path}) is not a regular file`);
  if (st.uid === me()) {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        const j = lstatSync(f);
        if (j.isFile() && (j.mode & 0o077) !== 0) chmodSync(f, PRIVATE_FILE_MODE);
      } catch {
        // no such journal file
      }
    }
  }
}

function errorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const msg = (err as Error).message ?? String(err);
  return code !== undefined && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
