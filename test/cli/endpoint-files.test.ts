// What `rarecon run` and `rarecon server` create, and what they refuse, from
// the outside: real processes (the daemon on the /proc source, no eBPF
// needed), a planted symbolic link or an open folder, and a root-only victim
// file that must stay untouched. "Another user" is uid 65534 (nobody).
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rarecon } from '../support/cli.js';
import { DaemonRun } from '../support/daemon.js';
import { isRoot } from '../support/env.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-endpoint-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(tmp, `case-${++n}`);
  mkdirSync(d);
  return d;
};
const mode = (p: string): number => statSync(p).mode & 0o777;

/** A root-owned 0600 file, and a check that nothing wrote to it. */
function victim(dir: string): { path: string; untouched: () => void } {
  const path = join(dir, 'victim');
  writeFileSync(path, 'root-only content\n', { mode: 0o600 });
  const before = statSync(path);
  return {
    path,
    untouched: () => {
      const now = statSync(path);
      expect(readFileSync(path, 'utf8')).toBe('root-only content\n');
      expect([now.size, now.mtimeMs, now.mode & 0o777]).toEqual([before.size, before.mtimeMs, 0o600]);
    },
  };
}

/** `rarecon run` on the /proc source with a file sink, as DaemonRun sets it up; for runs that must not start. */
function runDaemon(dir: string, extra: string[] = [], config: Record<string, unknown> = {}): ReturnType<typeof rarecon> {
  const cfg = join(dir, 'config.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      source: { kind: 'procfs' },
      metrics: { enabled: false },
      report: { sinks: [{ type: 'file', name: 'e2e', path: join(dir, 'sink.jsonl'), fsync: false }] },
      ...config,
    }),
  );
  return rarecon(['run', '--config', cfg, '--state', join(dir, 'state'), ...extra], { timeoutMs: 60_000 });
}

const SYMLINK =
  'is a symbolic link: rarecon does not write through links (another user may have planted it); remove it, or give the path of the real file';

describe.runIf(isRoot)('rarecon run: output files are never written through a link', () => {
  it('refuses --alerts when it is a symbolic link to a root-only file', async () => {
    const d = fresh();
    const v = victim(d);
    const alerts = join(d, 'alerts.jsonl');
    symlinkSync(v.path, alerts);
    const r = await runDaemon(d, ['--alerts', alerts]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: cannot start: the alerts file (--alerts) ${alerts} ${SYMLINK}`);
    v.untouched();
  });

  it('refuses --record when it is a symbolic link', async () => {
    const d = fresh();
    const v = victim(d);
    const rec = join(d, 'record.jsonl');
    symlinkSync(v.path, rec);
    const r = await runDaemon(d, ['--record', rec]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: cannot start: the record file (--record) ${rec} ${SYMLINK}`);
    v.untouched();
  });

  it('refuses a file sink whose path is a symbolic link', async () => {
    const d = fresh();
    const v = victim(d);
    symlinkSync(v.path, join(d, 'sink.jsonl'));
    const r = await runDaemon(d);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`sink e2e: the file ${join(d, 'sink.jsonl')} ${SYMLINK}`);
    v.untouched();
  });

  it('refuses a log file that is a symbolic link', async () => {
    const d = fresh();
    const v = victim(d);
    symlinkSync(v.path, join(d, 'rarecon.log'));
    const r = await runDaemon(d, [], { logFile: join(d, 'rarecon.log') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: cannot start: the log file (logFile) ${join(d, 'rarecon.log')} ${SYMLINK}`);
    v.untouched();
  });

  it('refuses a state folder holding a planted status.json.tmp link', async () => {
    const d = fresh();
    const v = victim(d);
    const state = join(d, 'state');
    mkdirSync(state);
    chmodSync(state, 0o777);
    symlinkSync(v.path, join(state, 'status.json.tmp'));
    const r = await runDaemon(d);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: cannot start: the state folder ${state} holds a symbolic link, status.json.tmp`);
    v.untouched();
  });

  it('refuses a state folder of another user that anyone can write to, and leaves it as it was', async () => {
    const d = fresh();
    const state = join(d, 'state');
    mkdirSync(state);
    chmodSync(state, 0o777);
    chownSync(state, 65534, 65534);
    const r = await runDaemon(d);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `rarecon: cannot start: the state folder ${state} belongs to uid 65534, not to the user rarecon runs as (uid 0) or root: that user could plant files and links in it; chown 0 ${state}, or choose another folder`,
    );
    expect(mode(state)).toBe(0o777);
    expect(readdirSync(state)).toEqual([]);
  });
});

describe.runIf(isRoot)('rarecon run: every file it makes is 0600 in a 0700 folder', () => {
  it('tightens an open state folder of its own, says so, and writes its state, status, alerts and record files 0600', async () => {
    const d = fresh();
    const state = join(d, 'state');
    mkdirSync(state);
    chmodSync(state, 0o777);
    const run = await DaemonRun.start({ dir: d, config: { source: { kind: 'procfs' }, metrics: { enabled: false } } });
    try {
      const said = await run.waitForLog((l) => l.message === 'The state folder was open to other users; rarecon tightened it.', 5000);
      expect([said.path, said.from, said.to]).toEqual([state, '0777', '0700']);
      expect(mode(state)).toBe(0o700);
      const files = readdirSync(state).sort();
      for (const f of ['state.db', 'outbox.db', 'sightings.db', 'status.json']) expect(files).toContain(f);
      const modes = Object.fromEntries([...files.map((f) => join(state, f)), run.alertsPath, run.recordPath!].map((p) => [p, mode(p)]));
      expect(modes).toEqual(Object.fromEntries(Object.keys(modes).map((p) => [p, 0o600])));
    } finally {
      await run.stop();
    }
  });
});

describe.runIf(isRoot)('rarecon server: its folder and stores', () => {
  it('refuses a state folder of another user', async () => {
    const state = join(fresh(), 'server');
    mkdirSync(state);
    chmodSync(state, 0o777);
    chownSync(state, 65534, 65534);
    const r = await rarecon(['server', 'enroll', '--org', 'acme', '--state', state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rarecon: the server state folder ${state} belongs to uid 65534`);
    expect(readdirSync(state)).toEqual([]);
  });

  it('tightens its own open folder and makes server.db, publish.db, the key and the tokens 0600', async () => {
    const state = join(fresh(), 'server');
    mkdirSync(state);
    chmodSync(state, 0o755);
    const e = await rarecon(['server', 'enroll', '--org', 'acme', '--state', state]);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stderr).toContain(`rarecon server: the state folder ${state} was open to other users (mode 0755); tightened to 0700`);
    const b = await rarecon(['server', 'build', '--state', state]);
    expect(b.code, b.stderr).toBe(0);
    expect(mode(state)).toBe(0o700);
    const files = readdirSync(state, { withFileTypes: true });
    expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(['server.db', 'publish.db', 'signing-key.pem']));
    const modes = Object.fromEntries(files.map((f) => [f.name, mode(join(state, f.name))]));
    expect(modes).toEqual(Object.fromEntries(files.map((f) => [f.name, f.isDirectory() ? 0o700 : 0o600])));
  });
});
