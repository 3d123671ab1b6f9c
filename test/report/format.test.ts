import { describe, expect, it } from 'vitest';
import { backoffDelayMs, parseRetryAfterMs } from '../../src/common/backoff.js';
import { PRODUCT_VERSION } from '../../src/model/product.js';
import { formatRfc5424, octetFrame, priority } from '../../src/report/syslog-format.js';
import { detection, health } from '../support/alerts.js';

describe('backoff', () => {
  const opts = { initialMs: 100, maxMs: 10_000, maxRetryAfterMs: 60_000 };
  it('waits a random time up to an exponential cap (full jitter)', () => {
    expect(backoffDelayMs(1, opts, undefined, () => 0.999)).toBe(99);
    expect(backoffDelayMs(4, opts, undefined, () => 0.999)).toBe(799);
    expect(backoffDelayMs(30, opts, undefined, () => 0.999)).toBe(9_990);
    expect(backoffDelayMs(4, opts, undefined, () => 0)).toBe(0);
  });
  it('never waits less than Retry-After, cut to its maximum', () => {
    expect(backoffDelayMs(1, opts, 5_000, () => 0.5)).toBe(5_000);
    expect(backoffDelayMs(1, opts, 3_600_000, () => 0.5)).toBe(60_000);
  });
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-10-01T12:00:00Z');
    expect(parseRetryAfterMs('120', now)).toBe(120_000);
    expect(parseRetryAfterMs('Thu, 01 Oct 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfterMs('Thu, 01 Oct 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
  });
});

describe('RFC 5424 rendering', () => {
  it('puts PRI, version, time, host, app, procid, msgid, structured data and the JSON alert in order', () => {
    const a = detection(1, { severityId: 4, host: 'web-1' });
    const m = formatRfc5424(a, { facility: 'local0', format: 'ocsf', sdId: 'example@32473', procId: 77 });
    const head = `<130>1 ${new Date(a.firstSeenMs).toISOString()} web-1.example.net rarecon 77 injected-thread [origin software="rarecon" swVersion="${PRODUCT_VERSION}"][example@32473 uid="${a.uid}" kind="detection" severity="High" host="web-1" org="o1" count="1" variation="injected-thread" sha256="${'a'.repeat(64)}" root_domain="example.com" port="8443" tier="very-rare"] `;
    expect(m.startsWith(head)).toBe(true);
    expect(JSON.parse(m.slice(head.length))).toMatchObject({ class_uid: 2004, metadata: { uid: a.uid } });
  });
  it('maps severities and facilities to PRI', () => {
    expect(priority('local0', 4)).toBe(130);
    expect(priority('local0', 1)).toBe(134);
    expect(priority('auth', 3)).toBe(35);
    expect(priority('kern', 2)).toBe(4);
  });
  it('uses the NILVALUE and printable ASCII in header fields', () => {
    const h = health(1);
    h.host = { id: 'host with spaces', org: 'o' };
    const m = formatRfc5424(h, { facility: 'daemon', format: 'ecs', procId: 1 });
    expect(m).toMatch(/^<27>1 \S+ host_with_spaces rarecon 1 health \[origin software="rarecon" swVersion="[^"]+"\] \{/);
  });
  it("names no enterprise number that is not the operator's: only the registered origin element without an sdId", () => {
    const m = formatRfc5424(detection(1), { facility: 'local0', format: 'ocsf', procId: 1 });
    expect(m).toContain(` [origin software="rarecon" swVersion="${PRODUCT_VERSION}"] {`);
    expect(m).not.toContain('@32473');
  });
  it('frames by octet count, in bytes not characters', () => {
    expect(octetFrame('é').toString('utf8')).toBe('2 é');
  });
});
