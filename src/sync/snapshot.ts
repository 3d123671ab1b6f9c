// Snapshot mode: the whole signed baseline file is downloaded to a temp file,
// verified (pinned key, digest, kind, policy, newer version, the metadata it
// was signed with, SQLite integrity), fsynced, then renamed over baseline.db.
// Anything refused leaves the baseline in force untouched.
import type { KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { canonicalJson } from '../baseline/signature.js';
import { openBaseline } from '../baseline/store.js';
import type { BaselineFile } from './baseline-file.js';
import type { ServerCalls } from './http-client.js';
import { verifySigned } from './signed-answer.js';
import { fail, olderThanEnrolment, type Changed } from './step.js';

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the rename durable. */
function fsyncDir(dir: string): void {
  try {
    fsyncFile(dir);
  } catch {
    // not every file system lets a folder be fsynced
  }
}

export class SnapshotSync {
  constructor(
    private readonly http: ServerCalls,
    private readonly key: KeyObject,
    private readonly baseline: BaselineFile,
    private readonly stateDir: string,
    /** The oldest version this host takes (named by the server at enrolment); null = any newer than the one in force. */
    private readonly minVersion: () => number | null = () => null,
  ) {}

  /** Downloads a newer snapshot, when the server has one, and puts it in force. */
  async sync(): Promise<Changed> {
    const cur = this.baseline.reader()?.meta() ?? null;
    const headers: Record<string, string> = cur === null ? {} : { 'if-none-match': `"s${cur.version}"` };
    const r = await this.http.call('GET', '/v1/baseline/snapshot', undefined, true, headers);
    if (!r.ok) return r;
    const d = r.value;
    if (d.status === 304) return { ok: true, value: { changed: false } };
    if (d.status !== 200) return this.http.failure(d, 'snapshot download');
    if (d.signed === null) return fail('unsigned', 'the snapshot is not signed', { refused: true });
    const file = d.signed.file;
    try {
      const v = verifySigned(this.key, d.signed, 'snapshot');
      if (!v.ok) return v;
      const h = v.value;
      const floor = this.minVersion();
      if (floor !== null && h.meta.version < floor) return olderThanEnrolment(h.meta.version, floor);
      if (cur !== null && h.meta.version <= cur.version) {
        return fail('older', `refused: snapshot version ${h.meta.version} is not newer than the version ${cur.version} in force`, {
          refused: true,
        });
      }
      const o = openBaseline(file, this.baseline.storeCfg);
      if (!o.ok) return fail(o.code === 'policy' ? 'policy' : 'bad-snapshot', `refused: ${o.error}`, { refused: true });
      const sameMeta = canonicalJson(o.baseline.meta()) === canonicalJson(h.meta);
      const integrity = sameMeta ? o.baseline.integrityProblem() : null;
      o.baseline.close();
      if (!sameMeta) return fail('bad-snapshot', 'refused: the file does not hold the metadata its signature names', { refused: true });
      if (integrity !== null) return fail('bad-snapshot', `refused: ${integrity}`, { refused: true });
      fsyncFile(file);
      renameSync(file, this.baseline.path);
      fsyncDir(this.stateDir);
      return this.baseline.reopen();
    } finally {
      rmSync(file, { force: true });
    }
  }
}
