// Which records count as sightings for the baseline (DETECTION.md section 8):
// per day, the distinct (sha256, root domain, port) of outbound external
// connections with a known name, and the distinct sha256 run. Connections come
// named by the enrich stage (enrich/connection-names.ts): the name and root
// domain are read from the event.
import type { ObserverUnit, RootDomainPolicy, Sighting } from '../model/baseline.js';
import { dayStart } from '../model/baseline.js';
import { observerId } from '../model/observer.js';
import type { SourceRecord } from '../model/records.js';
import type { DetectConfig } from '../config/defaults.js';
import { rootDomainUnder } from '../model/connection-name.js';
import { makeRootDomainResolver, type RootDomainResolver } from '../model/root-domain.js';
import { makeAddressClassifier } from '../model/address.js';

export class SightingExtractor {
  private readonly classify;
  /** For a connection named under another root-domain policy than `policy` (the baseline's, in the daemon). */
  private readonly resolve: RootDomainResolver;
  private readonly reverseDnsNames: boolean;

  constructor(
    private readonly unit: ObserverUnit,
    private readonly policy: RootDomainPolicy,
    config: DetectConfig,
  ) {
    this.classify = makeAddressClassifier(config.internalNetworks).classify;
    this.resolve = makeRootDomainResolver(config.internalDomains);
    this.reverseDnsNames = config.reverseDnsNames;
  }

  /**
   * Zero, one or two sightings for the record (the sha256 run, and the combo
   * when there is one). A connection must have been named (e.name); a DNS
   * answer gives none (the enrich stage takes it).
   */
  extract(rec: SourceRecord): Sighting[] {
    const observer = observerId(this.unit, rec.host.org, rec.host.id, rec.timeMs);
    const dayMs = dayStart(rec.timeMs);
    switch (rec.type) {
      case 'dns':
        return [];
      case 'process':
        return [{ observer, dayMs, sha256: rec.sha256, rootDomain: null, port: null }];
      case 'connection': {
        const sha256 = rec.process.sha256;
        if (sha256 === null) return [];
        const run: Sighting = { observer, dayMs, sha256, rootDomain: null, port: null };
        if (rec.direction !== 'outbound' || this.classify(rec.remote.ip) !== 'external') return [run];
        // A hostname of the record's own that names nothing ('' or '-') is its name here: no DNS answer stands in for it.
        const own = rec.remote.hostname;
        if (own === '' || own === '-') return [run];
        // The detector's rule (DETECTION.md section 2.2): a PTR name teaches the baseline nothing unless it is scored.
        if (rec.remote.reverseDns === true && !this.reverseDnsNames) return [run];
        const name = rec.name;
        if (name === undefined)
          throw new Error('a connection reached the sightings rules without a name (the enrich stage names connections first)');
        const rd = rootDomainUnder(name, this.policy, this.resolve);
        if (rd === null || !rd.ok) return [run];
        // The builder counts the sha256 of a combo sighting as a run too.
        return [{ observer, dayMs, sha256, rootDomain: rd.rootDomain, port: rec.remote.port }];
      }
    }
  }
}
