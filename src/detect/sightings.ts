// Which records count as sightings for the baseline (DETECTION.md section 8):
// per day, the distinct (sha256, root domain, port) of outbound external
// connections with a known name, and the distinct sha256 run.
import type { ObserverUnit, RootDomainPolicy, Sighting } from '../model/baseline.js';
import { dayStart } from '../model/baseline.js';
import type { SourceRecord } from '../model/records.js';
import type { DetectConfig } from '../config/defaults.js';
import { DnsCache } from '../enrich/dns-cache.js';
import { rootDomainOf } from '../model/root-domain.js';
import { makeAddressClassifier } from '../model/address.js';

export function observerOf(unit: ObserverUnit, org: string, hostId: string, timeMs: number): string {
  switch (unit) {
    case 'org':
      return org;
    case 'host':
      return `${org}/${hostId}`;
    case 'day':
      return new Date(dayStart(timeMs)).toISOString().slice(0, 10);
  }
}

export class SightingExtractor {
  private readonly dns: DnsCache;
  private readonly classify;

  constructor(
    private readonly unit: ObserverUnit,
    private readonly policy: RootDomainPolicy,
    private readonly config: DetectConfig,
  ) {
    this.dns = new DnsCache(config.dnsGraceMs, config.dnsCacheMaxEntries);
    this.classify = makeAddressClassifier(config.internalNetworks).classify;
  }

  /** Zero, one or two sightings for the record (the sha256 run, and the combo when there is one). */
  extract(rec: SourceRecord): Sighting[] {
    const observer = observerOf(this.unit, rec.host.org, rec.host.id, rec.timeMs);
    const dayMs = dayStart(rec.timeMs);
    switch (rec.type) {
      case 'dns':
        this.dns.add(rec);
        return [];
      case 'process':
        return [{ observer, dayMs, sha256: rec.sha256, rootDomain: null, port: null }];
      case 'connection': {
        const sha256 = rec.process.sha256;
        if (sha256 === null) return [];
        const run: Sighting = { observer, dayMs, sha256, rootDomain: null, port: null };
        if (rec.direction !== 'outbound' || this.classify(rec.remote.ip) !== 'external') return [run];
        const name = rec.remote.hostname ?? this.dns.lookup(rec.host, rec.remote.ip, rec.timeMs);
        if (name === null || name === '' || name === '-') return [run];
        const rd = rootDomainOf(name, this.policy, this.config.internalDomains);
        if (!rd.ok) return [run];
        // The builder counts the sha256 of a combo sighting as a run too.
        return [{ observer, dayMs, sha256, rootDomain: rd.rootDomain, port: rec.remote.port }];
      }
    }
  }
}
