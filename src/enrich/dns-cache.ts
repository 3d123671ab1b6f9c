// ip -> the name it was resolved from, per host, with TTL plus a grace period
// (DETECTION.md section 10). Bounded: the oldest entry goes first. The one
// instance is connection-names.ts's, which names connections with it.
import type { DnsAnswer, HostRef } from '../model/records.js';
import { ipKey } from '../model/address.js';

interface Entry {
  hostname: string;
  expiresMs: number;
}

export interface DnsCacheStats {
  entries: number;
  answersTotal: number;
  hitsTotal: number;
  missesTotal: number;
  expiredTotal: number;
  evictedTotal: number;
}

export class DnsCache {
  private readonly map = new Map<string, Entry>();
  private answersTotal = 0;
  private hitsTotal = 0;
  private missesTotal = 0;
  private expiredTotal = 0;
  private evictedTotal = 0;

  constructor(
    private graceMs: number,
    private maxEntries: number,
  ) {}

  /** New settings (a config reload): the grace applies to answers added from now on; past the new bound the oldest entries go. */
  configure(graceMs: number, maxEntries: number): void {
    this.graceMs = graceMs;
    this.maxEntries = maxEntries;
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      this.map.delete(oldest.value);
      this.evictedTotal++;
    }
  }

  private static key(host: HostRef, ip: string): string {
    return `${host.org}\u0000${host.id}\u0000${ipKey(ip)}`;
  }

  add(answer: DnsAnswer): void {
    this.answersTotal++;
    for (const a of answer.answers) {
      const key = DnsCache.key(answer.host, a.ip);
      // The latest answer wins: delete first so the entry moves to the young end.
      this.map.delete(key);
      this.map.set(key, { hostname: answer.query, expiresMs: answer.timeMs + a.ttl * 1000 + this.graceMs });
      if (this.map.size > this.maxEntries) {
        const oldest = this.map.keys().next();
        if (oldest.done !== true) {
          this.map.delete(oldest.value);
          this.evictedTotal++;
        }
      }
    }
  }

  /** The name behind `ip` for `host` at `timeMs`, or null when none is known or it ran out. */
  lookup(host: HostRef, ip: string, timeMs: number): string | null {
    const e = this.map.get(DnsCache.key(host, ip));
    if (e === undefined) {
      this.missesTotal++;
      return null;
    }
    if (e.expiresMs < timeMs) {
      this.expiredTotal++;
      return null;
    }
    this.hitsTotal++;
    return e.hostname;
  }

  stats(): DnsCacheStats {
    return {
      entries: this.map.size,
      answersTotal: this.answersTotal,
      hitsTotal: this.hitsTotal,
      missesTotal: this.missesTotal,
      expiredTotal: this.expiredTotal,
      evictedTotal: this.evictedTotal,
    };
  }
}
