// Throwaway PostgreSQL clusters for the tests and the bench: initdb in a
// temporary folder, its own port (18500-18599, lane r19) and socket folder, run
// as the `postgres` user when the tests run as root, removed when stopped.
// A standby is a pg_basebackup of a running primary, streaming from it.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

function asRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The PostgreSQL 15 binaries (Debian's postgresql-15), or PG_BIN. */
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Null when the tests can run a cluster; otherwise why not (printed by the skipping test). */
export function pgMissingReason(): string | null {
  for (const b of ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'])
    if (!existsSync(join(PG_BIN, b)))
      return `PostgreSQL binaries not found: ${join(PG_BIN, b)} (apt-get install postgresql-15, or set PG_BIN)`;
  if (asRoot()) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root and there is no `postgres` user to run the cluster as';
    }
  }
  return null;
}

/** Runs a PostgreSQL binary as the cluster's owner. */
async function pgRun(bin: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const full = join(PG_BIN, bin);
  const { stdout } = asRoot()
    ? await run('runuser', ['-u', 'postgres', '--', full, ...args], { timeout: timeoutMs, cwd: '/tmp' })
    : await run(full, args, { timeout: timeoutMs });
  return stdout;
}

/** Running as root: the folder goes to the postgres user, who runs the cluster (initdb refuses root). */
function owned(path: string): void {
  if (!asRoot()) return;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  chownSync(path, uid, gid);
}

/** A free TCP port of 127.0.0.1 in this lane's range, from a random start (test files run at once). */
export async function freePort(from = 18_500, to = 18_599): Promise<number> {
  const span = to - from + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const p = from + ((start + i) % span);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return p;
  }
  throw new Error(`no free port in ${from}-${to}`);
}

export interface PgCluster {
  port: number;
  dataDir: string;
  /** postgresql://postgres@127.0.0.1:PORT/DB */
  url: (db?: string) => string;
  /** A fresh empty database; its URL. */
  createDatabase: (name: string) => Promise<string>;
  /** Stops the cluster (fast, or immediate = a crash) and removes its folder. */
  stop: (mode?: 'fast' | 'immediate') => Promise<void>;
  /** The server's log so far. */
  log: () => string;
}

export interface ClusterOptions {
  /** postgresql.conf lines on top of the test settings. */
  settings?: Record<string, string | number>;
  /** Durable (fsync on): the bench's figures; tests run without fsync. */
  durable?: boolean;
}

const clusters = new Set<PgCluster>();
process.once('exit', () => {
  // A test that failed before its stop(): do not leave a postmaster behind.
  for (const c of clusters) {
    try {
      const args = ['-D', c.dataDir, 'stop', '-m', 'immediate'];
      if (asRoot()) execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl'), ...args], { stdio: 'ignore' });
      else execFileSync(join(PG_BIN, 'pg_ctl'), args, { stdio: 'ignore' });
    } catch {
      // already down
    }
  }
});

function confLines(port: number, socketDir: string, opts: ClusterOptions): string {
  const s: Record<string, string | number> = {
    port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${socketDir}'`,
    max_connections: 200,
    shared_buffers: "'256MB'",
    max_wal_size: "'4GB'",
    wal_level: 'replica',
    max_wal_senders: 5,
    hot_standby: 'on',
    logging_collector: 'off',
    ...(opts.durable === true ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...(opts.settings ?? {}),
  };
  return Object.entries(s)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
}

async function startDir(dataDir: string, port: number, logFile: string): Promise<PgCluster> {
  await pgRun('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
  const url = (db = 'postgres'): string => `postgresql://postgres@127.0.0.1:${port}/${db}`;
  const root = join(dataDir, '..');
  const cluster: PgCluster = {
    port,
    dataDir,
    url,
    createDatabase: async (name) => {
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    stop: async (mode = 'fast') => {
      clusters.delete(cluster);
      try {
        await pgRun('pg_ctl', ['-D', dataDir, 'stop', '-m', mode, '-w', '-t', '60']);
      } catch {
        // already down (a test crashed it on purpose)
      }
      rmSync(root, { recursive: true, force: true });
    },
    log: () => readFileSync(logFile, 'utf8'),
  };
  clusters.add(cluster);
  return cluster;
}

/** initdb + start of a fresh cluster on a free port of the lane's range. */
export async function startPgCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  const root = mkdtempSync(join(tmpdir(), 'rarecon-pg-'));
  owned(root);
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'sock');
  await pgRun('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  mkdirSync(socketDir);
  owned(socketDir);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(join(root, 'extra.conf'), confLines(port, socketDir, opts) + '\n');
    owned(join(root, 'extra.conf'));
    await appendInclude(dataDir, join(root, 'extra.conf'));
    try {
      return await startDir(dataDir, port, join(root, 'log'));
    } catch (e) {
      // Another file's cluster took the port between the check and the start.
      if (attempt >= 3) throw new Error(`the PostgreSQL cluster did not start: ${(e as Error).message}`);
    }
  }
}

async function appendInclude(dataDir: string, conf: string): Promise<void> {
  const path = join(dataDir, 'postgresql.conf');
  const text = readFileSync(path, 'utf8');
  const line = `include '${conf}'`;
  if (!text.includes(line)) writeFileSync(path, `${text}\n${line}\n`);
}

/** A hot standby of `primary`: pg_basebackup -R (streaming), started on its own port. */
export async function startStandby(primary: PgCluster, opts: ClusterOptions = {}): Promise<PgCluster> {
  const root = mkdtempSync(join(tmpdir(), 'rarecon-pg-standby-'));
  owned(root);
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'sock');
  await pgRun('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    dataDir,
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
  ]);
  mkdirSync(socketDir);
  owned(socketDir);
  const port = await freePort();
  writeFileSync(join(root, 'extra.conf'), confLines(port, socketDir, opts) + '\n');
  owned(join(root, 'extra.conf'));
  // The copied postgresql.conf includes the primary's extra.conf: point it at the standby's own.
  const path = join(dataDir, 'postgresql.conf');
  const text = readFileSync(path, 'utf8').replace(/^include '.*extra\.conf'$/m, `include '${join(root, 'extra.conf')}'`);
  writeFileSync(path, text);
  return startDir(dataDir, port, join(root, 'log'));
}

/** Waits until the standby has replayed everything the primary had written when called. */
export async function waitForReplay(primary: PgCluster, standby: PgCluster, db: string, timeoutMs = 60_000): Promise<void> {
  const p = new pg.Client({ connectionString: primary.url(db) });
  const s = new pg.Client({ connectionString: standby.url(db) });
  await p.connect();
  await s.connect();
  try {
    const lsn = ((await p.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0] as { l: string }).l;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await s.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]);
      if (r.rows[0]?.ok === true) return;
      if (Date.now() > deadline) throw new Error(`the standby did not replay up to ${lsn} within ${timeoutMs} ms`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
  } finally {
    await p.end();
    await s.end();
  }
}

/** Who runs the clusters (for messages). */
export function clusterUser(): string {
  return asRoot() ? 'postgres' : userInfo().username;
}
