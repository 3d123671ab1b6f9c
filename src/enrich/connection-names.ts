// What a connection's remote address is called (DETECTION.md sections 2 and
// 10): the enrich stage's one DNS cache, fed with the DNS answers each host
// received, and for each connection the name behind its remote address and
// that name's root domain, worked out once and set on the event
// (ConnectionEvent.name, model/connection-name.ts). Detection, the sightings
// rules and the daemon's bucket hold read it from there. Fed in record order,
// as the daemon's pipeline, `rarecon score` and `rarecon baseline build` read
// records: an answer names the connections that come after it.
import { DEFAULT_NAMES_PER_GENERATION } from '../config/defaults.js';
import type { RootDomainPolicy } from '../model/baseline.js';
import { isHostname, rootDomainUnder, type ConnectionName } from '../model/connection-name.js';
import type { ConnectionEvent, DnsAnswer, SourceRecord } from '../model/records.js';
import { makeRootDomainResolver, type RootDomainResolver, type RootDomainResult } from '../model/root-domain.js';
import { DnsCache, type DnsCacheStats } from './dns-cache.js';

/** The settings naming follows (the `detect` section's). */
export interface NamingConfig {
  /** How long a DNS answer still names an address after its TTL ran out. */
  dnsGraceMs: number;
  dnsCacheMaxEntries: number;
  /** Names under these are internal: no root domain. */
  internalDomains: readonly string[];
}

export class ConnectionNames {
  private readonly dns: DnsCache;
  private resolve: RootDomainResolver & { uncached: RootDomainResolver };
  /**
   * Names by hostname, one frozen object each, shared by every connection to
   * that name: a host talks to the same few names all day, and one map read
   * beats working the root domain out and a new object per connection. Two
   * generations: a full young map becomes the old one.
   */
  private young = new Map<string, ConnectionName>();
  private old = new Map<string, ConnectionName>();
  private internalDomains: readonly string[];
  private policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>;
  /** The name of a connection with no hostname, one per policy (most inbound and internal traffic). */
  private unnamed: ConnectionName;

  /**
   * `policy`: the root-domain policy of the baseline the connections are judged against (rules of the build, for `baseline build`).
   * `namesPerGeneration`: names the young generation holds before it becomes the old one (at most twice as many are held).
   */
  constructor(
    config: NamingConfig,
    policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>,
    private readonly namesPerGeneration: number = DEFAULT_NAMES_PER_GENERATION,
  ) {
    this.dns = new DnsCache(config.dnsGraceMs, config.dnsCacheMaxEntries);
    this.internalDomains = config.internalDomains;
    this.resolve = makeRootDomainResolver(config.internalDomains);
    this.policy = { allowPrivateDomains: policy.allowPrivateDomains };
    this.unnamed = unnamed(policy.allowPrivateDomains);
  }

  /** A record as the pipeline reads it: a DNS answer goes into the cache, a connection is named; a process run needs nothing. */
  see(rec: SourceRecord): void {
    if (rec.type === 'dns') this.dns.add(rec);
    else if (rec.type === 'connection') this.name(rec);
  }

  /** A DNS answer the host received. */
  answer(a: DnsAnswer): void {
    this.dns.add(a);
  }

  /**
   * The name of the connection, set on it (e.name) the first time and read
   * from there after: the record's own hostname unless absent, empty or `-`,
   * else the latest DNS answer still valid at its time; and its root domain.
   */
  name(e: ConnectionEvent): ConnectionName {
    const known = e.name;
    if (known !== undefined) return known;
    const own = e.remote.hostname;
    const hostname = isHostname(own) ? own : this.dns.lookup(e.host, e.remote.ip, e.timeMs);
    const name = hostname === null ? this.unnamed : (this.young.get(hostname) ?? this.named(hostname));
    e.name = name;
    return name;
  }

  /** The name for a hostname not in the young generation: from the old one, or worked out. */
  private named(hostname: string): ConnectionName {
    let name = this.old.get(hostname);
    if (name === undefined) {
      const policy = this.policy;
      const root = isHostname(hostname) ? this.resolve.uncached(hostname, policy) : null;
      name = Object.freeze({ hostname, root, allowPrivateDomains: policy.allowPrivateDomains });
    }
    if (this.young.size >= this.namesPerGeneration) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(hostname, name);
    return name;
  }

  private forgetNames(): void {
    this.young = new Map();
    this.old = new Map();
  }

  /** The root domain of the connection's name (named first if need be) under `policy`: the one set on it, or worked out again under another policy; null without a hostname. */
  rootDomainOf(e: ConnectionEvent, policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>): RootDomainResult | null {
    return rootDomainUnder(this.name(e), policy, this.resolve);
  }

  /** The baseline in force changed its root-domain policy: connections named from now on follow it. */
  setPolicy(policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>): void {
    if (policy.allowPrivateDomains === this.policy.allowPrivateDomains) return;
    this.policy = { allowPrivateDomains: policy.allowPrivateDomains };
    this.unnamed = unnamed(policy.allowPrivateDomains);
    this.forgetNames();
  }

  /** New settings (a config reload): the DNS answers held stay. */
  configure(config: NamingConfig): void {
    this.dns.configure(config.dnsGraceMs, config.dnsCacheMaxEntries);
    if (!sameList(config.internalDomains, this.internalDomains)) {
      this.internalDomains = config.internalDomains;
      this.resolve = makeRootDomainResolver(config.internalDomains);
      this.forgetNames();
    }
  }

  /** Names held now (both generations; a name in both counts twice). */
  get heldNames(): number {
    return this.young.size + this.old.size;
  }

  /** The DNS cache's counts (lookups: one per connection without a hostname of its own). */
  stats(): DnsCacheStats {
    return this.dns.stats();
  }
}

function unnamed(allowPrivateDomains: boolean): ConnectionName {
  return Object.freeze({ hostname: null, root: null, allowPrivateDomains });
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
