import { BlockList, isIP } from 'node:net';

// DETECTION.md section 2.1: what is not "external". Documentation ranges
// (203.0.113.0/24, 198.51.100.0/24, 2001:db8::/32) stay external on purpose.
const INTERNAL_V4: ReadonlyArray<[string, number]> = [
  ['0.0.0.0', 8], // unspecified / this network
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, includes 255.255.255.255 broadcast
];
const INTERNAL_V6: ReadonlyArray<[string, number]> = [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
];

export type AddressClass = 'external' | 'internal' | 'configured-internal' | 'invalid';

export interface AddressClassifier {
  classify(ip: string): AddressClass;
}

/** Parses `a.b.c.d/n` or `x::/n` (a bare address is a /32 or /128). */
export function parseCidr(
  cidr: string,
): { ok: true; address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { ok: false; error: string } {
  const [address = '', prefixText] = cidr.trim().split('/');
  const v = isIP(address);
  if (v === 0) return { ok: false, error: `"${cidr}" is not an IP network` };
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return { ok: false, error: `"${cidr}" has a bad prefix length` };
  return { ok: true, address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The text of an address as records hold it: trimmed, unbracketed, lower-cased,
 * `::ffff:1.2.3.4` as `1.2.3.4` (a zone id stays). Null when it is not an address.
 */
export function normaliseIp(raw: string): string | null {
  // Plain dotted IPv4, the common case, is already normal.
  if (parseStrictIpv4(raw) >= 0) return raw;
  let s = raw.trim().toLowerCase();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.startsWith('::ffff:') && isIP(s.slice(7)) === 4) s = s.slice(7);
  return isIP(s) !== 0 ? s : null;
}

/**
 * The address to judge or key by: normaliseIp without a zone id, so
 * `[::ffff:10.0.0.1]` is judged as 10.0.0.1; text that is no address comes back
 * trimmed and lower-cased (it classifies as invalid).
 */
export function ipKey(ip: string): string {
  if (parseStrictIpv4(ip) >= 0) return ip;
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const pct = s.indexOf('%'); // zone id
  if (pct > 0) s = s.slice(0, pct);
  return normaliseIp(s) ?? s.toLowerCase();
}

/** RFC 5952 text of 16 network-order bytes: lower case, no leading zeros, the longest run (two or more, first on a tie) of zero groups as `::`. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * `s` as a 32-bit number when it is dotted IPv4 exactly as `net.isIP` accepts
 * it (four decimal octets, no leading zeros, nothing around), else -1.
 */
export function parseStrictIpv4(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let first = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) first = c;
      else if (first === 48) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

function v4Range(address: string, prefix: number): [number, number] {
  const base = parseStrictIpv4(address);
  const size = 2 ** (32 - prefix);
  return [base, base + size - 1];
}

// The builtin IPv4 ranges as numbers: most traffic is IPv4, and node's
// BlockList.check builds a SocketAddress per call (measured ~1.5 us).
const INTERNAL_V4_RANGES: ReadonlyArray<[number, number]> = INTERNAL_V4.map(([a, p]) => v4Range(a, p));

/** Bound of the memo of answers for addresses off the IPv4 fast path (or with configured networks). */
const MEMO_ENTRIES = 4096;

export function makeAddressClassifier(internalNetworks: readonly string[]): AddressClassifier {
  const builtin = new BlockList();
  for (const [a, p] of INTERNAL_V4) builtin.addSubnet(a, p, 'ipv4');
  for (const [a, p] of INTERNAL_V6) builtin.addSubnet(a, p, 'ipv6');
  const configured = new BlockList();
  let configuredCount = 0;
  for (const cidr of internalNetworks) {
    const c = parseCidr(cidr);
    // The config validator has already rejected bad networks; skip defensively.
    if (c.ok) {
      configured.addSubnet(c.address, c.prefix, c.family);
      configuredCount++;
    }
  }
  const slow = (ip: string): AddressClass => {
    const n = ipKey(ip);
    const v = isIP(n);
    if (v === 0) return 'invalid';
    const family = v === 4 ? 'ipv4' : 'ipv6';
    if (builtin.check(n, family)) return 'internal';
    if (configured.check(n, family)) return 'configured-internal';
    return 'external';
  };
  // Cleared when full: cheaper than LRU upkeep, and a stream's addresses repeat.
  const memo = new Map<string, AddressClass>();
  const memoised = (ip: string): AddressClass => {
    let c = memo.get(ip);
    if (c === undefined) {
      c = slow(ip);
      if (memo.size >= MEMO_ENTRIES) memo.clear();
      memo.set(ip, c);
    }
    return c;
  };
  return {
    classify(ip: string): AddressClass {
      const x = parseStrictIpv4(ip);
      if (x < 0) return memoised(ip);
      for (let i = 0; i < INTERNAL_V4_RANGES.length; i++) {
        const r = INTERNAL_V4_RANGES[i]!;
        if (x >= r[0] && x <= r[1]) return 'internal';
      }
      // Configured networks may be IPv6 ranges that hold mapped IPv4: let BlockList judge.
      return configuredCount === 0 ? 'external' : memoised(ip);
    },
  };
}
