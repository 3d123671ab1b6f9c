// Integer mixing for the builder's open-addressing tables (murmur3 finaliser).

export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85eb_ca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2_ae35);
  x ^= x >>> 16;
  return x;
}

export function mix3(a: number, b: number, c: number): number {
  return mix32(Math.imul(a, 0x9e37_79b1) ^ mix32(Math.imul(b, 0x85eb_ca77) ^ Math.imul(c, 0xc2b2_ae3d) ^ 0x2545_f491));
}

/** Next power of two >= n (n >= 1). */
export function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function grownInt32(a: Int32Array, length: number, fill?: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(length);
  b.set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

export function grownUint16(a: Uint16Array, length: number): Uint16Array<ArrayBuffer> {
  const b = new Uint16Array(length);
  b.set(a);
  return b;
}
