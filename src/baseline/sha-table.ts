// Interns sha256 values to dense ids, holding each as eight 32-bit words (no
// string kept alive) in one growing array. Sightings arrive grouped, so the
// last string seen is checked first.
import { randomInt } from 'node:crypto';
import { HEX_VALUE, SHA256_BYTES, SHA256_HEX_LENGTH } from './hex.js';
import { mix32, pow2AtLeast } from './int-hash.js';

const MAX_LOAD = 0.6;
const WORDS = 8;

export class ShaTable {
  /** Distinct sha256 values interned; ids are 0..count-1. */
  count = 0;
  /** id -> 8 words at id * 8, each 8 hex digits read big-endian. */
  private words = new Int32Array(1024 * WORDS);
  private slots = new Int32Array(2048); // id + 1, 0 = empty
  private mask = 2047;
  private readonly scratch = new Int32Array(WORDS);
  private lastHex = '';
  private lastId = -1;
  // Seeded so that crafted sha256 values cannot pile into one probe chain.
  private readonly seed = randomInt(0x7fff_ffff);

  get byteLength(): number {
    return this.words.byteLength + this.slots.byteLength;
  }

  private hashOf(w0: number, w1: number): number {
    return mix32(mix32(w0 ^ this.seed) ^ w1);
  }

  /** Id of the sha256 (64 hex digits, either case), interning it; -1 when it is not a sha256. */
  intern(hex: string): number {
    if (hex === this.lastHex) return this.lastId;
    if (hex.length !== SHA256_HEX_LENGTH) return -1;
    const s = this.scratch;
    let bad = 0;
    for (let k = 0, c = 0; k < WORDS; k++) {
      let w = 0;
      for (let j = 0; j < 8; j++, c++) {
        const v = HEX_VALUE[hex.charCodeAt(c)] as number;
        bad |= v;
        w = (w << 4) | v;
      }
      s[k] = w;
    }
    if (bad < 0) return -1;
    const words = this.words;
    const s0 = s[0] as number;
    const s1 = s[1] as number;
    const mask = this.mask;
    let i = this.hashOf(s0, s1) & mask;
    for (;;) {
      const slot = this.slots[i] as number;
      if (slot === 0) break;
      const b = (slot - 1) * WORDS;
      if (
        words[b] === s0 &&
        words[b + 1] === s1 &&
        words[b + 2] === s[2] &&
        words[b + 3] === s[3] &&
        words[b + 4] === s[4] &&
        words[b + 5] === s[5] &&
        words[b + 6] === s[6] &&
        words[b + 7] === s[7]
      ) {
        this.lastHex = hex;
        this.lastId = slot - 1;
        return slot - 1;
      }
      i = (i + 1) & mask;
    }
    const id = this.count++;
    if ((id + 1) * WORDS > words.length) {
      const grown = new Int32Array(words.length * 2);
      grown.set(words);
      this.words = grown;
    }
    this.words.set(s, id * WORDS);
    this.slots[i] = id + 1;
    if (this.count > (mask + 1) * MAX_LOAD) this.rehash();
    this.lastHex = hex;
    this.lastId = id;
    return id;
  }

  /** The 32 raw bytes of every interned sha256, id * 32 onwards (a fresh array). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.count * SHA256_BYTES);
    const words = this.words;
    for (let i = 0, n = this.count * WORDS; i < n; i++) {
      const w = words[i] as number;
      const o = i * 4;
      out[o] = w >>> 24;
      out[o + 1] = (w >>> 16) & 0xff;
      out[o + 2] = (w >>> 8) & 0xff;
      out[o + 3] = w & 0xff;
    }
    return out;
  }

  private rehash(): void {
    const cap = pow2AtLeast((this.mask + 1) * 2);
    const mask = cap - 1;
    const slots = new Int32Array(cap);
    const words = this.words;
    for (let id = 0; id < this.count; id++) {
      let i = this.hashOf(words[id * WORDS] as number, words[id * WORDS + 1] as number) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = id + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
