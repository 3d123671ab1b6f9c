// Token buckets by key (a source address, a host): `perMinute` on average and
// up to `burst` at once. A request beyond its bucket is refused with the
// seconds until a token is back (429 with Retry-After). Buckets are kept for
// the keys seen lately only: full ones are forgotten first, so an attacker
// cycling through addresses costs a bounded map, not the server's memory.
import type { RateLimit, ServerRateLimits } from '../config/defaults.js';

interface Bucket {
  tokens: number;
  atMs: number;
}

export type Take = { ok: true } | { ok: false; retryAfterS: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 200_000,
  ) {
    this.perMs = limit.perMinute / 60_000;
  }

  take(key: string, nowMs: number): Take {
    if (this.limit.perMinute === 0) return { ok: true };
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.sweep(nowMs);
      b = { tokens: this.limit.burst, atMs: nowMs };
    } else {
      this.buckets.delete(key);
      b.tokens = Math.min(this.limit.burst, b.tokens + (nowMs - b.atMs) * this.perMs);
      b.atMs = nowMs;
    }
    // Re-inserted on every use: the map's order is least recently used first.
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  /** Forgets the buckets that have refilled, then (still too many) the least recently used half. */
  private sweep(nowMs: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (nowMs - b.atMs) * this.perMs >= this.limit.burst) this.buckets.delete(k);
    if (this.buckets.size < this.maxKeys) return;
    let drop = Math.floor(this.maxKeys / 2);
    for (const k of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(k);
    }
  }

  get keys(): number {
    return this.buckets.size;
  }
}

/** What a route is, for its limits. */
export type RouteClass = 'enrol' | 'upload' | 'download' | 'admin' | 'open';

/** The server's limiters, and what each refused. */
export class RequestLimits {
  private readonly byAddress: Record<Exclude<RouteClass, 'open'>, RateLimiter>;
  private readonly byCredential: Record<'upload' | 'download', RateLimiter>;
  readonly refused: Record<Exclude<RouteClass, 'open'>, number> = { enrol: 0, upload: 0, download: 0, admin: 0 };

  constructor(cfg: ServerRateLimits) {
    this.byAddress = {
      enrol: new RateLimiter(cfg.enrolPerAddress),
      upload: new RateLimiter(cfg.uploadPerAddress),
      download: new RateLimiter(cfg.downloadPerAddress),
      admin: new RateLimiter(cfg.adminPerAddress),
    };
    this.byCredential = { upload: new RateLimiter(cfg.uploadPerCredential), download: new RateLimiter(cfg.downloadPerCredential) };
  }

  private readonly loggedAt = new Map<string, number>();

  /** True at most once a minute per key: a flood of refusals must not flood the log. */
  shouldLog(key: string, nowMs: number): boolean {
    if ((this.loggedAt.get(key) ?? -Infinity) + 60_000 > nowMs) return false;
    this.loggedAt.set(key, nowMs);
    return true;
  }

  /** Before anything else of the request is looked at. */
  address(cls: RouteClass, address: string, nowMs: number): Take {
    if (cls === 'open') return { ok: true };
    const t = this.byAddress[cls].take(address, nowMs);
    if (!t.ok) this.refused[cls]++;
    return t;
  }

  /** Once the credential is known good: per host. */
  credential(cls: RouteClass, hostRef: number, nowMs: number): Take {
    if (cls !== 'upload' && cls !== 'download') return { ok: true };
    const t = this.byCredential[cls].take(String(hostRef), nowMs);
    if (!t.ok) this.refused[cls]++;
    return t;
  }
}
