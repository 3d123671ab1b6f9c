// `rarecon score` without --state holds open alerts compactly
// (detect/compact-dedup.ts); with --state it holds them whole and writes them
// to the state. Both must print the same bytes: the same alerts, counts and
// order, in OCSF and ECS, on a log of many alerts whose windows close mid-run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineBuilder } from '../../src/baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { rarecon } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-cli-held-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SHAS = ['c0'.repeat(32), 'd1'.repeat(32)];
const T = Date.UTC(2026, 9, 1, 9);
const baseline = join(tmp, 'base.db');
const log = join(tmp, 'many.jsonl');

beforeAll(() => {
  // Both binaries common (12 hosts); shop1.com:443 seen by 2 hosts (rare), the rest never.
  const b = new BaselineBuilder({ unit: 'host', windowDays: 30, thresholds: DEFAULT_THRESHOLDS, policy: DEFAULT_POLICY });
  for (let h = 0; h < 12; h++)
    for (const sha of SHAS)
      for (const back of [1, 30]) {
        const rare = h < 2 && back === 1;
        b.add({
          observer: `acme/fleet${h}`,
          dayMs: T - back * DAY_MS,
          sha256: sha,
          rootDomain: rare ? 'shop1.com' : null,
          port: rare ? 443 : null,
        });
      }
  const w = b.write(baseline, { version: 1, builtAtMs: T, windowEndMs: T });
  if (!w.ok) throw new Error(w.error);
  const lines: string[] = [];
  let x = 7;
  const rnd = (m: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % m;
  for (let i = 0; i < 8000; i++) {
    const host = `ws${rnd(9)}`;
    lines.push(
      JSON.stringify({
        type: 'connection',
        time: T + Math.floor(i * 40_000) - rnd(3) * 60_000,
        host: { id: host, org: 'acme', name: `${host}.acme.example` },
        process: {
          pid: 4000 + rnd(20),
          path: '/usr/bin/app',
          sha256: SHAS[rnd(2)],
          signer: rnd(4) === 0 ? { status: 'valid', subject: 'Mozilla', vendor: 'Mozilla' } : { status: 'unsigned' },
          injection: rnd(50) === 0 ? { injected: true, indicators: ['memfd-exe'] } : { injected: false, indicators: [] },
          cmdline: `app --job ${rnd(100)}`,
          user: 'svc',
        },
        protocol: 'tcp',
        remote: { ip: `203.0.113.${rnd(200)}`, port: rnd(3) === 0 ? 8443 : 443, hostname: `api.shop${rnd(400)}.com` },
      }),
    );
  }
  writeFileSync(log, lines.join('\n') + '\n');
});

describe('rarecon score: open alerts held compactly', () => {
  for (const format of ['ocsf', 'ecs']) {
    it(`prints the same ${format} bytes as alerts held whole (--state)`, async () => {
      const args = ['score', '--baseline', baseline, '--activation-days', '0', '--format', format, log];
      const compact = await rarecon(args);
      const whole = await rarecon([...args, '--state', mkdtempSync(join(tmp, 'state-'))]);
      expect(compact.code, compact.stderr).toBe(0);
      expect(whole.code, whole.stderr).toBe(0);
      const n = compact.stdout.split('\n').filter((l) => l !== '').length;
      // ~3.7 days of a 9-host fleet: many alerts, windows closing mid-run.
      expect(n, compact.stderr).toBeGreaterThan(3000);
      expect(/repeats folded into them: ([\d,]+)/.exec(compact.stderr)?.[1]).not.toBe('0');
      expect(compact.stdout).toBe(whole.stdout);
    });
  }
});
