// The sightings rules (sightings.ts) for a connection the native line scanner
// read, from its ids: what the rules make of an id (address class, root domain,
// observer) is worked out once per id of the scanner's epoch, not once a line.
// A connection named only by a DNS answer needs the enrich stage: its record
// goes the record way.
import type { BaselineBuilder } from '../baseline/builder.js';
import { DAY_MS, type ObserverUnit, type RootDomainPolicy } from '../model/baseline.js';
import { observerId } from '../model/observer.js';
import type { ScannedLines, ScannedTable } from '../model/scanned.js';
import type { DetectConfig } from '../config/defaults.js';
import { makeRootDomainResolver, type RootDomainResolver } from '../model/root-domain.js';
import { makeAddressClassifier } from '../model/address.js';

/** learn() could not tell from the ids: the line's record is needed (its name comes from a DNS answer). */
export const NEEDS_RECORD = -1;

/** Builder root id of a name id; NO_ROOT for a name that teaches no combination, undefined not worked out. */
const NO_ROOT = -1;

export class ScannedSightings {
  private readonly classify;
  /** Uncached: each answer is kept per name id here. */
  private readonly resolve: RootDomainResolver;
  private table: ScannedTable | null = null;
  private external: (boolean | undefined)[] = [];
  private rootIds: (number | undefined)[] = [];
  /** The builder's sha256 id by the scanner's. */
  private shaIds: (number | undefined)[] = [];
  /** Observer by host id, with the org id it was seen with (a host id under another org is another host). */
  private observers: (string | undefined)[] = [];
  private observerOrgs: number[] = [];

  constructor(
    private readonly unit: ObserverUnit,
    private readonly policy: RootDomainPolicy,
    config: DetectConfig,
    private readonly builder: BaselineBuilder,
  ) {
    this.classify = makeAddressClassifier(config.internalNetworks).classify;
    this.resolve = makeRootDomainResolver(config.internalDomains).uncached;
  }

  /**
   * What the build does with the record of scanned line i (its time checked
   * to fit a baseline file): the host seen on its day, and the sighting
   * SightingExtractor.extract() gives added to the builder. Returns the
   * sightings added (0 or 1), or NEEDS_RECORD, having done nothing.
   */
  learn(s: ScannedLines, i: number): number {
    const table = s.table;
    if (this.table !== table) this.epoch(table);
    const timeMs = s.time(i);
    const shaId = s.sha(i);
    let rootId = NO_ROOT;
    if (shaId >= 0 && !s.inbound(i) && this.isExternal(table, s.ip(i))) {
      const nameId = s.name(i);
      const hostname = nameId < 0 ? null : table.hostname(nameId);
      if (hostname === null) return NEEDS_RECORD;
      let r = this.rootIds[nameId];
      if (r === undefined) {
        // '-' names nothing (no DNS answer stands in for it); an internal or single-label name has no root domain.
        const rd = hostname === '-' ? null : this.resolve(hostname, this.policy);
        this.rootIds[nameId] = r = rd === null || !rd.ok ? NO_ROOT : this.builder.rootIdOf(rd.rootDomain);
      }
      rootId = r;
    }
    const observer = this.observer(s, i, timeMs);
    if (shaId < 0) {
      if (this.unit === 'host') this.builder.seeHost(observer, timeMs);
      return 0;
    }
    let id = this.shaIds[shaId];
    if (id === undefined) this.shaIds[shaId] = id = this.builder.shaIdOf(table.text(shaId));
    // Not a sha256 to the builder (the scanner takes none such): the record's way, which counts it.
    if (id < 0) return NEEDS_RECORD;
    // The day fits (the caller checked the time). The sighting's day stands for the host's day too (seeHost()).
    this.builder.addIds(observer, Math.floor(timeMs / DAY_MS), id, rootId, s.port(i));
    return 1;
  }

  private observer(s: ScannedLines, i: number, timeMs: number): string {
    if (this.unit === 'day') return observerId('day', '', '', timeMs);
    const host = s.host(i);
    const org = s.org(i);
    let o = this.observers[host];
    if (o === undefined || this.observerOrgs[host] !== org) {
      o = observerId(this.unit, s.table.org(org), s.table.text(host), 0);
      this.observers[host] = o;
      this.observerOrgs[host] = org;
    }
    return o;
  }

  private isExternal(table: ScannedTable, ipId: number): boolean {
    let v = this.external[ipId];
    if (v === undefined) {
      const ip = table.ip(ipId);
      this.external[ipId] = v = ip !== null && this.classify(ip) === 'external';
    }
    return v;
  }

  /** A new table: the scanner dropped its ids, so do the caches. */
  private epoch(table: ScannedTable): void {
    this.table = table;
    this.external = [];
    this.rootIds = [];
    this.shaIds = [];
    this.observers = [];
    this.observerOrgs = [];
  }
}
