// The detector: pure, no I/O (DETECTION.md sections 2, 4, 5). Given one
// connection, the name behind it and its root domain (as the enrich stage set
// them on the event), the baseline and the host's enrolment time, it says
// whether and how the event alerts.
import type { BaselineMeta, BaselineReader, TierThresholds } from '../model/baseline.js';
import { DAY_MS } from '../model/baseline.js';
import type { ConnectionEvent } from '../model/records.js';
import { isHostname, rootDomainUnder, type ConnectionName } from '../model/connection-name.js';
import type { ScannedLines, ScannedTable } from '../model/scanned.js';
import type { Tier, Variation, VariationId } from '../model/alert.js';
import { VARIATIONS } from '../model/alert.js';
import type { DetectConfig } from '../config/defaults.js';
import { makeRootDomainResolver, type RootDomainResult } from '../model/root-domain.js';
import { makeAddressClassifier, type AddressClass, type AddressClassifier } from '../model/address.js';
import { compileExclusions, type CompiledExclusions, type ExclusionKind } from './exclusions.js';
import { ADDRESS_CLASSES, IdCaches, NO_ROOT_REASONS } from './id-caches.js';

export type IneligibleReason =
  | 'inbound'
  | 'internal-address'
  | 'configured-internal-address'
  | 'invalid-address'
  | 'no-hostname'
  | 'reverse-dns-name'
  | 'ip-literal-hostname'
  | 'single-label-hostname'
  | 'internal-hostname'
  | 'invalid-hostname'
  | 'no-root-domain'
  | 'no-sha256'
  | 'process-not-common';

export type Verdict =
  | { kind: 'ineligible'; reason: IneligibleReason }
  | { kind: 'learning'; reason: 'host-learning' | 'baseline-too-short'; daysLeft: number }
  | { kind: 'excluded'; by: ExclusionKind }
  | { kind: 'common'; hostname: string; rootDomain: string; comboObservers: number }
  | { kind: 'alert'; finding: Finding };

export interface Finding {
  hostname: string;
  rootDomain: string;
  tier: Exclude<Tier, 'common'>;
  processObservers: number;
  comboObservers: number;
  /** Highest first. */
  variations: Variation[];
  thresholds: TierThresholds;
}

export interface Detector {
  /** The verdict on a connection named by the enrich stage (`name`: its e.name); the root domain is the name's own when worked out under the baseline's policy. */
  judge(e: ConnectionEvent, name: ConnectionName, b: BaselineReader, enrolledAtMs: number, nowMs: number): Verdict;
  /** judge() for a caller that has only a hostname (null, empty or `-` for none): its root domain is worked out here. */
  evaluate(e: ConnectionEvent, hostname: string | null, b: BaselineReader, enrolledAtMs: number, nowMs: number): Verdict;
  /**
   * judge() for line i of scanned lines, when its verdict is ineligible
   * (the reason) or common; null when it takes more than the scanned fields
   * (an alert, a name from DNS, learning, exclusions): judge the named record then.
   */
  quick(s: ScannedLines, i: number, b: BaselineReader, enrolledAtMs: number, nowMs: number): IneligibleReason | 'common' | null;
}

type IneligibleVerdict = Extract<Verdict, { kind: 'ineligible' }>;
const ineligibleVerdicts = new Map<IneligibleReason, IneligibleVerdict>();

/** One frozen verdict per reason: most events are ineligible or common, so this spares an object each. */
function ineligible(reason: IneligibleReason): IneligibleVerdict {
  let v = ineligibleVerdicts.get(reason);
  if (v === undefined) ineligibleVerdicts.set(reason, (v = Object.freeze({ kind: 'ineligible' as const, reason })));
  return v;
}

export function effectiveThresholds(meta: BaselineMeta, overrides: Partial<TierThresholds>): TierThresholds {
  return { ...meta.thresholds, ...overrides };
}

export function tierOf(comboObservers: number, t: TierThresholds): Tier {
  if (comboObservers >= t.uncommonBelowObservers) return 'common';
  if (comboObservers <= t.veryRareMaxObservers) return 'very-rare';
  if (comboObservers <= t.rareMaxObservers) return 'rare';
  return 'uncommon';
}

export function isKnownVendorSigner(signer: ConnectionEvent['process']['signer'], knownVendorsLower: readonly string[]): boolean {
  if (signer.status !== 'valid') return false;
  const vendor = signer.vendor?.toLowerCase() ?? '';
  const subject = signer.subject?.toLowerCase() ?? '';
  // Whole-word containment: "Microsoft Windows" is Microsoft, "HPE-ish" is not HP.
  return knownVendorsLower.some((v) => containsWord(vendor, v) || containsWord(subject, v));
}

function containsWord(text: string, word: string): boolean {
  if (word === '' || text === '') return false;
  let i = text.indexOf(word);
  while (i >= 0) {
    const before = i === 0 ? ' ' : text[i - 1]!;
    const after = i + word.length >= text.length ? ' ' : text[i + word.length]!;
    if (!/[a-z0-9]/.test(before) && !/[a-z0-9]/.test(after)) return true;
    i = text.indexOf(word, i + 1);
  }
  return false;
}

function variationsFor(e: ConnectionEvent, tier: Tier, knownVendor: boolean): Variation[] {
  const held = new Set<VariationId>(['uncommon']);
  if (e.process.injection.injected) held.add('injected-thread');
  if (tier === 'very-rare') held.add('very-rare');
  if (tier === 'very-rare' || tier === 'rare') held.add('rare');
  if (knownVendor) held.add('known-vendor');
  return VARIATIONS.filter((v) => held.has(v.id));
}

function rootDomainIneligible(reason: Extract<RootDomainResult, { ok: false }>['reason']): IneligibleReason {
  switch (reason) {
    case 'ip-literal':
      return 'ip-literal-hostname';
    case 'single-label':
      return 'single-label-hostname';
    case 'internal-name':
      return 'internal-hostname';
    case 'no-registrable-domain':
      return 'no-root-domain';
    default:
      return 'invalid-hostname';
  }
}

const ADDRESS_INELIGIBLE: Record<AddressClass, IneligibleReason | null> = {
  external: null,
  internal: 'internal-address',
  'configured-internal': 'configured-internal-address',
  invalid: 'invalid-address',
};

export function makeDetector(config: DetectConfig): Detector {
  const reverseDnsNames = config.reverseDnsNames;
  const classifier: AddressClassifier = makeAddressClassifier(config.internalNetworks);
  const exclusions: CompiledExclusions = compileExclusions(config.exclusions);
  const knownVendorsLower = config.knownVendors.map((v) => v.toLowerCase().trim()).filter((v) => v !== '');
  const activationMs = config.activationDays * DAY_MS;
  const minBaselineMs = config.minBaselineDays * DAY_MS;
  const rootDomainOf = makeRootDomainResolver(config.internalDomains);
  // What judge() would work out per id of scanned lines, kept per table and baseline.
  let ids: IdCaches | null = null;
  const idsFor = (table: ScannedTable, b: BaselineReader, meta: BaselineMeta): IdCaches => {
    if (ids === null || !ids.isFor(table, b, meta)) ids = new IdCaches(table, b, meta);
    return ids;
  };
  // Thresholds change only with the baseline: one shared (frozen) object per meta.
  let cached: { meta: BaselineMeta; thresholds: TierThresholds } | null = null;
  const thresholdsFor = (meta: BaselineMeta): TierThresholds => {
    if (cached === null || cached.meta !== meta) cached = { meta, thresholds: Object.freeze(effectiveThresholds(meta, config.thresholds)) };
    return cached.thresholds;
  };

  /** Eligibility by direction and address: the first steps, which need no name. */
  const addressIneligible = (e: ConnectionEvent): IneligibleVerdict | null => {
    if (e.direction !== 'outbound') return ineligible('inbound');
    const cls = classifier.classify(e.remote.ip);
    if (cls === 'internal') return ineligible('internal-address');
    if (cls === 'configured-internal') return ineligible('configured-internal-address');
    if (cls === 'invalid') return ineligible('invalid-address');
    return null;
  };

  /** The steps after the name, from its root domain on. */
  const byRootDomain = (
    e: ConnectionEvent,
    rd: RootDomainResult,
    b: BaselineReader,
    meta: BaselineMeta,
    enrolledAtMs: number,
    nowMs: number,
  ): Verdict => {
    if (!rd.ok) return ineligible(rootDomainIneligible(rd.reason));

    const sha = e.process.sha256;
    if (sha === null) return ineligible('no-sha256');
    const thresholds = thresholdsFor(meta);
    const processObservers = b.process(sha) ?? 0;
    if (processObservers < thresholds.commonProcessMinObservers) return ineligible('process-not-common');

    const learnedMs = nowMs - enrolledAtMs;
    if (learnedMs < activationMs) {
      return { kind: 'learning', reason: 'host-learning', daysLeft: Math.ceil((activationMs - learnedMs) / DAY_MS) };
    }
    const coveredMs = meta.windowEndMs - meta.windowStartMs;
    if (coveredMs < minBaselineMs) {
      return { kind: 'learning', reason: 'baseline-too-short', daysLeft: Math.ceil((minBaselineMs - coveredMs) / DAY_MS) };
    }

    const excludedBy = exclusions.match(e, rd.hostname, rd.rootDomain);
    if (excludedBy !== null) return { kind: 'excluded', by: excludedBy };

    const comboObservers = b.combo(sha, rd.rootDomain, e.remote.port);
    const tier = tierOf(comboObservers, thresholds);
    if (tier === 'common') return { kind: 'common', hostname: rd.hostname, rootDomain: rd.rootDomain, comboObservers };
    return {
      kind: 'alert',
      finding: {
        hostname: rd.hostname,
        rootDomain: rd.rootDomain,
        tier,
        processObservers,
        comboObservers,
        variations: variationsFor(e, tier, isKnownVendorSigner(e.process.signer, knownVendorsLower)),
        thresholds,
      },
    };
  };

  return {
    judge(e, name, b, enrolledAtMs, nowMs): Verdict {
      const early = addressIneligible(e);
      if (early !== null) return early;
      const meta = b.meta();
      const rd = rootDomainUnder(name, meta.policy, rootDomainOf);
      if (rd === null) return ineligible('no-hostname');
      // The enrich stage names a connection by its own hostname when it has one: then that PTR name.
      if (e.remote.reverseDns === true && !reverseDnsNames) return ineligible('reverse-dns-name');
      return byRootDomain(e, rd, b, meta, enrolledAtMs, nowMs);
    },

    evaluate(e, hostname, b, enrolledAtMs, nowMs): Verdict {
      const early = addressIneligible(e);
      if (early !== null) return early;
      if (!isHostname(hostname)) return ineligible('no-hostname');
      if (e.remote.reverseDns === true && !reverseDnsNames) return ineligible('reverse-dns-name');
      const meta = b.meta();
      return byRootDomain(e, rootDomainOf(hostname, meta.policy), b, meta, enrolledAtMs, nowMs);
    },

    // The steps of judge(), in its order, from ids; each answer per id is kept.
    quick(s, i, b, enrolledAtMs, nowMs) {
      if (s.inbound(i)) return 'inbound';
      const meta = b.meta();
      const c = idsFor(s.table, b, meta);
      const cls = c.addressClass(s.ip(i), classifier);
      if (cls !== 0) return ADDRESS_INELIGIBLE[ADDRESS_CLASSES[cls]!];
      const nameId = s.name(i);
      const hostname = nameId < 0 ? null : s.table.hostname(nameId);
      // The name from DNS answers: the record path, named by the enrich stage.
      if (!isHostname(hostname)) return null;
      const rootId = c.rootDomain(nameId, hostname, rootDomainOf.uncached);
      if (rootId < 0) return rootDomainIneligible(NO_ROOT_REASONS[-rootId - 1]!);
      const shaId = s.sha(i);
      if (shaId < 0) return 'no-sha256';
      const thresholds = thresholdsFor(meta);
      const scored = nowMs - enrolledAtMs >= activationMs && meta.windowEndMs - meta.windowStartMs >= minBaselineMs && exclusions.empty;
      if (scored && !c.processKnown(shaId)) {
        // A sha256 not looked up yet: ask for the combo first. Every observer of a combo ran its sha256, so
        // the process has at least the combo's observers; a combo that common settles the event with one
        // baseline read instead of two (the verdict is the same whatever the process read would say).
        const combo = c.comboObservers(shaId, rootId, s.port(i));
        if (combo >= thresholds.commonProcessMinObservers && combo >= thresholds.uncommonBelowObservers) return 'common';
      }
      if (c.processObservers(shaId) < thresholds.commonProcessMinObservers) return 'process-not-common';
      if (!scored) return null;
      const comboObservers = c.comboObservers(shaId, rootId, s.port(i));
      return comboObservers >= thresholds.uncommonBelowObservers ? 'common' : null; // tierOf()'s 'common'
    },
  };
}
