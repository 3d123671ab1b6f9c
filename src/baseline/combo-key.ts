// The integer key of a combo (sha256, root domain, port) in the combo table.
//
// cyrb53 (bryc, public domain): two 32-bit multiply-xorshift lanes, cheap in JS
// because Math.imul stays in integer registers. It is fed code unit by code unit
// so no joined string is ever built. The stream is, exactly:
//   the 64 hex digits of the sha256 in lower case, 0,
//   the root domain's UTF-16 code units as given, 0,
//   the port as one code unit.
// key = the 53 low bits of the 64-bit result (h2's low 21 bits above h1), kept
// below 2^53 so it is exact as a JS number and a SQLite INTEGER; chk = h2's top 11
// bits, stored beside the key to tell apart an absent combo that shares a key.
// Not cryptographic: the builder detects colliding stored combos and keeps them
// exactly (format.ts).

/** h1, h2 of the last hashCombo / hashComboBytes call; shared to avoid returning an object. */
export const comboHash: Int32Array = new Int32Array(2);

const SEPARATOR = 0;

function finish(a: number, b: number): void {
  let h1 = Math.imul(a ^ (a >>> 16), 2246822507);
  h1 ^= Math.imul(b ^ (b >>> 13), 3266489909);
  let h2 = Math.imul(b ^ (b >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  comboHash[0] = h1;
  comboHash[1] = h2;
}

const SEED_1 = 0xdeadbeef;
const SEED_2 = 0x41c6ce57;

/** Hashes a combo given the sha256 as hex (upper-case digits are folded to lower). Result in comboHash. */
export function hashCombo(sha256Hex: string, rootDomain: string, port: number): void {
  let h1 = SEED_1;
  let h2 = SEED_2;
  for (let i = 0; i < sha256Hex.length; i++) {
    let c = sha256Hex.charCodeAt(i);
    if (c >= 65 && c <= 70) c += 32;
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ SEPARATOR, 2654435761);
  h2 = Math.imul(h2 ^ SEPARATOR, 1597334677);
  for (let i = 0; i < rootDomain.length; i++) {
    const c = rootDomain.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ SEPARATOR, 2654435761);
  h2 = Math.imul(h2 ^ SEPARATOR, 1597334677);
  h1 = Math.imul(h1 ^ port, 2654435761);
  h2 = Math.imul(h2 ^ port, 1597334677);
  finish(h1, h2);
}

function hexDigitCode(nibble: number): number {
  return nibble < 10 ? 48 + nibble : 87 + nibble;
}

/** The same hash with the sha256 given as 32 raw bytes (the builder's form). Result in comboHash. */
export function hashComboBytes(sha: Uint8Array, offset: number, rootDomain: string, port: number): void {
  let h1 = SEED_1;
  let h2 = SEED_2;
  for (let i = 0; i < 32; i++) {
    const b = sha[offset + i] as number;
    const c1 = hexDigitCode(b >>> 4);
    h1 = Math.imul(h1 ^ c1, 2654435761);
    h2 = Math.imul(h2 ^ c1, 1597334677);
    const c2 = hexDigitCode(b & 15);
    h1 = Math.imul(h1 ^ c2, 2654435761);
    h2 = Math.imul(h2 ^ c2, 1597334677);
  }
  h1 = Math.imul(h1 ^ SEPARATOR, 2654435761);
  h2 = Math.imul(h2 ^ SEPARATOR, 1597334677);
  for (let i = 0; i < rootDomain.length; i++) {
    const c = rootDomain.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ SEPARATOR, 2654435761);
  h2 = Math.imul(h2 ^ SEPARATOR, 1597334677);
  h1 = Math.imul(h1 ^ port, 2654435761);
  h2 = Math.imul(h2 ^ port, 1597334677);
  finish(h1, h2);
}

const TWO_32 = 4_294_967_296;

/** The table key from a hash: 53 bits, or fewer when a file says so (tests force collisions that way). */
export function comboKey(h1: number, h2: number, bits: number): number {
  const full = (h2 & 0x1f_ffff) * TWO_32 + (h1 >>> 0);
  return bits >= 53 ? full : full % 2 ** bits;
}

/** The 11 check bits stored beside the key. */
export function comboCheck(h2: number): number {
  return h2 >>> 21;
}

/** Convenience for tests and tools: key and check of one combo. */
export function comboKeyOf(sha256Hex: string, rootDomain: string, port: number, bits = 53): { key: number; chk: number } {
  hashCombo(sha256Hex, rootDomain, port);
  const h1 = comboHash[0] as number;
  const h2 = comboHash[1] as number;
  return { key: comboKey(h1, h2, bits), chk: comboCheck(h2) };
}
