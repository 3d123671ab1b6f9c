// The keys that name the parts of a large baseline an endpoint fetches, shared
// by the server that publishes them and the endpoint's bucket cache:
//   a bucket  `0a1b`            the processes whose sha256 starts with the prefix,
//                               and the combos of the light ones among them;
//   a cell    `<sha256>-B-C`    for a heavy process, the combos whose root-domain
//                               hash has C as its top B bits.

/** 32-bit FNV-1a of a root domain (unsigned): orders a heavy process's combos into cells. */
export function rootHash(root: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < root.length; i++) {
    h ^= root.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export const MAX_CELL_BITS = 16;

export function cellOf(rh: number, bits: number): number {
  return bits <= 0 ? 0 : rh >>> (32 - bits);
}

export function cellKey(sha256: string, bits: number, cell: number): string {
  return `${sha256}-${bits}-${cell.toString(16)}`;
}

export type ParsedKey =
  { kind: 'bucket'; prefix: string } | { kind: 'cell'; sha256: string; bits: number; cell: number; rhLo: number; rhHi: number };

const CELL_RE = /^([0-9a-f]{64})-(\d{1,2})-([0-9a-f]{1,4})$/;

/** A bucket prefix of `hexChars` digits or a cell key; null when it is neither. */
export function parseKey(key: string, hexChars: number): ParsedKey | null {
  if (key.length === hexChars && /^[0-9a-f]+$/.test(key)) return { kind: 'bucket', prefix: key };
  const m = CELL_RE.exec(key);
  if (m === null) return null;
  const bits = Number(m[2]);
  const cell = parseInt(m[3] as string, 16);
  if (bits < 1 || bits > MAX_CELL_BITS || cell >= 2 ** bits) return null;
  const width = 2 ** (32 - bits);
  return { kind: 'cell', sha256: m[1] as string, bits, cell, rhLo: cell * width, rhHi: (cell + 1) * width };
}

/** Cell bits of a process with `combos` combos: cells of about `perCell` combos once it has more than `heavyAbove`. */
export function cellBitsFor(combos: number, heavyAbove: number, perCell: number): number {
  if (combos <= heavyAbove) return 0;
  return Math.min(MAX_CELL_BITS, Math.max(1, Math.ceil(Math.log2(combos / perCell))));
}

/** The sha256 range of a hex prefix: [lo, hi), hi null when the prefix is all f. */
export function prefixRange(prefix: string): { lo: Buffer; hi: Buffer | null } {
  const lo = Buffer.from(prefix.padEnd(64, '0'), 'hex');
  const n = BigInt(`0x${prefix}`) + 1n;
  if (n >= 16n ** BigInt(prefix.length)) return { lo, hi: null };
  return { lo, hi: Buffer.from(n.toString(16).padStart(prefix.length, '0').padEnd(64, '0'), 'hex') };
}
