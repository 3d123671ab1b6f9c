// End-to-end, real kernel: the daemon under the restrictions of the shipped
// systemd unit, applied by hand because systemd need not be running here: only
// the unit's CapabilityBoundingSet (setpriv) and its SystemCallFilter, expanded by
// `systemd-analyze syscall-filter`, with EPERM for the rest and no_new_privs
// (test/support/seccomp-exec.c, libseccomp). It must still capture with eBPF,
// read DNS answers, enrich from /proc and raise the alert. The other daemon e2e
// tests run the same way with RARECON_E2E_UNIT_SANDBOX=1.
// Needs root; skips with the reason otherwise.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertKey, DaemonRun, VERY_RARE } from '../support/daemon.js';
import { writeBaseline } from '../support/e2e-baseline.js';
import { buildNative, rootReason, sha256File } from '../support/env.js';
import { TestHost } from '../support/testhost.js';
import { unitCapabilities, unitSandbox } from '../support/unit-file.js';

const skipReason = rootReason();
if (skipReason !== null) console.log(`service-sandbox.e2e: skipping: ${skipReason}`);

const CURL = '/usr/bin/curl';
const PORT = 8443;
// 203.0.113.208/28: this file's test host (see support/testhost.ts).
const IP = { dns: '203.0.113.210', c2: '203.0.113.211' };
const NAME = 'c2.sandbox-test.example';

let dir = '';
let host: TestHost | null = null;
let daemon: DaemonRun | null = null;
let curlSha = '';

beforeAll(async () => {
  if (skipReason !== null) return;
  await buildNative();
  dir = mkdtempSync(join(tmpdir(), 'rarecon-e2e-sandbox-'));
  curlSha = sha256File(CURL);
  const baselinePath = join(dir, 'baseline.db');
  writeBaseline(baselinePath, { commonSha256: [curlSha] });
  host = await TestHost.start({
    tag: 'u',
    hostSide: '203.0.113.209/28',
    addresses: [IP.dns, IP.c2],
    names: { [NAME]: IP.c2 },
    ports: [PORT],
    dir,
  });
  daemon = await DaemonRun.start({ dir, baseline: baselinePath, under: unitSandbox(), config: { source: { kind: 'ebpf' } } });
}, 180_000);

afterAll(async () => {
  await daemon?.stop('SIGTERM');
  host?.stop();
  if (dir !== '' && !process.env['RARECON_E2E_KEEP']) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skipReason !== null)("rarecon run under the unit's capabilities and system call filter", () => {
  it('runs with only those capabilities and the filter in force', () => {
    const d = daemon as DaemonRun;
    const status = spawnSync('cat', [`/proc/${d.pid}/status`], { encoding: 'utf8' }).stdout;
    // The node process under setpriv and seccomp-exec: its pid is the one DaemonRun spawned (exec keeps it).
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    const bounding = BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
    const bit = {
      CAP_DAC_READ_SEARCH: 2,
      CAP_NET_RAW: 13,
      CAP_SYS_PTRACE: 19,
      CAP_SYS_RESOURCE: 24,
      CAP_PERFMON: 38,
      CAP_BPF: 39,
    } as const;
    // setpriv can only keep what this machine's own bounding set has (a container may lack CAP_SYS_RESOURCE).
    const ours = BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
    const unit = unitCapabilities().reduce((m, c) => m | (1n << BigInt(bit[c as keyof typeof bit])), 0n);
    if ((unit & ~ours) !== 0n)
      console.log(`service-sandbox.e2e: this machine's bounding set lacks 0x${(unit & ~ours).toString(16)} of the unit's`);
    expect(bounding).toBe(unit & ours);
    expect(d.stderrText).toMatch(/seccomp-exec: \d+ system calls allowed/);
  });

  it('captures with eBPF and raises the very rare alert with the sha256, signer, name and root domain', async () => {
    const d = daemon as DaemonRun;
    const st = d.statusFile();
    expect(st?.source?.name).toBe('ebpf');
    const run = await (host as TestHost).run([CURL, '-sS', '--noproxy', '*', '-m', '5', '-o', '/dev/null', `http://${NAME}:${PORT}/`]);
    expect(run.code, run.stderr).toBe(0);
    const seen = await d.waitForAlert((a) => alertKey(a).hostname === NAME, 10_000);
    expect(alertKey(seen.alert)).toEqual({ name: VERY_RARE, sha256: curlSha, domain: 'sandbox-test.example', port: PORT, hostname: NAME });
    // Read from /proc of another process (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH), verified against dpkg's database.
    expect(seen.alert.actor.process).toMatchObject({ pid: run.pid, name: 'curl', file: { path: CURL, company_name: expect.any(String) } });
    expect(seen.alert.unmapped.signer_status).toBe('valid');
  });
});
