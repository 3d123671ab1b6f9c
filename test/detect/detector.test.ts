import { describe, expect, it } from 'vitest';
import { makeDetector, tierOf } from '../../src/detect/detector.js';
import { DEFAULT_DETECT, DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DAY_MS } from '../../src/model/baseline.js';
import { memoryBaseline } from '../support/memory-baseline.js';
import { conn, proc, SHA_A, SHA_B } from '../support/records.js';

const NOW = Date.UTC(2026, 9, 1, 12);
const ENROLLED = NOW - 20 * DAY_MS;
const base = memoryBaseline({ [SHA_A]: 50, [SHA_B]: 9 }, [
  [SHA_A, 'popular.com', 443, 40],
  [SHA_A, 'ten.com', 443, 10],
  [SHA_A, 'nine.com', 443, 9],
  [SHA_A, 'four.com', 443, 4],
  [SHA_A, 'three.com', 443, 3],
  [SHA_A, 'two.com', 443, 2],
  [SHA_A, 'one.com', 443, 1],
]);
const detector = makeDetector(DEFAULT_DETECT);

function verdict(e = conn(), hostname: string | null = e.remote.hostname, enrolled = ENROLLED) {
  return detector.evaluate(e, hostname, base, enrolled, e.timeMs);
}

describe('tiers (DETECTION.md section 4, default thresholds)', () => {
  it.each([
    [40, 'common'],
    [10, 'common'],
    [9, 'uncommon'],
    [4, 'uncommon'],
    [3, 'rare'],
    [2, 'rare'],
    [1, 'very-rare'],
    [0, 'very-rare'],
  ])('%i observers is %s', (n, tier) => {
    expect(tierOf(n, DEFAULT_THRESHOLDS)).toBe(tier);
  });
});

describe('detector', () => {
  it('alerts on a never-seen combination with the very rare variation first', () => {
    const v = verdict(conn({ hostname: 'www.c2.example.com' }));
    expect(v.kind).toBe('alert');
    if (v.kind !== 'alert') return;
    expect(v.finding.rootDomain).toBe('example.com');
    expect(v.finding.comboObservers).toBe(0);
    expect(v.finding.variations.map((x) => x.id)).toEqual(['very-rare', 'rare', 'uncommon']);
    expect(v.finding.variations[0]!.severity).toBe('Medium');
  });

  it.each([
    ['popular.com', 'common'],
    ['ten.com', 'common'],
    ['nine.com', 'uncommon'],
    ['four.com', 'uncommon'],
    ['three.com', 'rare'],
    ['one.com', 'very-rare'],
  ])('%s gives %s', (domain, expected) => {
    const v = verdict(conn({ hostname: `api.${domain}` }));
    expect(v.kind === 'alert' ? v.finding.tier : v.kind).toBe(expected);
  });

  it('puts the injected-thread variation above all and keeps the rest listed', () => {
    const v = verdict(conn({ hostname: 'three.com', process: proc({ injection: { injected: true, indicators: ['memfd-exe'] } }) }));
    expect(v.kind === 'alert' && v.finding.variations.map((x) => x.id)).toEqual(['injected-thread', 'rare', 'uncommon']);
  });

  it('known vendor needs a valid signature and matches vendor or subject as a word, any case', () => {
    const signed = (status: 'valid' | 'invalid', vendor: string | null, subject: string | null) =>
      verdict(conn({ hostname: 'nine.com', process: proc({ signer: { status, vendor, subject } }) }));
    const ids = (v: ReturnType<typeof verdict>) => (v.kind === 'alert' ? v.finding.variations.map((x) => x.id) : []);
    expect(ids(signed('valid', 'DEBIAN', null))).toEqual(['known-vendor', 'uncommon']);
    expect(ids(signed('valid', null, 'Microsoft Windows Publisher'))).toEqual(['known-vendor', 'uncommon']);
    expect(ids(signed('invalid', 'Debian', null))).toEqual(['uncommon']);
    expect(ids(signed('valid', 'Microsoftish Ltd', null))).toEqual(['uncommon']);
  });

  it.each([
    ['10.0.0.1', 'internal-address'],
    ['172.20.1.1', 'internal-address'],
    ['192.168.1.1', 'internal-address'],
    ['100.64.0.1', 'internal-address'],
    ['127.0.0.1', 'internal-address'],
    ['169.254.1.1', 'internal-address'],
    ['224.0.0.251', 'internal-address'],
    ['255.255.255.255', 'internal-address'],
    ['0.0.0.0', 'internal-address'],
    ['::1', 'internal-address'],
    ['fd00::1', 'internal-address'],
    ['fe80::1', 'internal-address'],
    ['ff02::1', 'internal-address'],
    ['::ffff:10.1.1.1', 'internal-address'],
    ['not-an-ip', 'invalid-address'],
  ])('%s is not external (%s)', (ip, reason) => {
    expect(verdict(conn({ ip }))).toEqual({ kind: 'ineligible', reason });
  });

  it('treats documentation ranges as external so tests can use them', () => {
    for (const ip of ['203.0.113.5', '198.51.100.7', '2001:db8::5', '::ffff:203.0.113.5']) {
      expect(verdict(conn({ ip })).kind).toBe('alert');
    }
  });

  it('honours configured internal networks and domains', () => {
    const d = makeDetector({ ...DEFAULT_DETECT, internalNetworks: ['203.0.113.0/25'], internalDomains: ['example.com'] });
    expect(d.evaluate(conn({ ip: '203.0.113.5' }), 'x.other.org', base, ENROLLED, NOW)).toEqual({
      kind: 'ineligible',
      reason: 'configured-internal-address',
    });
    expect(d.evaluate(conn({ ip: '203.0.113.200' }), 'c2.example.com', base, ENROLLED, NOW)).toEqual({
      kind: 'ineligible',
      reason: 'internal-hostname',
    });
  });

  it.each([
    [null, 'no-hostname'],
    ['-', 'no-hostname'],
    ['203.0.113.10', 'ip-literal-hostname'],
    ['[2001:db8::1]', 'ip-literal-hostname'],
    ['intranet', 'single-label-hostname'],
    ['nas.local', 'internal-hostname'],
    ['db.internal', 'internal-hostname'],
    ['router.lan', 'internal-hostname'],
    ['tv.home.arpa', 'internal-hostname'],
    ['printer.corp', 'internal-hostname'],
    ['bad..name.com', 'invalid-hostname'],
  ])('hostname %s is not eligible (%s)', (hostname, reason) => {
    expect(verdict(conn({ hostname }), hostname)).toEqual({ kind: 'ineligible', reason });
  });

  it('needs a common sha256', () => {
    expect(verdict(conn({ process: proc({ sha256: SHA_B }) }))).toEqual({ kind: 'ineligible', reason: 'process-not-common' });
    expect(verdict(conn({ process: proc({ sha256: 'c'.repeat(64) }) }))).toEqual({ kind: 'ineligible', reason: 'process-not-common' });
    expect(verdict(conn({ process: proc({ sha256: null }) }))).toEqual({ kind: 'ineligible', reason: 'no-sha256' });
  });

  it('learns for the activation period and says how many days are left', () => {
    expect(verdict(conn(), 'c2.example.com', NOW - 5 * DAY_MS)).toEqual({ kind: 'learning', reason: 'host-learning', daysLeft: 9 });
    expect(verdict(conn(), 'c2.example.com', NOW - 14 * DAY_MS).kind).toBe('alert');
  });

  it('waits for a baseline that covers 14 days', () => {
    const short = memoryBaseline({ [SHA_A]: 50 }, [], { windowStartMs: NOW - 10 * DAY_MS, windowEndMs: NOW });
    expect(detector.evaluate(conn(), 'c2.example.com', short, ENROLLED, NOW)).toEqual({
      kind: 'learning',
      reason: 'baseline-too-short',
      daysLeft: 4,
    });
  });

  it('applies each exclusion kind', () => {
    const d = makeDetector({
      ...DEFAULT_DETECT,
      exclusions: {
        domainSuffixes: ['ok.example.com'],
        sha256: [SHA_B],
        signers: ['Acme Corp'],
        ports: [8080],
        processPaths: ['/opt/agent/*'],
      },
    });
    const ev = (e = conn(), h = 'c2.example.com') => d.evaluate(e, h, memoryBaseline({ [SHA_A]: 50, [SHA_B]: 50 }, []), ENROLLED, NOW);
    expect(ev(conn(), 'x.ok.example.com')).toEqual({ kind: 'excluded', by: 'domain-suffix' });
    expect(ev(conn({ process: proc({ sha256: SHA_B }) }))).toEqual({ kind: 'excluded', by: 'sha256' });
    expect(ev(conn({ process: proc({ signer: { status: 'valid', subject: 'acme corp', vendor: null } }) }))).toEqual({
      kind: 'excluded',
      by: 'signer',
    });
    expect(ev(conn({ port: 8080 }))).toEqual({ kind: 'excluded', by: 'port' });
    expect(ev(conn({ process: proc({ path: '/opt/agent/bin/up' }) }))).toEqual({ kind: 'excluded', by: 'process-path' });
    expect(ev(conn()).kind).toBe('alert');
  });

  it('uses the operator thresholds over the baseline ones', () => {
    const d = makeDetector({ ...DEFAULT_DETECT, thresholds: { uncommonBelowObservers: 3 } });
    const v = d.evaluate(conn({ hostname: 'four.com' }), 'four.com', base, ENROLLED, NOW);
    expect(v.kind).toBe('common');
  });

  it('ignores inbound connections', () => {
    expect(verdict(conn({ direction: 'inbound' }))).toEqual({ kind: 'ineligible', reason: 'inbound' });
  });
});
