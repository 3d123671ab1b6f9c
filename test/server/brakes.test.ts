// Issue 15, findings 5 and 6 (the brakes): a real `rarecon server` process
// flooded on loopback.
//   - rate limits per source address (enrolment) and per credential (uploads,
//     downloads) answer 429 with Retry-After, and health still answers;
//   - a budget of request bytes held in memory: concurrent large uploads
//     beyond it get 503 with Retry-After, and those admitted are stored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import {
  DIST_SERVER_CLI,
  enrolHosts,
  enrolToken,
  http,
  request,
  startServerCli,
  tempDir,
  type HttpResult,
  type ServerCli,
} from '../support/server.js';

async function flood(n: number, parallel: number, one: (i: number) => Promise<HttpResult>): Promise<HttpResult[]> {
  const out: HttpResult[] = [];
  for (let i = 0; i < n; i += parallel) {
    const part = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, (_, k) => one(i + k)));
    out.push(...part);
  }
  return out;
}

function statuses(rs: HttpResult[]): Record<number, number> {
  const m: Record<number, number> = {};
  for (const r of rs) m[r.status] = (m[r.status] ?? 0) + 1;
  return m;
}

/** A POST of raw bytes with a declared length; a connection the server cut shows as status 0. */
function upload(
  url: string,
  token: string,
  body: Buffer,
): Promise<{ status: number; retryAfter: string | undefined; code: string | null }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = request(
      {
        protocol: u.protocol,
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(body.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let code: string | null = null;
          try {
            code = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code: string } }).error?.code ?? null;
          } catch {
            code = null;
          }
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, code });
        });
      },
    );
    req.on('error', () => resolve({ status: 0, retryAfter: undefined, code: null }));
    req.end(body);
  });
}

describe.skipIf(!existsSync(DIST_SERVER_CLI))('rate limits (default settings)', () => {
  const tmp = tempDir('brakes');
  let server: ServerCli;
  let token = '';
  let noisy = '';
  let quiet = '';

  beforeAll(async () => {
    server = await startServerCli(tmp.dir, '');
    token = (await enrolToken(server, 'flooded')).token;
    // Enrolled before the enrolment flood below uses up this address's enrolments.
    [noisy, quiet] = (await enrolHosts(server.url, token, 2, 'cred')) as [string, string];
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('answers a flood of bad-token enrolments from one address with 429 and Retry-After; health still answers', async () => {
    let healthFailures = 0;
    const t0 = Date.now();
    const rs = await flood(300, 25, async (i) => {
      if (i % 25 === 0) {
        const h = await http(`${server.url}/v1/health`);
        if (h.status !== 200) healthFailures++;
      }
      return http(`${server.url}/v1/enroll`, { body: { token: `rce_guess-${i}`, hostId: `guess-${i}` } });
    });
    const s = statuses(rs);
    // The default allows a burst of 30 (2 went to the enrolments above), then 60 a minute.
    expect(s[401] ?? 0).toBeGreaterThanOrEqual(28);
    const refilled = Math.ceil((Date.now() - t0) / 1000) + 1;
    expect(s[401] ?? 0).toBeLessThanOrEqual(30 + refilled);
    expect(s[429] ?? 0).toBeGreaterThanOrEqual(300 - 30 - refilled);
    const limited = rs.find((r) => r.status === 429) as HttpResult;
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json.error).toMatchObject({ code: 'rate-limited' });
    expect(limited.json.error.message).toContain('server.rateLimits.enrolPerAddress');
    expect(healthFailures).toBe(0);
    // Said once, not once per refusal.
    expect(server.log().match(/over a rate limit/g)?.length).toBe(1);
    // A genuine enrolment from the same address now waits too: the limit is per address, whatever the token.
    const real = await http(`${server.url}/v1/enroll`, { body: { token, hostId: 'real' } });
    expect(real.status).toBe(429);
  });

  it('limits one credential’s uploads and downloads, not another’s', async () => {
    const stats0 = await http(`${server.url}/v1/admin/stats`, { token: server.adminToken });
    // Defaults: uploads 120 a minute after a burst of 60, downloads 240 after 120, per credential.
    let t0 = Date.now();
    const ups = await flood(150, 25, () => http(`${server.url}/v1/alerts`, { token: noisy, body: [] }));
    expect(statuses(ups)[429] ?? 0).toBeGreaterThanOrEqual(150 - 60 - 2 * Math.ceil((Date.now() - t0) / 1000) - 1);
    const limited = ups.find((r) => r.status === 429) as HttpResult;
    expect(limited.json.error.message).toContain('server.rateLimits.uploadPerCredential');
    expect((await http(`${server.url}/v1/alerts`, { token: quiet, body: [] })).status).toBe(200);
    t0 = Date.now();
    const downs = await flood(250, 25, () => http(`${server.url}/v1/baseline/buckets/0a1b`, { token: noisy }));
    expect(statuses(downs)[429] ?? 0).toBeGreaterThanOrEqual(250 - 120 - 4 * Math.ceil((Date.now() - t0) / 1000) - 1);
    const stats = await http(`${server.url}/v1/admin/stats`, { token: server.adminToken });
    expect(stats.json.rateLimited.upload).toBeGreaterThan(stats0.json.rateLimited.upload);
    expect(stats.json.rateLimited.download).toBeGreaterThan(0);
  });
});

describe.skipIf(!existsSync(DIST_SERVER_CLI))('the memory budget of request bodies', () => {
  const tmp = tempDir('budget');
  let server: ServerCli;

  beforeAll(async () => {
    // One 4 MiB body at a time (5 budget bytes a body byte): concurrency is what is refused.
    server = await startServerCli(tmp.dir, '  limits:\n    maxBodyBytes: 4194304\n    memoryBudgetBytes: 25165824\n');
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('answers uploads beyond the budget 503 with Retry-After, stores those it took, and gives the budget back', async () => {
    const { token } = await enrolToken(server, 'big');
    const creds = await enrolHosts(server.url, token, 8, 'big');
    const one = JSON.stringify({ metadata: { uid: 'x' }, severity_id: 2, unmapped: { cmd: 'a'.repeat(5_000) } });
    const batch = (h: number): Buffer =>
      Buffer.from(`[${Array.from({ length: 700 }, (_, i) => one.replace('"x"', `"u-${h}-${i}"`)).join(',')}]`);
    const bodies = creds.map((_, h) => batch(h));
    expect(bodies[0]!.length).toBeGreaterThan(3_000_000);
    const health = http(`${server.url}/v1/health`);
    const rs = await Promise.all(creds.map((c, h) => upload(`${server.url}/v1/alerts`, c, bodies[h]!)));
    expect((await health).status).toBe(200);
    const busy = rs.filter((r) => r.status === 503);
    const taken = rs.filter((r) => r.status === 200);
    expect(busy.length, JSON.stringify(rs)).toBeGreaterThan(0);
    expect(taken.length, JSON.stringify(rs)).toBeGreaterThan(0);
    expect(busy.length + taken.length).toBe(8);
    expect(busy.every((r) => r.code === 'busy' && Number(r.retryAfter) >= 1)).toBe(true);
    // Sent again one at a time, as a client honouring Retry-After would, each is taken.
    for (let h = 0; h < 8; h++) {
      if (rs[h]!.status === 200) continue;
      expect((await upload(`${server.url}/v1/alerts`, creds[h]!, bodies[h]!)).status).toBe(200);
    }
    const stats = await http(`${server.url}/v1/admin/stats`, { token: server.adminToken });
    expect(stats.json.intake.alerts).toBe(8 * 700);
    expect(stats.json.memoryBudget).toMatchObject({ inUseBytes: 0 });
    expect(stats.json.memoryBudget.refusedTotal).toBeGreaterThanOrEqual(busy.length);
    expect(stats.json.memoryBudget.peakBytes).toBeLessThanOrEqual(25165824);
  });
});
