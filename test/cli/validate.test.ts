// `rarecon validate` as a user runs it, on each broken config the issue met
// (it said "valid" to all of them) and a few more: each is refused with its
// file, line, setting and what is wrong; a working config with real files is
// valid. The 2^31 ms timer is also refused by `rarecon run` before it starts.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type TestCerts } from '../support/certs.js';
import { rarecon } from '../support/cli.js';
import { generateSigningKey } from '../../src/baseline/signature.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-validate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let certs: TestCerts;
let n = 0;
const state = join(tmp, 'state');
const token = join(tmp, 'token');

beforeAll(() => {
  mkdirSync(join(tmp, 'certs'));
  certs = makeCerts(join(tmp, 'certs'));
  writeFileSync(token, 'sink-token\n', { mode: 0o600 });
});

/** Writes `yaml` (after a stateDir line) and validates it. */
async function validate(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; file: string }> {
  const file = join(tmp, `c${++n}.yaml`);
  writeFileSync(file, `stateDir: ${state}\n${yaml}`);
  const r = await rarecon(['validate', file], { env });
  return { code: r.code, out: r.stdout + r.stderr, file };
}

const httpsSink = (extra: string): string => `report:\n  sinks:\n    - type: http\n      url: https://siem.example/alerts\n${extra}`;

describe('rarecon validate refuses what start-up would refuse', () => {
  it('a missing caFile', async () => {
    const r = await validate(httpsSink('      caFile: /nonexistent/ca.pem\n'));
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:6: report.sinks[0].caFile: cannot read the CA file /nonexistent/ca.pem: no such file`);
  });

  it('a missing certFile and keyFile', async () => {
    const r = await validate(httpsSink('      certFile: /nonexistent/c.pem\n      keyFile: /nonexistent/k.pem\n'));
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:6: report.sinks[0].certFile: cannot read the certificate /nonexistent/c.pem: no such file`);
    expect(r.out).toContain(`${r.file}:7: report.sinks[0].keyFile: cannot read the private key /nonexistent/k.pem: no such file`);
  });

  it('a missing tokenFile', async () => {
    const r = await validate(httpsSink('      tokenFile: /nonexistent/token\n'));
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:6: report.sinks[0].tokenFile: cannot read the token file /nonexistent/token: ENOENT`);
  });

  it('a tokenEnv variable that is not set', async () => {
    const r = await validate(httpsSink('      tokenEnv: RARECON_TEST_UNSET_TOKEN\n'));
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:6: report.sinks[0].tokenEnv: the environment variable RARECON_TEST_UNSET_TOKEN is not set or empty`);
    // Set, it is fine.
    const ok = await validate(httpsSink('      tokenEnv: RARECON_TEST_SET_TOKEN\n'), { RARECON_TEST_SET_TOKEN: 'abc' });
    expect(ok.out).toContain('valid');
    expect(ok.code).toBe(0);
  });

  it('tlsCertFile without tlsKeyFile', async () => {
    const r = await validate(`server:\n  tlsCertFile: ${certs.serverCert}\n`);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `${r.file}:3: server.tlsCertFile: server.tlsCertFile and server.tlsKeyFile go together: set both for HTTPS, or neither`,
    );
  });

  it('buildCron: "every day" (node-cron\'s own validator), and a bad syncCron', async () => {
    const r = await validate('server:\n  buildCron: "every day"\nsync:\n  syncCron: "61 * * * *"\n');
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:3: server.buildCron: "every day" is not a cron expression node-cron takes`);
    expect(r.out).toContain(`${r.file}:5: sync.syncCron: "61 * * * *" is not a cron expression node-cron takes`);
  });

  it('enrich.timeoutMs: 1e99', async () => {
    const r = await validate('enrich:\n  timeoutMs: 1e99\n');
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:3: enrich.timeoutMs: must be at most 2147483647 (Node's longest timer, about 24.8 days), got 1e+99`);
  });

  it('timers of 2^31 ms, and counts beyond their bound', async () => {
    const r = await validate(
      'watchdog:\n  intervalMs: 2147483648\nreport:\n  pollMs: 4294967296\nsync:\n  jitterMs: 2147483648\nsource:\n  queueMaxEvents: 1e12\n',
    );
    expect(r.code).toBe(1);
    for (const [line, path, v] of [
      [3, 'watchdog.intervalMs', 2147483648],
      [5, 'report.pollMs', 4294967296],
      [7, 'sync.jitterMs', 2147483648],
    ] as const)
      expect(r.out).toContain(`${r.file}:${line}: ${path}: must be at most 2147483647 (Node's longest timer, about 24.8 days), got ${v}`);
    expect(r.out).toContain(`${r.file}:9: source.queueMaxEvents: must be at most 100000000, got 1000000000000`);
    expect(r.out).toContain('4 problems');
  });
});

describe('rarecon validate checks more than start-up would', () => {
  it('a certificate with the wrong key, and a CA file that holds no certificate', async () => {
    const notPem = join(tmp, 'not-a-ca.pem');
    writeFileSync(notPem, 'hello\n');
    const r = await validate(
      httpsSink(`      caFile: ${notPem}\n      certFile: ${certs.clientCert}\n      keyFile: ${certs.serverKey}\n`),
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain(`report.sinks[0].caFile: the CA file ${notPem} holds no PEM certificate`);
    expect(r.out).toContain(
      `report.sinks[0].certFile: ${certs.clientCert} and ${certs.serverKey} are not a certificate and its own private key`,
    );
  });

  it('a file sink and a log file that are symbolic links', async () => {
    const link = join(tmp, 'planted.jsonl');
    symlinkSync(join(tmp, 'victim'), link);
    const r = await validate(`logFile: ${link}\nreport:\n  sinks:\n    - type: file\n      path: ${link}\n`);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`logFile: the log file (logFile) ${link} is a symbolic link`);
    expect(r.out).toContain(`report.sinks[0].path: sink file: the file ${link} is a symbolic link`);
  });

  it('an endpoint of a server that is neither enrolled nor given a token, and a missing baseline', async () => {
    const key = generateSigningKey().publicKeyText;
    const r = await validate(
      `baselinePath: /nonexistent/base.db\nsync:\n  serverUrl: https://127.0.0.1:8787\n  serverPublicKey: "${key}"\n  enrolTokenEnv: RARECON_TEST_UNSET_ENROL\n`,
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${r.file}:2: baselinePath: `);
    expect(r.out).toContain(`${r.file}:6: sync.enrolTokenEnv: the environment variable RARECON_TEST_UNSET_ENROL is not set or empty`);
  });

  it('says a working config with real files is valid, and notes a state folder it will tighten', async () => {
    mkdirSync(state, { recursive: true });
    chmodSync(state, 0o755);
    const r = await validate(
      `${httpsSink(`      caFile: ${certs.ca}\n      certFile: ${certs.clientCert}\n      keyFile: ${certs.clientKey}\n      tokenFile: ${token}\n`)}server:\n  tlsCertFile: ${certs.serverCert}\n  tlsKeyFile: ${certs.serverKey}\n  buildCron: "0 3 * * *"\n`,
    );
    expect(r.out).toContain(
      `note: ${r.file}:1: stateDir: the state folder ${state} is open to other users (mode 0755): rarecon tightens it to 0700 at start`,
    );
    expect(r.out).toContain(`${r.file}: valid`);
    expect(r.code).toBe(0);
    // validate changed nothing.
    expect(statSync(state).mode & 0o777).toBe(0o755);
    expect(readFileSync(token, 'utf8')).toBe('sink-token\n');
  });
});

describe('rarecon run refuses a 2^31 ms timer', () => {
  it('before it starts', async () => {
    const file = join(tmp, 'run-timer.yaml');
    writeFileSync(file, `source:\n  kind: procfs\nwatchdog:\n  intervalMs: 2147483648\n`);
    const r = await rarecon(['run', '--config', file, '--state', join(tmp, 'run-state')], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `rarecon: bad config, not starting:\n${file}:4: watchdog.intervalMs: must be at most 2147483647 (Node's longest timer, about 24.8 days), got 2147483648\n`,
    );
  });
});
