// The HTTP sink and the whole report stage against real HTTP(S) servers on 127.0.0.1.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SINK_DEFAULTS, DEFAULT_REPORT, type HttpSinkConfig, type ReportConfig } from '../../src/config/defaults.js';
import { HttpSink } from '../../src/report/http-sink.js';
import { Reporter } from '../../src/report/reporter.js';
import { detection, eventually } from '../support/alerts.js';
import { makeCerts, type TestCerts } from '../support/certs.js';
import { deliveryReport, outOfOrder, Receiver } from '../support/receiver.js';

let dir: string;
let certs: TestCerts;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-http-'));
  certs = makeCerts(dir);
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function httpSink(name: string, url: string, over: Partial<HttpSinkConfig> = {}): HttpSinkConfig {
  return { ...SINK_DEFAULTS.http, name, url, lingerMs: 0, batchMaxAlerts: 50, timeoutMs: 2_000, ...over };
}

function report(sinks: HttpSinkConfig[], over: Partial<ReportConfig> = {}): ReportConfig {
  return {
    ...DEFAULT_REPORT,
    outbox: { ...DEFAULT_REPORT.outbox, path: join(dir, `outbox-${Math.random().toString(36).slice(2)}.db`) },
    backoff: { initialMs: 20, maxMs: 200, maxRetryAfterMs: 10_000, maxAttempts: 0 },
    pollMs: 50,
    sinks,
    ...over,
  };
}

async function receiver(r = new Receiver()): Promise<Receiver> {
  await r.listen();
  cleanup.push(() => r.stop());
  return r;
}

function start(cfg: ReportConfig): Reporter {
  const rep = Reporter.start(cfg, { stateDir: dir });
  cleanup.push(() => rep.shutdown());
  return rep;
}

const hostOf = (uid: string): string => uid.split('-')[1]!;

describe('http delivery', () => {
  it('delivers every alert, in order per host, after the upstream was down for a while', async () => {
    const rx = await receiver();
    const rep = start(report([httpSink('siem', rx.url)]));
    const alerts = Array.from({ length: 300 }, (_, i) => detection(i, { host: `h${i % 3}` }));
    // Down in three ways: 503, connections reset, and nothing listening at all.
    rx.mode = { kind: 'status', status: 503 };
    for (const a of alerts.slice(0, 100)) expect(rep.enqueue(a).ok).toBe(true);
    await eventually(() => rx.attempts.length >= 3);
    rx.mode = { kind: 'reset' };
    for (const a of alerts.slice(100, 200)) rep.enqueue(a);
    await eventually(() => rx.attempts.filter((x) => x.status === 0).length >= 3);
    const port = rx.port;
    await rx.stop();
    for (const a of alerts.slice(200)) rep.enqueue(a);
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.requests).toHaveLength(0);
    expect(rep.stats().outbox.sinks['siem']?.depth).toBe(300);
    // Back.
    rx.mode = { kind: 'up' };
    await rx.listen(port);
    expect(await eventually(() => rep.stats().outbox.rows === 0, 20_000)).toBe(true);
    const expected = alerts.map((a) => a.uid);
    const { missing, duplicates } = deliveryReport(rx.uids, expected);
    expect(missing).toEqual([]);
    expect(duplicates).toBe(0);
    expect(outOfOrder(rx.uids, expected, hostOf)).toEqual([]);
    const s = rep.stats().outbox;
    expect(s.deliveredTotal).toBe(300);
    expect(s.retriedTotal).toBeGreaterThan(0);
    expect(s.sinks['siem']?.depth).toBe(0);
  });

  it('dead-letters what a sink refuses with 400 for ever, with the reason and sink, while the other sink gets everything', async () => {
    const refusing = await receiver();
    refusing.mode = { kind: 'status', status: 400 };
    const good = await receiver();
    const rep = start(report([httpSink('refusing', refusing.url, { batchMaxAlerts: 4 }), httpSink('good', good.url)]));
    const alerts = Array.from({ length: 10 }, (_, i) => detection(i));
    rep.enqueueMany(alerts);
    expect(await eventually(() => rep.stats().outbox.rows === 0, 15_000)).toBe(true);
    expect(good.uids).toEqual(alerts.map((a) => a.uid));
    const dead = rep.deadLetters(100);
    expect(dead.map((d) => d.uid).sort()).toEqual(alerts.map((a) => a.uid).sort());
    for (const d of dead) {
      expect(d.sink).toBe('refusing');
      expect(d.reason).toMatch(/answered HTTP 400: \{"error":"schema mismatch/);
    }
    expect(rep.stats().outbox.sinks['refusing']?.deadLetteredTotal).toBe(10);
    expect(rep.stats().outbox.sinks['good']?.deadLetteredTotal).toBe(0);
  });

  it('honours 429 with Retry-After in seconds', async () => {
    const rx = await receiver();
    rx.mode = { kind: 'status', status: 429, retryAfter: '1' };
    const rep = start(report([httpSink('siem', rx.url)]));
    rep.enqueue(detection(1));
    await eventually(() => rx.attempts.length === 1);
    rx.mode = { kind: 'up' };
    expect(await eventually(() => rx.requests.length === 1, 5_000)).toBe(true);
    const gap = rx.attempts[1]!.atMs - rx.attempts[0]!.atMs;
    expect(gap).toBeGreaterThanOrEqual(950);
  });

  it('honours 503 with Retry-After as an HTTP date', async () => {
    const rx = await receiver();
    const sink = new HttpSink(httpSink('siem', rx.url));
    cleanup.push(() => sink.close());
    rx.mode = { kind: 'status', status: 503, retryAfter: new Date(Date.now() + 30_000).toUTCString() };
    const r = await sink.send([detection(1)], new AbortController().signal);
    expect(r.status).toBe('retryable');
    expect(r.status === 'retryable' && r.retryAfterMs).toBeGreaterThan(25_000);
  });

  it('classifies answers: 2xx success, 5xx/408/429 retryable, other 4xx and 3xx failure, silence a timeout', async () => {
    const rx = await receiver();
    const sink = new HttpSink(httpSink('siem', rx.url, { timeoutMs: 300 }));
    cleanup.push(() => sink.close());
    const send = () => sink.send([detection(1)], new AbortController().signal);
    const cases: Array<[number, string]> = [
      [500, 'retryable'],
      [502, 'retryable'],
      [408, 'retryable'],
      [429, 'retryable'],
      [401, 'failure'],
      [404, 'failure'],
      [413, 'failure'],
      [301, 'failure'],
    ];
    for (const [status, want] of cases) {
      rx.mode = { kind: 'status', status };
      expect([status, (await send()).status]).toEqual([status, want]);
    }
    rx.mode = { kind: 'hang' };
    const t = await send();
    expect(t.status).toBe('retryable');
    expect(t.status !== 'success' && t.error.message).toMatch(/did not answer within 300 ms/);
    rx.mode = { kind: 'up' };
    expect((await send()).status).toBe('success');
  });

  it('speaks mutual TLS with a custom CA and sends the bearer token from a file as NDJSON ECS', async () => {
    const rx = await receiver(
      new Receiver({
        key: readFileSync(certs.serverKey),
        cert: readFileSync(certs.serverCert),
        ca: readFileSync(certs.ca),
        requestCert: true,
        rejectUnauthorized: true,
      }),
    );
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 's3cret-token\n');
    const cfg = httpSink('siem', rx.url, {
      caFile: certs.ca,
      certFile: certs.clientCert,
      keyFile: certs.clientKey,
      tokenFile,
      body: 'ndjson',
      format: 'ecs',
      gzip: false,
    });
    const sink = new HttpSink(cfg);
    cleanup.push(() => sink.close());
    const r = await sink.send([detection(1), detection(2)], new AbortController().signal);
    expect(r).toEqual({ status: 'success' });
    expect(rx.requests[0]!.uids).toEqual([detection(1).uid, detection(2).uid]);
    expect(rx.requests[0]!.headers['authorization']).toBe('Bearer s3cret-token');
    expect(rx.requests[0]!.headers['content-type']).toBe('application/x-ndjson');
    // A rotated token is picked up without a restart.
    await new Promise((res) => setTimeout(res, 20));
    writeFileSync(tokenFile, 'rotated');
    await sink.send([detection(3)], new AbortController().signal);
    expect(rx.requests[1]!.headers['authorization']).toBe('Bearer rotated');
    // Without the client certificate the server refuses the handshake: retryable.
    const noCert = new HttpSink({ ...cfg, certFile: null, keyFile: null });
    cleanup.push(() => noCert.close());
    expect((await noCert.send([detection(4)], new AbortController().signal)).status).toBe('retryable');
    // Without our CA the server certificate does not verify: retryable, never sent.
    const noCa = new HttpSink({ ...cfg, caFile: null });
    cleanup.push(() => noCa.close());
    const r2 = await noCa.send([detection(5)], new AbortController().signal);
    expect(r2.status !== 'success' && r2.error.message).toMatch(/certificate/i);
    expect(rx.requests).toHaveLength(2);
  });

  it('takes the token from the environment, and refuses to start without it', async () => {
    const rx = await receiver();
    const cfg = httpSink('siem', rx.url, { tokenEnv: 'RARECON_TEST_TOKEN', gzip: true });
    expect(() => new HttpSink(cfg, { env: {} })).toThrow(/RARECON_TEST_TOKEN is not set/);
    const sink = new HttpSink(cfg, { env: { RARECON_TEST_TOKEN: 'from-env' } });
    cleanup.push(() => sink.close());
    rx.mode = { kind: 'up' };
    expect(await sink.send([detection(1)], new AbortController().signal)).toEqual({ status: 'success' });
    expect(rx.requests[0]!.headers['authorization']).toBe('Bearer from-env');
    expect(rx.requests[0]!.headers['content-encoding']).toBe('gzip');
    expect(rx.requests[0]!.uids).toEqual([detection(1).uid]);
  });
});
