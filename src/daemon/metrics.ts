// Prometheus text exposition and a health check on 127.0.0.1, from the same
// status the daemon writes for `rarecon status`.
import { createServer, type Server } from 'node:http';
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

export function metricsText(s: DaemonStatus, nowMs = Date.now()): string {
  const out: string[] = [];
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
  family(out, 'rarecon_ineligible_total', 'counter', 'Connections not eligible, by reason.', byKey(s.score.ineligibleByReason, 'reason'));
  family(
    out,
    'rarecon_excluded_total',
    'counter',
    'Eligible connections excluded by the operator, by kind.',
    byKey(s.score.excludedByKind, 'kind'),
  );
  family(out, 'rarecon_alerts_total', 'counter', 'Alerts raised, by name.', byKey(s.score.alertsByName, 'name'));
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
  family(out, 'rarecon_learning_days_left', 'gauge', 'Days until the detector is active on this host.', [[{}, s.learningDaysLeft]]);
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
    family(out, 'rarecon_watchdog_cpu_percent', 'gauge', 'CPU of the daemon and its helper over the last sample, percent of one core.', [
      [{}, w.cpuPercent],
    ]);
    family(out, 'rarecon_watchdog_budget_cpu_percent', 'gauge', 'CPU budget, percent of one core.', [[{}, w.budget.cpuPercent]]);
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
  family(out, 'rarecon_resident_memory_bytes', 'gauge', 'Resident memory of the daemon.', [[{}, s.rssBytes]]);
  family(out, 'rarecon_cpu_seconds_total', 'counter', 'CPU time of the daemon.', [[{}, (s.cpu.user + s.cpu.system) / 1e6]]);
  return out.join('\n') + '\n';
}

/** Serves /metrics and /healthz; healthy while the status is fresh and the source runs. */
export function serveMetrics(host: string, port: number, status: () => DaemonStatus): Promise<Server> {
  const server = createServer((req, res) => {
    const s = status();
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metricsText(s));
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
