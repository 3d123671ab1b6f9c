// Prometheus text exposition and a health check on 127.0.0.1, from the same
// status the daemon writes for `rarecon status`. Names follow Prometheus's
// conventions (checked with `promtool check metrics` in test/daemon/metrics.test.ts):
// base units (seconds, bytes), ratios not percents, short label values (the
// variation id, not the alert title), the standard process_* metrics and a
// build-info gauge.
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { HEALTH_ALERT_NAME, VARIATIONS } from '../model/alert.js';
import { PRODUCT_VERSION } from '../model/product.js';
import type { DaemonStatus } from './status.js';

type Sample = [labels: Record<string, string>, value: number];

function family(out: string[], name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
      .join(',');
    out.push(`${name}${l === '' ? '' : `{${l}}`} ${Number.isFinite(value) ? value : 0}`);
  }
}

const byKey = (m: Record<string, number> | undefined, label: string): Sample[] =>
  Object.entries(m ?? {}).map(([k, v]) => [{ [label]: k }, v]);

/** Alert counts by name, as counts by variation id (`very-rare`, `health`): a label value is a short, bounded name. */
function alertsByVariation(byName: Record<string, number>): Sample[] {
  const out = new Map<string, number>();
  for (const [name, n] of Object.entries(byName)) {
    const id = name === HEALTH_ALERT_NAME ? 'health' : (VARIATIONS.find((v) => v.name === name)?.id ?? 'other');
    out.set(id, (out.get(id) ?? 0) + n);
  }
  return [...out].map(([variation, n]): Sample => [{ variation }, n]);
}

/** The standard process metrics of the exporting process (the daemon), read from /proc at scrape time. */
export interface ProcessMetrics {
  cpuSeconds: number;
  residentBytes: number;
  virtualBytes: number | null;
  startTimeSeconds: number;
  openFds: number | null;
  maxFds: number | null;
}

export function readProcessMetrics(): ProcessMetrics {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  let virtualBytes: number | null = null;
  let openFds: number | null = null;
  let maxFds: number | null = null;
  try {
    const vm = /^VmSize:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    virtualBytes = vm === undefined ? null : Number(vm) * 1024;
    openFds = readdirSync('/proc/self/fd').length;
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    maxFds = soft === undefined ? null : Number(soft);
  } catch {
    // Not Linux, or /proc hidden: the fd metrics are left out.
  }
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: mem.rss,
    virtualBytes,
    startTimeSeconds: Math.round((Date.now() - process.uptime() * 1000) / 10) / 100,
    openFds,
    maxFds,
  };
}

function processFamilies(out: string[], p: ProcessMetrics): void {
  family(out, 'process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', [[{}, p.cpuSeconds]]);
  family(out, 'process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [[{}, p.residentBytes]]);
  if (p.virtualBytes !== null)
    family(out, 'process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', [[{}, p.virtualBytes]]);
  family(out, 'process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [[{}, p.startTimeSeconds]]);
  if (p.openFds !== null) family(out, 'process_open_fds', 'gauge', 'Number of open file descriptors.', [[{}, p.openFds]]);
  if (p.maxFds !== null) family(out, 'process_max_fds', 'gauge', 'Maximum number of open file descriptors.', [[{}, p.maxFds]]);
}

/**
 * The exposition of a status. `proc` is the exporting process's own sample
 * (the daemon serving /metrics); without one, the status's own CPU and memory stand in.
 */
export function metricsText(s: DaemonStatus, nowMs = Date.now(), proc: ProcessMetrics | null = null): string {
  const out: string[] = [];
  family(out, 'rarecon_build_info', 'gauge', 'The running build: always 1, its version and Node.js in the labels.', [
    [{ version: PRODUCT_VERSION, nodejs: process.versions.node }, 1],
  ]);
  const src = s.source;
  family(out, 'rarecon_events_received_total', 'counter', 'Records the source delivered.', [
    [{ source: src?.name ?? 'none' }, src?.receivedTotal ?? 0],
  ]);
  family(out, 'rarecon_events_dropped_total', 'counter', 'Events lost, by reason.', [
    [{ reason: 'kernel_ring_buffer' }, src?.kernelDropsTotal ?? 0],
    [{ reason: 'source_queue' }, src?.droppedTotal ?? 0],
    [{ reason: 'enrich_queue' }, s.queue.droppedTotal],
    [{ reason: 'watchdog_sampled' }, s.watchdog?.shedByReason.connection_sampled ?? 0],
    [{ reason: 'watchdog_not_common' }, s.watchdog?.shedByReason.connection_not_common ?? 0],
    [{ reason: 'watchdog_udp_not_common' }, s.watchdog?.shedByReason.udp_flow_not_common ?? 0],
  ]);
  family(out, 'rarecon_decode_errors_total', 'counter', 'Frames from the helper that could not be decoded.', [
    [{}, src?.decodeErrorsTotal ?? 0],
  ]);
  family(out, 'rarecon_helper_restarts_total', 'counter', 'Restarts of the eBPF helper.', [[{}, src?.helperRestartsTotal ?? 0]]);
  family(out, 'rarecon_connections_scored_total', 'counter', 'Connections scored.', [[{}, s.score.connectionsTotal]]);
  family(out, 'rarecon_dns_answers_total', 'counter', 'DNS answers seen.', [[{}, s.score.dnsAnswersTotal]]);
  family(
    out,
    'rarecon_valve_paused_connections_total',
    'counter',
    'Connections of a host the safety valve paused: counted only, not enriched or scored.',
    [[{}, (s.counters['valveCountedTotal'] ?? 0) + s.score.pausedTotal]],
  );
  family(out, 'rarecon_ineligible_total', 'counter', 'Connections not eligible, by reason.', byKey(s.score.ineligibleByReason, 'reason'));
  family(
    out,
    'rarecon_excluded_total',
    'counter',
    'Eligible connections excluded by the operator, by kind.',
    byKey(s.score.excludedByKind, 'kind'),
  );
  family(
    out,
    'rarecon_alerts_total',
    'counter',
    'Alerts raised, by variation (health: the safety valve paused a host).',
    alertsByVariation(s.score.alertsByName),
  );
  family(out, 'rarecon_enrich_errors_total', 'counter', 'Enrichment errors, by enricher and code.', byKey(s.enrich.errorsByCode, 'code'));
  const outbox = s.report.outbox;
  family(out, 'rarecon_outbox_depth', 'gauge', 'Alerts waiting in the outbox.', [[{}, outbox.rows]]);
  family(out, 'rarecon_outbox_oldest_age_seconds', 'gauge', 'Age of the oldest alert waiting.', [[{}, (outbox.oldestAgeMs ?? 0) / 1000]]);
  // The outbox counts each alert a sink failed to take: sent again later (retried) or given up (dead-lettered).
  const sinks = Object.entries(outbox.sinks).map(([sink, q]): Sample => [{ sink }, q.retriedTotal + q.deadLetteredTotal]);
  family(out, 'rarecon_sink_failures_total', 'counter', 'Failed or retried sends, by sink.', sinks);
  family(out, 'rarecon_baseline_version', 'gauge', 'Version of the baseline in force (0 = none).', [[{}, s.baseline?.version ?? 0]]);
  family(out, 'rarecon_baseline_age_seconds', 'gauge', 'Age of the baseline in force.', [
    [{}, s.baseline === null ? 0 : (nowMs - s.baseline.builtAtMs) / 1000],
  ]);
  family(out, 'rarecon_baseline_stale', 'gauge', 'The server promised a newer baseline by now and none has arrived (1), or not (0).', [
    [{}, s.sync?.stale === true ? 1 : 0],
  ]);
  family(out, 'rarecon_learning_remaining_seconds', 'gauge', 'Time until the detector is active on this host (0 = active).', [
    [{}, s.learningDaysLeft * 86_400],
  ]);
  const w = s.watchdog;
  if (w !== undefined) {
    family(
      out,
      'rarecon_watchdog_shed_total',
      'counter',
      'Work the watchdog skipped to stay within budget, by reason (lowest value first).',
      byKey(w.shedByReason, 'reason'),
    );
    family(out, 'rarecon_watchdog_level', 'gauge', 'Shedding level: 0 none, 1 optional work, 2 also sampling connections.', [
      [{}, w.level],
    ]);
    family(out, 'rarecon_watchdog_cpu_ratio', 'gauge', 'CPU of the daemon and its helper over the last sample, as a ratio of one core.', [
      [{}, w.cpuPercent / 100],
    ]);
    family(out, 'rarecon_watchdog_budget_cpu_ratio', 'gauge', 'CPU budget, as a ratio of one core.', [[{}, w.budget.cpuPercent / 100]]);
    family(
      out,
      'rarecon_watchdog_memory_in_use_bytes',
      'gauge',
      'Memory in use (V8 heap in use, external buffers, the helper RSS), checked against the budget.',
      [[{}, w.liveBytes]],
    );
    family(out, 'rarecon_watchdog_budget_memory_bytes', 'gauge', 'Memory in use budget.', [[{}, w.budget.memoryBytes]]);
  }
  const sd = s.stateDir;
  if (sd !== undefined) {
    family(out, 'rarecon_state_disk_full', 'gauge', '1 while the state folder is full (the last write failed for lack of space).', [
      [{}, sd.diskFull ? 1 : 0],
    ]);
    family(
      out,
      'rarecon_state_write_failures_total',
      'counter',
      'Failed writes to the state folder, by store.',
      byKey(sd.writeFailuresTotal, 'store'),
    );
    family(out, 'rarecon_state_held_items', 'gauge', 'Alerts and sightings held in memory until the state folder takes them.', [
      [{ kind: 'alerts' }, sd.heldAlerts],
      [{ kind: 'sightings' }, sd.heldSightings],
    ]);
    family(out, 'rarecon_state_held_dropped_total', 'counter', 'Held items dropped at their memory bound, by kind.', [
      [{ kind: 'alerts' }, sd.alertsLostTotal ?? 0],
      [{ kind: 'sightings' }, sd.sightingsLostTotal],
    ]);
  }
  const caches = Object.entries(s.caches ?? {});
  family(
    out,
    'rarecon_cache_hits_total',
    'counter',
    'Cache hits, by cache.',
    caches.map(([k, c]): Sample => [{ cache: k }, c.hitsTotal]),
  );
  family(
    out,
    'rarecon_cache_misses_total',
    'counter',
    'Cache misses, by cache.',
    caches.map(([k, c]): Sample => [{ cache: k }, c.missesTotal]),
  );
  processFamilies(
    out,
    proc ?? {
      cpuSeconds: (s.cpu.user + s.cpu.system) / 1e6,
      residentBytes: s.rssBytes,
      virtualBytes: null,
      startTimeSeconds: s.startedMs / 1000,
      openFds: null,
      maxFds: null,
    },
  );
  return out.join('\n') + '\n';
}

/** Serves /metrics and /healthz; healthy while the status is fresh and the source runs. */
export function serveMetrics(host: string, port: number, status: () => DaemonStatus): Promise<Server> {
  const server = createServer((req, res) => {
    const s = status();
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metricsText(s, Date.now(), readProcessMetrics()));
    } else if (req.url === '/healthz') {
      const ok = s.source !== null;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok, source: s.source?.name ?? null, baselineVersion: s.baseline?.version ?? null }));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
