// `rarecon score --baseline FILE [--format ocsf|ecs] [--activation-days N] INPUT...`
// Scores event logs offline. Alerts go to stdout one a line, each once, with its
// final count: when its 24 h dedup window closes in event time, or at the end.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { openBaseline } from '../baseline/store.js';
import { loadConfig, formatProblems } from './config-file.js';
import type { RareconConfig } from '../config/defaults.js';
import { Scorer, type ScoreCounters, type ScoreOutcome, type HostLearning } from '../detect/scorer.js';
import { StateStore } from '../detect/state-store.js';
import { ConnectionNames } from '../enrich/connection-names.js';
import type { Alert } from '../model/alert.js';
import { toEcs } from '../model/ecs.js';
import { toOcsf } from '../model/ocsf.js';
import type { RecordErrorCode, SourceRecord } from '../model/records.js';
import type { ScannedLines } from '../model/scanned.js';
import { isScannedLine, readLogFiles, type ScannedLine } from '../sources/replay/log-reader.js';
import { loadLineScanner } from '../sources/replay/fast/native-scan.js';
import { sysmonOptionsOf } from '../sources/replay/sysmon-reader.js';
import { checkInputs, formatCounts, Progress, UsageError, writeLine } from './io.js';

export const SCORE_USAGE = `usage: rarecon score --baseline FILE [--format ocsf|ecs] [--activation-days N]
                     [--config FILE] [--state DIR] [--strict] [--summary-json FILE]
                     [--max-error-lines N] [--js-reader] INPUT...
Scores rarecon NDJSON or Sysmon JSON logs (.gz allowed) and prints one alert a line.
--js-reader parses every line in JavaScript, without the native line scanner.`;

/**
 * Node flags `rarecon score` runs with. Measured on 1M events against a 10M-combo
 * baseline (30,071 alerts held): a 4 MiB young generation (scanned lines leave
 * little young garbage; 16 MiB cost ~25 MiB more), and an old generation
 * collected once it has grown by half (V8 lets it grow up to 4x between
 * collections), which keeps peak memory ~6 MiB lower and --js-reader runs from
 * reaching 222 MiB, for 3-5% of speed.
 */
export const SCORE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=50'];

/**
 * A connection the native scanner read, through the enrich and detect stages:
 * settled from its ids when they are enough, else read as a record, named and scored.
 */
export function scoreScannedLine(scorer: Scorer, names: ConnectionNames, scanned: ScannedLines, line: ScannedLine): ScoreOutcome {
  const quick = scorer.handleScanned(scanned, line);
  if (quick !== null) return quick;
  const rec = scanned.record(line);
  names.name(rec);
  return scorer.handle(rec);
}

/** A record through the enrich stage (a DNS answer feeds the names, a connection is named) and the scorer. */
export function scoreRecord(scorer: Scorer, names: ConnectionNames, rec: SourceRecord): ScoreOutcome {
  names.see(rec);
  return scorer.handle(rec);
}

export interface ScoreSummary {
  files: number;
  records: number;
  counters: ScoreCounters;
  errorsByCode: Partial<Record<RecordErrorCode, number>>;
  errorsTotal: number;
  alertsTotal: number;
  hostsLearning: HostLearning[];
  elapsedMs: number;
  /** How lines were read: the native line scanner, or JavaScript and why. */
  reader: string;
  /** Connections the native line scanner read (the rest of the records were parsed in JavaScript). */
  scannedRecords: number;
  /** CPU time of this process, user and system. */
  cpuMs: number;
  /** Peak resident memory of this process (the one `rarecon score` re-executes with SCORE_NODE_FLAGS). */
  peakRssBytes: number;
}

export async function scoreCommand(argv: string[], out: Writable, err: NodeJS.WriteStream | Writable): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      baseline: { type: 'string' },
      format: { type: 'string', default: 'ocsf' },
      'activation-days': { type: 'string' },
      config: { type: 'string' },
      state: { type: 'string' },
      strict: { type: 'boolean', default: false },
      'summary-json': { type: 'string' },
      'max-error-lines': { type: 'string', default: '50' },
      'js-reader': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    err.write(SCORE_USAGE + '\n');
    return 0;
  }
  if (values.baseline === undefined) throw new UsageError('--baseline FILE is required');
  const format = values.format;
  if (format !== 'ocsf' && format !== 'ecs') throw new UsageError(`--format must be ocsf or ecs, not "${format}"`);
  const maxErrorLines = Number(values['max-error-lines']);
  if (!Number.isInteger(maxErrorLines) || maxErrorLines < 0) throw new UsageError('--max-error-lines takes a whole number');

  const cfgResult = loadConfig(values.config ?? null);
  if (!cfgResult.ok) throw new UsageError(`bad config:\n${formatProblems(cfgResult)}`);
  const config: RareconConfig = cfgResult.config;
  if (values['activation-days'] !== undefined) {
    const days = Number(values['activation-days']);
    if (!Number.isFinite(days) || days < 0)
      throw new UsageError(`--activation-days takes a number of days >= 0, not "${values['activation-days']}"`);
    config.detect.activationDays = days;
  }
  const totalBytes = checkInputs(positionals);

  let opened: ReturnType<typeof openBaseline>;
  try {
    opened = openBaseline(values.baseline, config.baselineStore);
  } catch (e) {
    // openBaseline throws only for store settings it cannot use (e.g. baselineStore.lookupCacheEntries: 0).
    if (e instanceof RangeError) throw new UsageError(`bad config: ${e.message}`);
    throw e;
  }
  if (!opened.ok) throw new UsageError(opened.error);
  const baseline = opened.baseline;
  const state = StateStore.open(values.state ?? null);
  const startMs = Date.now();
  const startCpu = process.cpuUsage();
  const render = format === 'ecs' ? toEcs : toOcsf;
  // Alerts are written 256 lines a write: one write each cost more than rendering them.
  const emit = async (alerts: readonly Alert[]): Promise<void> => {
    for (let i = 0; i < alerts.length; i += 256) {
      await writeLine(
        out,
        alerts
          .slice(i, i + 256)
          .map((a) => JSON.stringify(render(a)))
          .join('\n'),
      );
    }
  };

  // Offline, a crashed run is simply run again: alerts reach a kept state with the flush, an in-memory one never.
  const alertWrites = values.state === undefined ? 'never' : 'flush';
  const scorer = new Scorer({ baseline, config: config.detect, state, nowMs: 0, alertWrites });
  // The enrich stage of offline scoring: DNS answers name the connections read after them.
  const names = new ConnectionNames(config.detect, baseline.meta().policy);
  const errorsByCode: Partial<Record<RecordErrorCode, number>> = {};
  let errorsTotal = 0;
  let alertsTotal = 0;
  let records = 0;
  let scannedRecords = 0;
  const progress = new Progress(err, positionals.length, totalBytes);
  const loaded = values['js-reader'] ? null : loadLineScanner();
  const scanner = loaded?.ok === true ? loaded.scanner : null;
  const reader =
    loaded === null
      ? 'JavaScript (--js-reader)'
      : loaded.ok
        ? 'native line scanner'
        : `JavaScript (native line scanner not loaded: ${loaded.reason})`;

  try {
    // Each reader batch (up to 256 records) is scored in one baseline read
    // transaction, which ends before the alerts it raised are written out.
    const ready: Alert[] = [];
    for await (const { items, scanned, file } of readLogFiles(positionals, { sysmon: sysmonOptionsOf(config.detect) }).scanBatches(
      scanner,
    )) {
      baseline.beginBatch();
      try {
        for (let i = 0; i < items.length; i++) {
          const item = items[i]!;
          let outcome: ScoreOutcome;
          if (isScannedLine(item)) {
            outcome = scoreScannedLine(scorer, names, scanned!, item);
            scannedRecords++;
          } else if (item.type === 'error') {
            errorsTotal++;
            errorsByCode[item.code] = (errorsByCode[item.code] ?? 0) + 1;
            if (errorsTotal <= maxErrorLines) err.write(`${item.origin.file}:${item.origin.line}: ${item.code}: ${item.message}\n`);
            continue;
          } else {
            outcome = scoreRecord(scorer, names, item);
          }
          records++;
          if (outcome.kind === 'health') ready.push(outcome.alert);
          if ((records & 0x3ff) === 0) {
            for (const a of scorer.takeClosed()) ready.push(a);
            progress.update(file, records);
          }
        }
      } finally {
        baseline.endBatch();
      }
      alertsTotal += ready.length;
      await emit(ready);
      ready.length = 0;
    }
    const rest = scorer.finish();
    alertsTotal += rest.length;
    await emit(rest);
  } finally {
    progress.done();
    state.close();
    baseline.close();
  }

  if (errorsTotal > maxErrorLines) err.write(`... ${errorsTotal - maxErrorLines} more errors not shown\n`);
  const summary: ScoreSummary = {
    files: positionals.length,
    records,
    counters: scorer.counters,
    errorsByCode,
    errorsTotal,
    alertsTotal,
    hostsLearning: scorer.learningHosts(),
    elapsedMs: Date.now() - startMs,
    cpuMs: cpuMsSince(startCpu),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    reader,
    scannedRecords,
  };
  err.write(formatSummary(summary));
  if (values['summary-json'] !== undefined) writeFileSync(values['summary-json'], JSON.stringify(summary, null, 2) + '\n');
  return values.strict && errorsTotal > 0 ? 2 : 0;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

export function formatSummary(s: ScoreSummary): string {
  const c = s.counters;
  const n = (x: number): string => x.toLocaleString('en-US');
  const lines = [
    `rarecon score: ${n(s.records)} records read from ${s.files} file${s.files === 1 ? '' : 's'} in ${(s.elapsedMs / 1000).toFixed(1)} s ` +
      `(${n(c.connectionsTotal)} connections, ${n(c.dnsAnswersTotal)} DNS answers, ${n(c.processRunsTotal)} process runs)`,
    `  eligible: ${n(c.eligibleTotal)} (common combination ${n(c.commonCombosTotal)}, excluded: ${formatCounts(c.excludedByKind)})`,
    `  not eligible: ${formatCounts(c.ineligibleByReason)}`,
    `  learning: ${formatCounts(c.learningByReason)}`,
    `  alerts: ${n(s.alertsTotal)} (${formatCounts(c.alertsByName)}); repeats folded into them: ${n(c.repeatsTotal)}` +
      (c.healthAlertsTotal > 0 ? `; detector paused ${c.healthAlertsTotal} times, ${n(c.pausedTotal)} events not scored` : ''),
    `  errors: ${n(s.errorsTotal)} (${formatCounts(s.errorsByCode as Record<string, number>)})`,
    `  reader: ${s.reader}` + (s.scannedRecords > 0 ? `, which read ${n(s.scannedRecords)} of the records` : ''),
    `  resources: ${(s.cpuMs / 1000).toFixed(1)} CPU s, peak resident memory ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
  ];
  if (s.hostsLearning.length > 0) {
    const shown = s.hostsLearning.slice(0, 10).map((h) => `${h.hostKey} ${h.daysLeft} day${h.daysLeft === 1 ? '' : 's'} left`);
    lines.push(
      `  hosts still learning: ${shown.join(', ')}${s.hostsLearning.length > 10 ? `, and ${s.hostsLearning.length - 10} more` : ''}`,
    );
  }
  return lines.join('\n') + '\n';
}
