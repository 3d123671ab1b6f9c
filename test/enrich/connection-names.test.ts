// The enrich stage's naming of connections: the one DNS cache, the precedence
// between the record's own hostname and a DNS answer, and the root domain set
// once on the event, as the detector and the sightings rules read them.
import { describe, expect, it } from 'vitest';
import { ConnectionNames } from '../../src/enrich/connection-names.js';
import { makeDetector } from '../../src/detect/detector.js';
import { SightingExtractor } from '../../src/detect/sightings.js';
import { DEFAULT_DETECT } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import type { DnsAnswer } from '../../src/model/records.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import { memoryBaseline } from '../support/memory-baseline.js';
import { conn, SHA_A } from '../support/records.js';

const T = Date.UTC(2026, 9, 1, 12);
const PRIVATE = { allowPrivateDomains: true };
const ICANN = { allowPrivateDomains: false };

function answer(query: string, ip: string, timeMs = T - 1000, ttl = 60, host = { id: 'h1', org: 'o1' }): DnsAnswer {
  return { type: 'dns', timeMs, host, query, answers: [{ ip, ttl }] };
}

describe('ConnectionNames', () => {
  it("takes the record's own hostname, else the latest DNS answer still valid (TTL plus grace)", () => {
    const names = new ConnectionNames(DEFAULT_DETECT, PRIVATE);
    names.see(answer('old.example.com', '203.0.113.10'));
    names.see(answer('www.c2.example.net', '203.0.113.10'));
    expect(names.name(conn({ hostname: 'own.example.org' })).hostname).toBe('own.example.org');
    for (const own of [null, '', '-']) {
      const n = names.name(conn({ hostname: own }));
      expect(n.hostname).toBe('www.c2.example.net');
      expect(n.root).toEqual({ ok: true, hostname: 'www.c2.example.net', rootDomain: 'example.net' });
    }
    // Another host's answer, another address, or past TTL + grace name nothing.
    expect(names.name(conn({ hostname: null, host: { id: 'h2', org: 'o1' } })).hostname).toBeNull();
    expect(names.name(conn({ hostname: null, ip: '203.0.113.11' }))).toEqual({ hostname: null, root: null, allowPrivateDomains: true });
    const late = T - 1000 + 60_000 + DEFAULT_DETECT.dnsGraceMs + 1;
    expect(names.name(conn({ hostname: null, timeMs: late })).hostname).toBeNull();
    expect(names.stats()).toMatchObject({ answersTotal: 2, hitsTotal: 3, missesTotal: 2, expiredTotal: 1 });
  });

  it('names a connection once: the name stays on the event', () => {
    const names = new ConnectionNames(DEFAULT_DETECT, PRIVATE);
    const e = conn({ hostname: null });
    const first = names.name(e);
    expect(first.hostname).toBeNull();
    names.answer(answer('later.example.com', '203.0.113.10'));
    expect(names.name(e)).toBe(first);
    expect(e.name).toBe(first);
  });

  it('works the root domain out under the policy of the baseline, and again for a reader under another', () => {
    const names = new ConnectionNames({ ...DEFAULT_DETECT, internalDomains: ['corp.example'] }, PRIVATE);
    const e = conn({ hostname: 'evil.github.io' });
    expect(names.name(e).root).toMatchObject({ ok: true, rootDomain: 'evil.github.io' });
    expect(names.rootDomainOf(e, ICANN)).toMatchObject({ ok: true, rootDomain: 'github.io' });
    expect(names.name(conn({ hostname: 'git.corp.example' })).root).toEqual({ ok: false, reason: 'internal-name' });
    names.setPolicy(ICANN);
    expect(names.name(conn({ hostname: 'evil.github.io' }))).toMatchObject({
      root: { rootDomain: 'github.io' },
      allowPrivateDomains: false,
    });
  });

  it('keeps its answers through new settings', () => {
    const names = new ConnectionNames(DEFAULT_DETECT, PRIVATE);
    names.answer(answer('a.example.com', '203.0.113.10'));
    names.answer(answer('b.example.com', '203.0.113.20'));
    names.configure({ ...DEFAULT_DETECT, dnsCacheMaxEntries: 1, internalDomains: ['example.com'] });
    expect(names.name(conn({ hostname: null, ip: '203.0.113.10' })).hostname).toBeNull();
    expect(names.name(conn({ hostname: null, ip: '203.0.113.20' }))).toMatchObject({
      hostname: 'b.example.com',
      root: { ok: false, reason: 'internal-name' },
    });
    expect(names.stats()).toMatchObject({ entries: 1, evictedTotal: 1 });
  });
});

describe('readers of the name', () => {
  const base = memoryBaseline({ [SHA_A]: 50 }, [[SHA_A, 'example.net', 443, 40]]);
  const enrolled = T - 20 * DAY_MS;

  it('the detector judges a named connection as it evaluates its hostname', () => {
    const d = makeDetector(DEFAULT_DETECT);
    const names = new ConnectionNames(DEFAULT_DETECT, base.meta().policy);
    names.answer(answer('www.example.net', '203.0.113.10'));
    for (const hostname of ['www.example.net', 'c2.example.com', 'nas.local', '203.0.113.9', null, '-']) {
      const e = conn({ hostname });
      const name = names.name(e);
      expect(d.judge(e, name, base, enrolled, T)).toEqual(d.evaluate(e, name.hostname, base, enrolled, T));
    }
  });

  it("the sightings rules read the name, and a record's own '-' or '' stays no name", () => {
    const x = new SightingExtractor('host', DEFAULT_POLICY, DEFAULT_DETECT);
    const names = new ConnectionNames(DEFAULT_DETECT, DEFAULT_POLICY);
    names.see(answer('www.example.net', '203.0.113.10'));
    const sightings = (hostname: string | null) => {
      const e = conn({ hostname });
      names.see(e);
      return x.extract(e).map((s) => [s.observer, s.rootDomain, s.port]);
    };
    expect(sightings(null)).toEqual([['o1/h1', 'example.net', 443]]);
    expect(sightings('api.other.org')).toEqual([['o1/h1', 'other.org', 443]]);
    expect(sightings('-')).toEqual([['o1/h1', null, null]]);
    expect(sightings('')).toEqual([['o1/h1', null, null]]);
    expect(() => x.extract(conn())).toThrow(/without a name/);
  });
});
