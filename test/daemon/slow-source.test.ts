// A source that takes longer than the start-up wait to capture (a loaded
// machine verifying the eBPF programs): the daemon serves meanwhile, and says
// it is watching only once the source captures, never before.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryLogger } from '../../src/common/logger.js';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { readiness, zeroSourceStats, type LiveRecord, type LiveSource } from '../../src/sources/source.js';
import { until } from '../support/env.js';

const dir = mkdtempSync(join(tmpdir(), 'rarecon-slow-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function slowSource(): LiveSource & { capture: () => void } {
  const ready = readiness();
  return {
    name: 'ebpf',
    reason: 'test source',
    ready: ready.promise,
    capture: () => ready.resolve(),
    async *run(signal: AbortSignal): AsyncGenerator<LiveRecord> {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
    stats: () => zeroSourceStats('ebpf', 'test source'),
    shutdown: async () => {},
  };
}

describe('daemon start-up with a slow source', () => {
  it('warns that it is not capturing yet, and logs "watching" only when the source captures', async () => {
    const log = memoryLogger();
    const source = slowSource();
    const daemon = new Daemon({
      config: { ...DEFAULT_CONFIG, stateDir: join(dir, 'state'), metrics: { ...DEFAULT_CONFIG.metrics, enabled: false } },
      reloadConfig: null,
      baselinePath: null,
      alertsPath: null,
      recordPath: null,
      log,
      source: Promise.resolve(source),
      sourceReadyTimeoutMs: 50,
    });
    await daemon.start();
    const watching = (): boolean => log.lines.some((l) => l.msg === 'rarecon is watching outbound connections.');
    expect(log.lines.find((l) => l.level === 'warn')?.msg).toMatch(/not capturing yet after 0\.05 s/);
    expect(watching()).toBe(false);
    source.capture();
    await until('the watching line', 10_000, () => (watching() ? true : undefined), 10);
    expect(log.lines.findIndex((l) => l.level === 'warn')).toBeLessThan(
      log.lines.findIndex((l) => l.msg.startsWith('rarecon is watching')),
    );
    await daemon.stop();
  });
});
