// `rarecon score --baseline FILE [--format ocsf|ecs] [--activation-days N] INPUT...`
// Scores event logs offline. Alerts go to stdout one a line, each once, with its
// final count: when its 24 h dedup window closes in event time, or at the end.
import { writeFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { openBaseline } from '../baseline/store.js';
import { DEFAULT_OFFLINE_MEMORY } from '../config/defaults.js';
import { Scorer, type ScoreCounters, type ScoreOutcome, type HostLearning } from '../detect/scorer.js';
import { StateStore } from '../detect/state-store.js';
import { ConnectionNames } from '../enrich/connection-names.js';
import type { Alert } from '../model/alert.js';
import { toEcs } from '../model/ecs.js';
import { toOcsf } from '../model/ocsf.js';
import type { RecordErrorCode, SourceRecord } from '../model/records.js';
import type { ScannedLines } from '../model/scanned.js';
import { isScannedLine, isUnrecognised, readLogFiles, type FileStats, type ScannedLine } from '../sources/replay/log-reader.js';
import { sysmonOptionsOf } from '../sources/replay/sysmon-reader.js';
import { checkInputs, chooseReader, configOf, formatCounts, Progress, UsageError, writeLine } from './io.js';
import { unrecognisedMessage } from './unrecognised-inputs.js';
import { parseCommand } from './command-spec.js';
import { SCORE } from './commands.js';

/**
 * Node flags `rarecon score` runs with on large inputs. Measured on 1M events
 * against a 10M-combo baseline (30,071 alerts held): a 4 MiB young generation
 * (scanned lines leave little young garbage; 16 MiB cost ~25 MiB more), and an
 * old generation collected once it has grown by half (V8 lets it grow up to 4x
 * between collections), which keeps peak memory ~6 MiB lower and --js-reader
 * runs from reaching 222 MiB, for 3-5% of speed.
 */
export const SCORE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=50'];

/**
 * V8 takes its heap settings only at start-up, so they cost a second process
 * start (half the time of scoring a small file). They pay only on inputs that
 * can grow the heap: from this size on disk.
 */
export const SCORE_NODE_FLAGS_MIN_BYTES = 64 * 1024 * 1024;

/** Whether the user chose the young generation's size (then rarecon does not). */
export function heapFlagsChosen(): boolean {
  return [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--max-semi-space-size'));
}

export interface ScoreCommandOptions {
  /** Runs the same command again with these node flags and gives its exit status (the `rarecon` command's main). */
  rerunWith?: (flags: readonly string[]) => Promise<number>;
}

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
  /** Lines read over all files: each is a record, joined into records, skipped, blank or an error. */
  lines: number;
  records: number;
  /** Sysmon events folded into the records of their process, by event. */
  joinedByReason: Record<string, number>;
  /** Lines that make no record, by channel or event id. */
  skippedByReason: Record<string, number>;
  blankLines: number;
  /** What became of each input's lines. */
  inputs: FileStats[];
  /** Said after the counts: empty inputs, and what would let learning hosts be scored. */
  notes: string[];
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

export async function scoreCommand(
  argv: string[],
  out: Writable,
  err: NodeJS.WriteStream | Writable,
  cmd: ScoreCommandOptions = {},
): Promise<number> {
  const parsed = parseCommand(SCORE, argv, out);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (values.baseline === undefined) throw new UsageError('--baseline FILE is required');
  const format = values.format;
  if (format !== 'ocsf' && format !== 'ecs') throw new UsageError(`--format must be ocsf or ecs, not "${format}"`);
  const maxErrorLines = Number(values['max-error-lines']);
  if (!Number.isInteger(maxErrorLines) || maxErrorLines < 0) throw new UsageError('--max-error-lines takes a whole number');

  const config = await configOf(values.config);
  if (values['activation-days'] !== undefined) {
    const days = Number(values['activation-days']);
    if (!Number.isFinite(days) || days < 0)
      throw new UsageError(`--activation-days takes a number of days >= 0, not "${values['activation-days']}"`);
    config.detect.activationDays = days;
  }
  const totalBytes = checkInputs(positionals);
  if (cmd.rerunWith !== undefined && totalBytes !== null && totalBytes >= SCORE_NODE_FLAGS_MIN_BYTES && !heapFlagsChosen()) {
    return cmd.rerunWith(SCORE_NODE_FLAGS);
  }

  let opened: ReturnType<typeof openBaseline>;
  try {
    // Offline the per-id caches answer most lookups: the recent answers serve the lines that alert (bounded, issue 17).
    opened = openBaseline(values.baseline, { ...config.baselineStore, recentAnswers: DEFAULT_OFFLINE_MEMORY.recentAnswers });
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
  // Without kept state, open alerts are held compactly (detect/compact-dedup.ts): memory does not grow with them.
  const scorer = new Scorer({
    baseline,
    config: config.detect,
    state,
    nowMs: 0,
    alertWrites,
    holding: alertWrites === 'never' ? 'compact' : 'objects',
  });
  // The enrich stage of offline scoring: DNS answers name the connections read after them.
  const names = new ConnectionNames(config.detect, baseline.meta().policy);
  const errorsByCode: Partial<Record<RecordErrorCode, number>> = {};
  let errorsTotal = 0;
  let alertsTotal = 0;
  let records = 0;
  let scannedRecords = 0;
  const progress = new Progress(err, positionals.length, totalBytes);
  const logs = readLogFiles(positionals, { sysmon: sysmonOptionsOf(config.detect) });
  const { scanner, reader } = chooseReader(values['js-reader'] === true);

  let hostsLearning: HostLearning[] = [];
  /** Learning hosts the baseline's history knows (asked before it is closed). */
  const inHistory = new Set<string>();
  try {
    // Each reader batch (up to 256 records) is scored in one baseline read
    // transaction, which ends before the alerts it raised are written out.
    const ready: Alert[] = [];
    for await (const { items, scanned, file } of logs.scanBatches(scanner)) {
      // Once a batch (at most five draws a second): a chunk of a Sysmon export may hold no record at all.
      progress.update(file, records, logs.bytesRead);
      if (items.length === 0) continue;
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
          if ((records & 0x3ff) === 0) for (const a of scorer.takeClosed()) ready.push(a);
        }
      } finally {
        baseline.endBatch();
      }
      alertsTotal += ready.length;
      await emit(ready);
      ready.length = 0;
    }
    for (const rest of scorer.finishInBatches(256)) {
      alertsTotal += rest.length;
      await emit(rest);
    }
    hostsLearning = scorer.learningHosts();
    for (const h of hostsLearning) if (baseline.hostFirstDayMs(h.hostKey) !== undefined) inHistory.add(h.hostKey);
  } finally {
    progress.done();
    scorer.close();
    state.close();
    baseline.close();
  }

  if (errorsTotal > maxErrorLines) err.write(`... ${errorsTotal - maxErrorLines} more errors not shown\n`);
  const read = logs.stats().files;
  const history = { recorded: (baseline.meta().hostHistoryCount ?? 0) > 0, has: (k: string) => inHistory.has(k) };
  const summary: ScoreSummary = {
    files: positionals.length,
    lines: sum(read.map((f) => f.lines)),
    records,
    joinedByReason: mergeCounts(read.map((f) => f.joined)),
    skippedByReason: mergeCounts(read.map((f) => f.skipped)),
    blankLines: sum(read.map((f) => f.blankLines)),
    inputs: read,
    notes: [...inputNotes(read), ...learningNotes(hostsLearning, history, config.detect.activationDays, values)],
    counters: scorer.counters,
    errorsByCode,
    errorsTotal,
    alertsTotal,
    hostsLearning,
    elapsedMs: Date.now() - startMs,
    cpuMs: cpuMsSince(startCpu),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    reader,
    scannedRecords,
  };
  err.write(formatSummary(summary));
  if (values['summary-json'] !== undefined) writeFileSync(values['summary-json'], JSON.stringify(summary, null, 2) + '\n');
  const unrecognised = read.filter(isUnrecognised);
  if (unrecognised.length > 0)
    throw new UsageError(unrecognisedMessage(unrecognised, `nothing in ${unrecognised.length === 1 ? 'it' : 'them'} was scored`));
  return values.strict && errorsTotal > 0 ? 2 : 0;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function mergeCounts(all: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of all) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** An input with no line at all (or blank lines only) is scored as such, with a note. */
function inputNotes(files: readonly FileStats[]): string[] {
  return files
    .filter((f) => f.format === null && f.lines === f.blankLines && (f.errors['read-failed'] ?? 0) === 0)
    .map((f) => `${f.file} is empty${f.lines > 0 ? ` (${f.lines} blank line${f.lines === 1 ? '' : 's'})` : ''}: nothing in it to score`);
}

/** What would let learning hosts be scored: the flag, setting or file, as it applies to this run. */
function learningNotes(
  learning: readonly HostLearning[],
  history: { recorded: boolean; has: (hostKey: string) => boolean },
  activationDays: number,
  values: { config?: string | undefined; state?: string | undefined; 'activation-days'?: string | undefined },
): string[] {
  if (learning.length === 0) return [];
  const ways: string[] = [];
  const unknown = learning.filter((h) => !history.has(h.hostKey)).length;
  if (!history.recorded) {
    ways.push(
      "a baseline built with `rarecon baseline build --unit host` from the fleet's earlier logs (it records each host's first day, which counts as its enrolment; this one records none)",
    );
  } else if (unknown > 0) {
    ways.push(
      `a baseline built from logs that hold ${unknown === learning.length ? 'these hosts' : `the ${n(unknown)} of them its history does not know`} under the same host ids (its history records each host's first day)`,
    );
  } else {
    ways.push(`a baseline built from older logs (its history of these hosts starts less than ${activationDays} days before)`);
  }
  if (values.state === undefined) ways.push('--state DIR, to keep enrolment across runs');
  const source =
    values['activation-days'] !== undefined
      ? 'from the command line'
      : values.config !== undefined
        ? `detect.activationDays in ${values.config}`
        : 'the default';
  ways.push(`--activation-days N (now ${activationDays}, ${source})`);
  return [`hosts still learning are scored once enrolled ${activationDays} days; to score them now: ${ways.join('; or ')}`];
}

function n(x: number): string {
  return x.toLocaleString('en-US');
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

export function formatSummary(s: ScoreSummary): string {
  const c = s.counters;
  const plural = (x: number, one: string, many: string = one + 's'): string => `${n(x)} ${x === 1 ? one : many}`;
  const lines = [
    `rarecon score: ${plural(s.lines, 'line')} read from ${plural(s.files, 'file')} in ${(s.elapsedMs / 1000).toFixed(1)} s: ` +
      `${plural(s.records, 'record')} (${plural(c.connectionsTotal, 'connection')}, ${plural(c.dnsAnswersTotal, 'DNS answer')}, ${plural(c.processRunsTotal, 'process run')}), ` +
      `${n(sum(Object.values(s.joinedByReason)))} joined into them, ${n(sum(Object.values(s.skippedByReason)))} skipped, ${n(s.blankLines)} blank, ${plural(s.errorsTotal, 'error')}`,
  ];
  if (Object.keys(s.joinedByReason).length > 0) lines.push(`  joined into records: ${formatCounts(s.joinedByReason)}`);
  if (Object.keys(s.skippedByReason).length > 0) lines.push(`  skipped: ${formatCounts(s.skippedByReason)}`);
  lines.push(
    `  eligible: ${n(c.eligibleTotal)} (common combination ${n(c.commonCombosTotal)}, excluded: ${formatCounts(c.excludedByKind)})`,
    `  not eligible: ${formatCounts(c.ineligibleByReason)}`,
    `  learning: ${formatCounts(c.learningByReason)}`,
    `  alerts: ${n(s.alertsTotal)} (${formatCounts(c.alertsByName)}); repeats folded into them: ${n(c.repeatsTotal)}` +
      (c.healthAlertsTotal > 0 ? `; detector paused ${c.healthAlertsTotal} times, ${n(c.pausedTotal)} events not scored` : ''),
    `  errors: ${n(s.errorsTotal)} (${formatCounts(s.errorsByCode as Record<string, number>)})`,
    `  reader: ${s.reader}` + (s.scannedRecords > 0 ? `, which read ${n(s.scannedRecords)} of the records` : ''),
    `  resources: ${(s.cpuMs / 1000).toFixed(1)} CPU s, peak resident memory ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  if (s.hostsLearning.length > 0) {
    const shown = s.hostsLearning.slice(0, 10).map((h) => `${h.hostKey} ${h.daysLeft} day${h.daysLeft === 1 ? '' : 's'} left`);
    lines.push(
      `  hosts still learning: ${shown.join(', ')}${s.hostsLearning.length > 10 ? `, and ${s.hostsLearning.length - 10} more` : ''}`,
    );
  }
  for (const note of s.notes) lines.push(`  note: ${note}`);
  return lines.join('\n') + '\n';
}
