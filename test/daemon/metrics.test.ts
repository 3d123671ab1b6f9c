// The daemon's Prometheus endpoint and health check, on a real daemon process.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO } from '../support/cli.js';
import { memoryLogger } from '../../src/common/logger.js';
import { DEFAULT_CONFIG, DEFAULT_REPORT, SINK_DEFAULTS } from '../../src/config/defaults.js';
import { emptyScoreCounters, type ScoreCounters } from '../../src/detect/scorer.js';
import { metricsText } from '../../src/daemon/metrics.js';
import { HEALTH_ALERT_NAME, VARIATIONS } from '../../src/model/alert.js';
import { NO_BASELINE } from '../../src/daemon/pipeline.js';
import { StateHealth } from '../../src/daemon/state-health.js';
import { buildStatus } from '../../src/daemon/status-writer.js';
import { processSample, Watchdog } from '../../src/daemon/watchdog.js';
import { ConnectionEnricher, type ConnectionEnricherStats } from '../../src/enrich/connection-enricher.js';
import { Reporter, type ReportStats } from '../../src/report/reporter.js';
import { detection, eventually } from '../support/alerts.js';
import { Receiver } from '../support/receiver.js';

const dir = mkdtempSync(join(tmpdir(), 'rarecon-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const port = 20_000 + Math.floor(Math.random() * 20_000);

/** The enricher's counters before its first connection. */
const idleEnrich = (): ConnectionEnricherStats => new ConnectionEnricher(DEFAULT_CONFIG.enrich, { id: 'h', org: 'o' }).stats();

/** A reporter's stats with nothing queued and no sink. */
const idleReport = (): ReportStats => ({
  outbox: {
    rows: 0,
    bytes: 0,
    oldestAgeMs: null,
    sinks: {},
    deadLetterRows: 0,
    enqueuedTotal: 0,
    duplicatesTotal: 0,
    deliveredTotal: 0,
    retriedTotal: 0,
    deadLetteredTotal: 0,
    evictedTotal: 0,
    evictedBySeverity: { High: 0, Medium: 0, Low: 0, Informational: 0 },
    diskFullTotal: 0,
  },
  delivery: [],
});

const idleScore = (): ScoreCounters => emptyScoreCounters();

async function get(path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

/** `promtool check metrics` on an exposition (promtool comes with Debian's prometheus package: service/install-deps.sh). */
function promtool(text: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`promtool: ${r.error.message} (install it with service/install-deps.sh)`);
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
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
      expect(m.body).toMatch(/^process_resident_memory_bytes [1-9]\d+$/m);
      expect(m.body).toMatch(/^process_open_fds [1-9]\d*$/m);
      expect(m.body).toMatch(/^rarecon_build_info\{version="\d+\.\d+\.\d+",nodejs="20\.\d+\.\d+"\} 1$/m);
      expect(promtool(m.body)).toEqual({ code: 0, output: '' });
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
          'process_resident_memory_bytes',
          'process_cpu_seconds_total',
          'process_start_time_seconds',
          'process_virtual_memory_bytes',
          'process_max_fds',
          'rarecon_build_info',
          'rarecon_learning_remaining_seconds',
          'rarecon_watchdog_shed_total',
          'rarecon_watchdog_level',
          'rarecon_watchdog_cpu_ratio',
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

  it('lists alerts by variation id and passes promtool check metrics', () => {
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
        alertsByName: { [VARIATIONS[1]!.name]: 4, [VARIATIONS[4]!.name]: 2, [HEALTH_ALERT_NAME]: 1, 'a "quoted" name': 1 },
        repeatsTotal: 0,
        pausedTotal: 0,
        healthAlertsTotal: 0,
      },
      enrich: idleEnrich(),
      learningDaysLeft: 3,
      baseline: null,
      alertsLast24h: 0,
      lastAlertMs: null,
      report: idleReport(),
      sync: null,
      rssBytes: 5,
      cpu: { user: 1e6, system: 0 },
    });
    // Label values are variation ids, not alert titles.
    expect(text).toContain('rarecon_alerts_total{variation="very-rare"} 4\nrarecon_alerts_total{variation="uncommon"} 2');
    expect(text).toContain('rarecon_alerts_total{variation="health"} 1\nrarecon_alerts_total{variation="other"} 1\n');
    expect(text).toContain('rarecon_ineligible_total{reason="no-hostname"} 2');
    expect(text).toContain('rarecon_learning_remaining_seconds 259200');
    expect(text).toContain('process_cpu_seconds_total 1');
    expect(promtool(text)).toEqual({ code: 0, output: '' });
    // A status file of an older daemon (no watchdog, state or cache fields) still renders.
    expect(text).toContain('# TYPE rarecon_cache_hits_total counter');
    expect(text).not.toContain('rarecon_watchdog_level');
  });
});

describe('sink failures', () => {
  it('counts every failed send of a sink as the reporter counted it', async () => {
    const rx = await new Receiver().listen();
    rx.mode = { kind: 'status', status: 503 };
    const rep = Reporter.start(
      {
        ...DEFAULT_REPORT,
        outbox: { ...DEFAULT_REPORT.outbox, path: join(dir, 'sink-failures-outbox.db') },
        backoff: { initialMs: 10, maxMs: 40, maxRetryAfterMs: 1_000, maxAttempts: 7 },
        pollMs: 50,
        sinks: [{ ...SINK_DEFAULTS.http, name: 'siem', url: rx.url, lingerMs: 0, timeoutMs: 2_000 }],
      },
      { stateDir: dir },
    );
    try {
      rep.enqueue(detection(1));
      // Six retries, then the seventh failure moves the alert to the dead letters: the sink is done failing.
      expect(await eventually(() => rep.stats().outbox.sinks['siem']?.deadLetteredTotal === 1)).toBe(true);
      const report = rep.stats();
      const log = memoryLogger();
      // The status as the daemon builds it, with this reporter's stats and an idle pipeline.
      const status = buildStatus(
        {
          queue: { size: 0, capacity: 1, droppedTotal: 0, inFlight: 0 },
          counters: {
            alertsTotal: 0,
            heldTotal: 0,
            heldExpiredTotal: 0,
            selfSkippedTotal: 0,
            scoredTotal: 0,
            stateWriteFailedTotal: 0,
            valveCountedTotal: 0,
          },
          score: idleScore(),
          learningDaysLeft: 0,
          enrich: idleEnrich(),
          dns: { hitsTotal: 0, missesTotal: 0 },
          baseline: NO_BASELINE.meta(),
          baselineCache: null,
          lastAlertMs: null,
          startedMs: 0,
          host: 'o/h',
          baselinePath: null,
          source: null,
          reloadsTotal: 0,
          alertsLast24h: 0,
          report,
          sync: null,
          watchdog: new Watchdog(DEFAULT_CONFIG.watchdog, { sample: processSample, log, onHardLimit: () => {} }).stats(),
          stateDir: new StateHealth(log, dir).stats(),
        },
        Date.now(),
      );
      const text = metricsText(status);
      const failures = Number(/^rarecon_sink_failures_total\{sink="siem"\} (\d+)$/m.exec(text)?.[1]);
      const counted = report.outbox.sinks['siem']!;
      expect(rx.attempts).toHaveLength(7);
      expect(counted.retriedTotal + counted.deadLetteredTotal).toBe(7);
      expect(failures, text).toBeGreaterThan(0);
      expect(failures).toBe(counted.retriedTotal + counted.deadLetteredTotal);
    } finally {
      await rep.shutdown();
      await rx.stop();
    }
  });
});
