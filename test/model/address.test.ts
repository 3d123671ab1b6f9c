import { describe, expect, it } from 'vitest';
import { formatIpv6, ipKey, makeAddressClassifier, normaliseIp } from '../../src/model/address.js';

describe('addresses: one normaliseIp, one key, one IPv6 formatter', () => {
  it('normaliseIp gives the text records hold, or null for what is no address', () => {
    expect(normaliseIp('192.0.2.1')).toBe('192.0.2.1');
    expect(normaliseIp(' 2001:DB8::1 ')).toBe('2001:db8::1');
    expect(normaliseIp('[2001:db8::1]')).toBe('2001:db8::1');
    expect(normaliseIp('::FFFF:203.0.113.9')).toBe('203.0.113.9');
    expect(normaliseIp('::ffff:1:2')).toBe('::ffff:1:2');
    expect(normaliseIp('fe80::1%eth0')).toBe('fe80::1%eth0');
    expect(normaliseIp('not an ip')).toBeNull();
    expect(normaliseIp('192.0.2.01')).toBeNull();
    expect(normaliseIp('')).toBeNull();
  });

  it('ipKey drops brackets, zone ids and the mapped prefix, and keeps what is no address as lower-case text', () => {
    expect(ipKey('192.0.2.1')).toBe('192.0.2.1');
    expect(ipKey('[::ffff:10.0.0.1]')).toBe('10.0.0.1');
    expect(ipKey('FE80::1%eth0')).toBe('fe80::1');
    expect(ipKey('[fe80::1%2]')).toBe('fe80::1');
    expect(ipKey(' Bogus ')).toBe('bogus');
  });

  it('the classifier judges a mapped or zoned address by its key', () => {
    const c = makeAddressClassifier(['203.0.113.0/28']);
    expect(c.classify('::ffff:10.1.2.3')).toBe('internal');
    expect(c.classify('fe80::1%eth0')).toBe('internal');
    expect(c.classify('203.0.113.5')).toBe('configured-internal');
    expect(c.classify('198.51.100.7')).toBe('external');
    expect(c.classify('nonsense')).toBe('invalid');
  });

  it('formatIpv6 writes RFC 5952 text', () => {
    const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
    expect(formatIpv6(hex('20010db8000000000000000000000001'))).toBe('2001:db8::1');
    expect(formatIpv6(hex('20010db8000000010000000000000001'))).toBe('2001:db8:0:1::1');
    expect(formatIpv6(hex('20010db8000000000001000000000001'))).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(hex('20010db8000100010001000100010001'))).toBe('2001:db8:1:1:1:1:1:1');
    expect(formatIpv6(hex('00000000000000000000000000000000'))).toBe('::');
    expect(formatIpv6(hex('fe800000000000000000000000000001'))).toBe('fe80::1');
  });
});
