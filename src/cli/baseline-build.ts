// `rarecon baseline build --unit org|host|day [--window-days 30] --out FILE INPUT...`
// Learns a prevalence baseline from event logs with the same readers and the
// same sighting rules the endpoint uses.
import type { Writable } from 'node:stream';
import { BaselineBuilder } from '../baseline/builder.js';
import { loadConfig, formatProblems } from './config-file.js';
import { DEFAULT_THRESHOLDS } from '../config/defaults.js';
import { SightingExtractor } from '../detect/sightings.js';
import { ConnectionNames } from '../enrich/connection-names.js';
import type { ObserverUnit, TierThresholds } from '../model/baseline.js';
import { DEFAULT_POLICY } from '../model/root-domain.js';
import { readLogFiles } from '../sources/replay/log-reader.js';
import { checkInputs, formatCounts, Progress, UsageError } from './io.js';
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
  const cfgResult = loadConfig(values.config ?? null);
  if (!cfgResult.ok) throw new UsageError(`bad config:\n${formatProblems(cfgResult)}`);
  const detect = cfgResult.config.detect;
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
  });
  const extractor = new SightingExtractor(unit as ObserverUnit, policy, detect);
  // DNS answers name the connections read after them, root domains under the rules of this build.
  const names = new ConnectionNames(detect, policy);
  const errorsByCode: Record<string, number> = {};
  let records = 0;
  let sightings = 0;
  let errorsTotal = 0;
  const progress = new Progress(err, positionals.length, totalBytes);
  {
    for await (const item of readLogFiles(positionals)) {
      if (item.type === 'error') {
        errorsByCode[item.code] = (errorsByCode[item.code] ?? 0) + 1;
        if (++errorsTotal <= MAX_ERROR_LINES) err.write(`${item.origin.file}:${item.origin.line}: ${item.code}: ${item.message}\n`);
        continue;
      }
      records++;
      names.see(item);
      for (const s of extractor.extract(item)) {
        builder.add(s);
        sightings++;
      }
      if ((records & 0xfff) === 0) progress.update(item.origin?.file ?? '', records);
    }
  }
  progress.done();
  if (errorsTotal > MAX_ERROR_LINES) err.write(`... ${errorsTotal - MAX_ERROR_LINES} more errors not shown\n`);
  if (sightings === 0)
    throw new UsageError('the inputs hold no sightings (no process runs or connections with a sha256): no baseline written');
  const written = builder.write(values.out, { version, builtAtMs });
  if (!written.ok) throw new UsageError(`cannot write ${values.out}: ${written.error}`);
  const meta = written.meta;
  err.write(
    `rarecon baseline build: ${records.toLocaleString('en-US')} records, ${sightings.toLocaleString('en-US')} sightings -> ${values.out}\n` +
      `  version ${meta.version}, unit ${meta.observerUnit}, ${meta.populationSize} observers, window ${new Date(meta.windowStartMs).toISOString().slice(0, 10)} .. ${new Date(meta.windowEndMs).toISOString().slice(0, 10)}\n` +
      `  ${meta.processCount.toLocaleString('en-US')} processes, ${meta.comboCount.toLocaleString('en-US')} combinations${meta.omitsSingleObserverCombos ? ' (single-observer combinations left out)' : ''}\n` +
      `  ${written.droppedOutsideWindowTotal.toLocaleString('en-US')} sightings outside the ${windowDays}-day window left out; errors: ${formatCounts(errorsByCode)}\n`,
  );
  return 0;
}
