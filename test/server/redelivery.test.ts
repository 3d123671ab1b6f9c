// Issue 15, finding 10 (the receiver's side): delivery is at least once, so a
// receiver must be able to tell a redelivery. A real outbox process delivers
// to a real `rarecon server`'s alert intake; a batch reaches the server but
// its answer never comes back, and the process is killed -9. After a restart
// the batch is sent again with the very same uids and bodies: the server
// recognises every one as a duplicate, and holds each alert once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/env.js';
import { DIST_SERVER_CLI, enrolHosts, enrolToken, http, startProxy, startServerCli, tempDir, type ServerCli } from '../support/server.js';

const HERE = dirname(fileURLToPath(import.meta.url));

interface Child {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<unknown>;
}

function outboxChild(outbox: string, url: string, token: string, count: number): Child {
  const proc = spawn(
    process.execPath,
    ['--import', join(HERE, '..', 'support', 'ts-register.mjs'), join(HERE, '..', 'support', 'outbox-child.ts')],
    {
      env: { ...process.env, RARECON_OUTBOX: outbox, RARECON_URL: url, RARECON_COUNT: String(count), RARECON_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { proc, out: () => out, exited: new Promise((r) => proc.on('exit', r)) };
}

describe.skipIf(!existsSync(DIST_SERVER_CLI))('at-least-once delivery, seen by the receiver', () => {
  const tmp = tempDir('redeliver');
  let server: ServerCli;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let cred = '';

  beforeAll(async () => {
    server = await startServerCli(tmp.dir, '');
    const { token } = await enrolToken(server, 'deliver');
    [cred] = (await enrolHosts(server.url, token, 1, 'sender')) as [string];
    proxy = await startProxy(server.url);
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
    tmp.cleanup();
  });

  const stats = async (): Promise<{ stored: number; updated: number; duplicates: number }> =>
    (await http(`${server.url}/v1/admin/stats`, { token: server.adminToken })).json.alertsSinceStart;

  it('a batch stored but never acknowledged comes again after kill -9 with the same uids, and is stored once', async () => {
    const outbox = join(tmp.dir, 'outbox.db');
    const total = 200;
    // Every batch reaches the server and its answer is held back: the first one is stored, never acknowledged.
    proxy.mode = { kind: 'forward-then-hang' };
    const first = outboxChild(outbox, `${proxy.url}/v1/alerts`, cred, total);
    await until('a batch stored at the server and unanswered', 30_000, async () =>
      proxy.held >= 1 && (await stats()).stored > 0 ? true : undefined,
    );
    await until('every alert committed to the outbox', 30_000, () => (first.out().includes(`committed ${total}`) ? true : undefined));
    const before = await stats();
    first.proc.kill('SIGKILL');
    await first.exited;

    proxy.mode = { kind: 'pass' };
    const second = outboxChild(outbox, `${proxy.url}/v1/alerts`, cred, 0);
    await until('the outbox drained', 60_000, () => (second.out().includes('drained') ? true : undefined));
    second.proc.kill('SIGTERM');
    await second.exited;

    const after = await stats();
    // The batch in flight at the kill was sent again: the same uids with the very same bodies.
    expect(before.stored).toBeGreaterThan(0);
    expect(after.duplicates - before.duplicates).toBe(before.stored);
    expect(after.updated).toBe(0);
    expect(after.stored).toBe(total);
    const listed = await http(`${server.url}/v1/alerts?limit=1000`, { token: server.adminToken });
    const uids = (listed.json.alerts as Array<{ uid: string; hostId: string }>).map((a) => a.uid);
    expect(uids).toHaveLength(total);
    expect(new Set(uids).size).toBe(total);
  });
});
