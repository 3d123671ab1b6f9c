// `rarecon baseline build --unit org|host|day [--window-days 30] --out FILE INPUT...`
// Learns a prevalence baseline from event logs with the same readers and the
// same sighting rules the endpoint uses.
import type { Writable } from 'node:stream';
import { BaselineBuilder, LAST_BASELINE_DAY_MS } from '../baseline/builder.js';
import { DEFAULT_THRESHOLDS } from '../config/defaults.js';
import { SightingExtractor } from '../detect/sightings.js';
import { ConnectionNames } from '../enrich/connection-names.js';
import { DAY_MS, type ObserverUnit, type TierThresholds } from '../model/baseline.js';
import { observerId } from '../model/observer.js';
import type { RecordError } from '../model/records.js';
import { DEFAULT_POLICY } from '../model/root-domain.js';
import { NEEDS_RECORD, ScannedSightings } from '../detect/scanned-sightings.js';
import { isScannedLine, isUnrecognised, readLogFiles, type FileStats, type ScannedLine } from '../sources/replay/log-reader.js';
import { sysmonOptionsOf } from '../sources/replay/sysmon-reader.js';
import { checkInputs, chooseReader, configOf, formatCounts, Progress, UsageError } from './io.js';
import { unrecognisedMessage } from './unrecognised-inputs.js';
import { parseCommand } from './command-spec.js';
import { BASELINE_BUILD } from './commands.js';

function intOption(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} takes a whole number >= ${min}, not "${raw}"`);
  return v;
}

/** Bad lines shown on stderr, as in `rarecon score`; the rest are counted in the summary. */
const MAX_ERROR_LINES = 50;

export async function baselineBuildCommand(argv: string[], out: Writable, err: NodeJS.WriteStream | Writable): Promise<number> {
  const parsed = parseCommand(BASELINE_BUILD, argv, out);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const unit = values.unit;
  if (unit !== 'org' && unit !== 'host' && unit !== 'day') throw new UsageError('--unit must be org, host or day');
  if (values.out === undefined) throw new UsageError('--out FILE is required');
  const detect = (await configOf(values.config)).detect;
  const windowDays = intOption('window-days', values['window-days'], detect.trainingDays, 1);
  const thresholds: TierThresholds = {
    uncommonBelowObservers: intOption('uncommon-below', values['uncommon-below'], DEFAULT_THRESHOLDS.uncommonBelowObservers, 1),
    rareMaxObservers: intOption('rare-max', values['rare-max'], DEFAULT_THRESHOLDS.rareMaxObservers, 0),
    veryRareMaxObservers: intOption('very-rare-max', values['very-rare-max'], DEFAULT_THRESHOLDS.veryRareMaxObservers, 0),
    commonProcessMinObservers: intOption(
      'common-process-min',
      values['common-process-min'],
      DEFAULT_THRESHOLDS.commonProcessMinObservers,
      1,
    ),
  };
  if (values['omit-single-observer'] && thresholds.veryRareMaxObservers < 1) {
    throw new UsageError('--omit-single-observer needs --very-rare-max 1 or more (otherwise 0 and 1 observers are different tiers)');
  }
  const builtAtMs = Date.now();
  const version = intOption('version', values.version, builtAtMs, 1);
  const totalBytes = checkInputs(positionals);
  const policy = { ...DEFAULT_POLICY, allowPrivateDomains: !values['no-private-domains'] };

  const builder = new BaselineBuilder({
    unit: unit as ObserverUnit,
    windowDays,
    thresholds,
    policy,
    omitSingleObserverCombos: values['omit-single-observer'],
    // A fleet's own build: each host's first day is its enrolment when `score` reads this file.
    recordHostHistory: unit === 'host',
  });
  const extractor = new SightingExtractor(unit as ObserverUnit, policy, detect);
  // DNS answers name the connections read after them, root domains under the rules of this build.
  const names = new ConnectionNames(detect, policy);
  const errorsByCode: Record<string, number> = {};
  let records = 0;
  let sightings = 0;
  let errorsTotal = 0;
  const progress = new Progress(err, positionals.length, totalBytes);
  const report = (e: RecordError): void => {
    errorsByCode[e.code] = (errorsByCode[e.code] ?? 0) + 1;
    if (++errorsTotal <= MAX_ERROR_LINES) err.write(`${e.origin.file}:${e.origin.line}: ${e.code}: ${e.message}\n`);
  };
  const logs = readLogFiles(positionals, { sysmon: sysmonOptionsOf(detect) });
  const { scanner, reader } = chooseReader(values['js-reader'] === true);
  // Connections the scanner read go by their ids; one named by a DNS answer, or of a time past the file's days, by its record.
  const fast = new ScannedSightings(unit as ObserverUnit, policy, detect, builder);
  let scannedRecords = 0;
  for await (const { items, scanned, file } of logs.scanBatches(scanner)) {
    // Once a batch (at most five draws a second): a chunk of a Sysmon export may hold no record at all.
    progress.update(file, records, logs.bytesRead);
    for (const entry of items) {
      let item: Exclude<typeof entry, ScannedLine>;
      if (isScannedLine(entry)) {
        const timeMs = scanned!.time(entry);
        if (timeMs < LAST_BASELINE_DAY_MS + DAY_MS) {
          const added = fast.learn(scanned!, entry);
          if (added !== NEEDS_RECORD) {
            records++;
            scannedRecords++;
            sightings += added;
            continue;
          }
        }
        item = scanned!.record(entry);
      } else {
        item = entry;
      }
      if (item.type === 'error') {
        report(item);
        continue;
      }
      if (item.timeMs >= LAST_BASELINE_DAY_MS + DAY_MS) {
        // A real time (the readers take 1970-9999), but past what the file's day numbers reach.
        const last = new Date(LAST_BASELINE_DAY_MS).toISOString().slice(0, 10);
        const message = `time ${new Date(item.timeMs).toISOString()} is after ${last}, the last day a baseline file holds`;
        report({ type: 'error', code: 'bad-value', message, origin: item.origin ?? { file: '', line: 0 } });
        continue;
      }
      records++;
      if (unit === 'host') builder.seeHost(observerId('host', item.host.org, item.host.id, item.timeMs), item.timeMs);
      names.see(item);
      for (const s of extractor.extract(item)) {
        builder.add(s);
        sightings++;
      }
    }
  }
  progress.done();
  if (errorsTotal > MAX_ERROR_LINES) err.write(`... ${errorsTotal - MAX_ERROR_LINES} more errors not shown\n`);
  const read = logs.stats().files;
  const unrecognised = read.filter(isUnrecognised);
  if (unrecognised.length > 0) throw new UsageError(unrecognisedMessage(unrecognised, 'no baseline written'));
  if (sightings === 0)
    throw new UsageError('the inputs hold no sightings (no process runs or connections with a sha256): no baseline written');
  const written = builder.write(values.out, { version, builtAtMs });
  if (!written.ok) throw new UsageError(`cannot write ${values.out}: ${written.error}`);
  const meta = written.meta;
  const n = (x: number): string => x.toLocaleString('en-US');
  const history = meta.hostHistoryCount ?? 0;
  const ptr = extractor.reverseDnsSkippedTotal;
  err.write(
    `rarecon baseline build: ${linesRead(read)}; ${n(records)} records, ${n(sightings)} sightings -> ${values.out}\n` +
      `  version ${meta.version}, unit ${meta.observerUnit}, ${meta.populationSize} observers, window ${new Date(meta.windowStartMs).toISOString().slice(0, 10)} .. ${new Date(meta.windowEndMs).toISOString().slice(0, 10)}\n` +
      `  ${meta.processCount.toLocaleString('en-US')} processes, ${meta.comboCount.toLocaleString('en-US')} combinations${meta.omitsSingleObserverCombos ? ' (single-observer combinations left out)' : ''}\n` +
      (history > 0
        ? `  first day of ${n(history)} host${history === 1 ? '' : 's'} recorded: \`rarecon score\` takes it as their enrolment\n`
        : '') +
      (ptr > 0
        ? `  ${n(ptr)} connections named only by reverse DNS taught no combination (detect.reverseDnsNames: true learns them)\n`
        : '') +
      `  ${written.droppedOutsideWindowTotal.toLocaleString('en-US')} sightings outside the ${windowDays}-day window left out; errors: ${formatCounts(errorsByCode)}\n` +
      `  reader: ${reader}${scannedRecords > 0 ? `, which read ${n(scannedRecords)} of the records` : ''}\n`,
  );
  return 0;
}

/** "1,326 lines read from 1 file (31 records, 387 joined into them, 908 skipped, 0 blank, 0 errors)". */
function linesRead(files: readonly FileStats[]): string {
  const total = (f: (s: FileStats) => number): string => files.reduce((a, s) => a + f(s), 0).toLocaleString('en-US');
  const sumOf = (o: Record<string, number | undefined>): number => Object.values(o).reduce<number>((a, b) => a + (b ?? 0), 0);
  return (
    `${total((f) => f.lines)} lines read from ${files.length} file${files.length === 1 ? '' : 's'} ` +
    `(${total((f) => sumOf(f.records))} records, ${total((f) => sumOf(f.joined))} joined into them, ${total((f) => sumOf(f.skipped))} skipped, ` +
    `${total((f) => f.blankLines)} blank, ${total((f) => sumOf(f.errors))} errors)`
  );
}
