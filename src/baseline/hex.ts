// Hex sha256 <-> 32 raw bytes without temporaries: lookups on the hot path decode
// into a buffer they own instead of calling Buffer.from(hex).

/** Value of each UTF-16 code unit as a hex digit, -1 when it is not one. */
export const HEX_VALUE: Int8Array = (() => {
  const t = new Int8Array(65_536).fill(-1);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[65 + i] = 10 + i;
    t[97 + i] = 10 + i;
  }
  return t;
})();

export const SHA256_HEX_LENGTH = 64;
export const SHA256_BYTES = 32;

/** Decodes a 64-digit hex sha256 (either case) into out[offset..offset+32). False when it is not one. */
export function decodeSha256(hex: string, out: Uint8Array, offset = 0): boolean {
  if (hex.length !== SHA256_HEX_LENGTH) return false;
  for (let i = 0; i < SHA256_BYTES; i++) {
    const hi = HEX_VALUE[hex.charCodeAt(2 * i)] as number;
    const lo = HEX_VALUE[hex.charCodeAt(2 * i + 1)] as number;
    if ((hi | lo) < 0) return false;
    out[offset + i] = (hi << 4) | lo;
  }
  return true;
}

/** Lower-case hex of 32 bytes at offset. */
export function encodeSha256(bytes: Uint8Array, offset = 0): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, SHA256_BYTES).toString('hex');
}
