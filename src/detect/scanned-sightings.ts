// The sightings rules (sightings.ts) for a connection the native line scanner
// read, from its ids: what the rules make of an id (address class, root domain,
// observer) is worked out once per id of the scanner's epoch, not once a line.
// A connection named only by a DNS answer needs the enrich stage: its record
// goes the record way.
import type { ObserverUnit, RootDomainPolicy, Sighting } from '../model/baseline.js';
import { dayStart } from '../model/baseline.js';
import { observerId } from '../model/observer.js';
import type { ScannedLines, ScannedTable } from '../model/scanned.js';
import type { DetectConfig } from '../config/defaults.js';
import { makeRootDomainResolver, type RootDomainResolver } from '../model/root-domain.js';
import { makeAddressClassifier } from '../model/address.js';

/** What extract() found: the line's record is needed (named by DNS), or none, one run, or one combo sighting in `sighting`. */
export const NEEDS_RECORD = -1;

/** A root domain of a name id: the domain, '' for a name that teaches no combination, undefined not worked out. */
type RootOfName = string | undefined;

export class ScannedSightings {
  private readonly classify;
  /** Uncached: each answer is kept per name id here. */
  private readonly resolve: RootDomainResolver;
  private table: ScannedTable | null = null;
  private external: (boolean | undefined)[] = [];
  private roots: RootOfName[] = [];
  /** Observer by host id, with the org id it was seen with (a host id under another org is another host). */
  private observers: (string | undefined)[] = [];
  private observerOrgs: number[] = [];
  /** The sighting extract() fills, reused (the builder copies what it keeps). */
  readonly sighting: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };

  constructor(
    private readonly unit: ObserverUnit,
    private readonly policy: RootDomainPolicy,
    config: DetectConfig,
  ) {
    this.classify = makeAddressClassifier(config.internalNetworks).classify;
    this.resolve = makeRootDomainResolver(config.internalDomains).uncached;
  }

  /** The observer of line i (what SightingExtractor and the build's seeHost() take from the record). */
  observer(s: ScannedLines, i: number): string {
    this.epoch(s.table);
    if (this.unit === 'day') return observerId('day', '', '', s.time(i));
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

  /**
   * The sightings of scanned line i as SightingExtractor.extract() gives them
   * for its record: 0 (none), 1 (the sha256 run, in `sighting`), 2 (a combo
   * sighting, in `sighting`), or NEEDS_RECORD when only the record can say
   * (its name comes from a DNS answer).
   */
  extract(s: ScannedLines, i: number, observer: string): number {
    const table = s.table;
    this.epoch(table);
    const shaId = s.sha(i);
    if (shaId < 0) return 0;
    let root: string | null = null;
    if (!s.inbound(i) && this.isExternal(table, s.ip(i))) {
      const nameId = s.name(i);
      const hostname = nameId < 0 ? null : table.hostname(nameId);
      if (hostname === null) return NEEDS_RECORD;
      let r = this.roots[nameId];
      if (r === undefined) {
        // '-' names nothing (no DNS answer stands in for it); an internal or single-label name has no root domain.
        const rd = hostname === '-' ? null : this.resolve(hostname, this.policy);
        this.roots[nameId] = r = rd === null || !rd.ok ? '' : rd.rootDomain;
      }
      if (r !== '') root = r;
    }
    const out = this.sighting;
    out.observer = observer;
    out.dayMs = dayStart(s.time(i));
    out.sha256 = table.text(shaId);
    out.rootDomain = root;
    out.port = root === null ? null : s.port(i);
    return root === null ? 1 : 2;
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
    if (this.table === table) return;
    this.table = table;
    this.external = [];
    this.roots = [];
    this.observers = [];
    this.observerOrgs = [];
  }
}
