// The daemon's Prometheus endpoint and health check, on a real daemon process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO } from '../support/cli.js';
import { metricsText } from '../../src/daemon/metrics.js';

const dir = mkdtempSync(join(tmpdir(), 'rarecon-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const port = 20_000 + Math.floor(Math.random() * 20_000);

async function get(path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

describe('metrics endpoint', () => {
  it('serves Prometheus text and a health check on loopback while the daemon runs', async () => {
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `source: {kind: procfs, pollIntervalMs: 200}\nreport: {sinks: [{type: file, name: archive, path: ${join(dir, 'alerts.jsonl')}}]}\nmetrics: {enabled: true, host: 127.0.0.1, port: ${port}}\nstatusIntervalMs: 200\n`,
    );
    const child = spawn(process.execPath, [CLI, 'run', '--config', config, '--state', join(dir, 'state')], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const closed = new Promise((r) => child.once('close', r));
    try {
      let health: { status: number; body: string } | null = null;
      for (let i = 0; i < 100 && health === null && child.exitCode === null; i++) {
        await new Promise((r) => setTimeout(r, 100));
        health = await get('/healthz').catch(() => null);
      }
      expect(health, log).not.toBeNull();
      expect(health!.status).toBe(200);
      expect(JSON.parse(health!.body)).toMatchObject({ ok: true, source: 'procfs_poll' });
      const m = await get('/metrics');
      expect(m.status).toBe(200);
      expect(m.body).toMatch(/^# TYPE rarecon_events_received_total counter$/m);
      expect(m.body).toMatch(/^rarecon_events_received_total\{source="procfs_poll"\} \d+$/m);
      expect(m.body).toMatch(/^rarecon_events_dropped_total\{reason="enrich_queue"\} 0$/m);
      expect(m.body).toMatch(/^rarecon_resident_memory_bytes [1-9]\d+$/m);
      expect((await get('/other')).status).toBe(404);
      // Every item the operator needs is exported (issue 5), even before it has a sample.
      const families = [...m.body.matchAll(/^# TYPE (\S+) (counter|gauge)$/gm)].map((x) => x[1]);
      expect(families).toEqual(
        expect.arrayContaining([
          'rarecon_events_received_total',
          'rarecon_events_dropped_total',
          'rarecon_enrich_errors_total',
          'rarecon_alerts_total',
          'rarecon_outbox_depth',
          'rarecon_outbox_oldest_age_seconds',
          'rarecon_sink_failures_total',
          'rarecon_baseline_version',
          'rarecon_baseline_age_seconds',
          'rarecon_cache_hits_total',
          'rarecon_cache_misses_total',
          'rarecon_resident_memory_bytes',
          'rarecon_cpu_seconds_total',
          'rarecon_watchdog_shed_total',
          'rarecon_watchdog_level',
          'rarecon_watchdog_cpu_percent',
          'rarecon_state_disk_full',
          'rarecon_state_write_failures_total',
        ]),
      );
      for (const cache of ['dns', 'image_hash', 'signer', 'injection_maps']) {
        expect(m.body).toMatch(new RegExp(`^rarecon_cache_hits_total\\{cache="${cache}"\\} \\d+$`, 'm'));
      }
      expect(m.body).toMatch(/^rarecon_watchdog_shed_total\{reason="connection_sampled"\} 0$/m);
      expect(m.body).toMatch(/^rarecon_watchdog_level 0$/m);
      expect(m.body).toMatch(/^rarecon_state_disk_full 0$/m);
      expect(m.body).toMatch(/^rarecon_sink_failures_total\{sink="archive"\} 0$/m);
    } finally {
      child.kill('SIGTERM');
      await closed;
    }
  });

  it('escapes label values and lists alerts by name', () => {
    const text = metricsText({
      pid: 1,
      startedMs: 0,
      updatedMs: 0,
      host: 'o/h',
      source: null,
      queue: { size: 0, capacity: 1, droppedTotal: 0, inFlight: 0 },
      counters: {},
      score: {
        recordsTotal: 0,
        connectionsTotal: 3,
        dnsAnswersTotal: 0,
        processRunsTotal: 0,
        eligibleTotal: 0,
        ineligibleByReason: { 'no-hostname': 2 },
        learningByReason: {},
        excludedByKind: {},
        commonCombosTotal: 0,
        alertsByName: { 'a "quoted" name': 1 },
        repeatsTotal: 0,
        pausedTotal: 0,
        healthAlertsTotal: 0,
      },
      enrich: {},
      learningDaysLeft: 3,
      baseline: null,
      alertsLast24h: 0,
      lastAlertMs: null,
      report: null,
      sync: null,
      rssBytes: 5,
      cpu: { user: 1e6, system: 0 },
    });
    expect(text).toContain('rarecon_alerts_total{name="a \\"quoted\\" name"} 1');
    expect(text).toContain('rarecon_ineligible_total{reason="no-hostname"} 2');
    expect(text).toContain('rarecon_learning_days_left 3');
    expect(text).toContain('rarecon_cpu_seconds_total 1');
    // A status file of an older daemon (no watchdog, state or cache fields) still renders.
    expect(text).toContain('# TYPE rarecon_cache_hits_total counter');
    expect(text).not.toContain('rarecon_watchdog_level');
  });
});
