// Strings by their bytes, for the NDJSON fast path: the same sha256, host id,
// hostname or path on a million lines becomes one string object instead of a
// million copies. Downstream maps keyed on them then find the hash already
// computed and compare pointers, and a line allocates almost no strings.
// Direct-mapped and fixed-size: a newcomer overwrites its slot, so memory is
// bounded whatever the input.

/** Buffer's own latin1 decoder (toString('latin1') reaches it through two JS frames). */
export type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Longer values are not interned: command lines and the like rarely repeat byte for byte. */
export const MAX_INTERNED_BYTES = 256;
/** Bytes hashed at each end of a value; the full compare on a hit makes up for the rest. */
const HASHED_HEAD = 24;
const HASHED_TAIL = 8;

export class ByteInterner {
  hits = 0;
  misses = 0;
  private readonly mask: number;
  private readonly strings: string[];
  private readonly hashes: Int32Array;

  /** `slots` is rounded up to a power of two. */
  constructor(slots: number) {
    let n = 1;
    while (n < slots) n *= 2;
    this.mask = n - 1;
    this.strings = new Array<string>(n).fill('');
    this.hashes = new Int32Array(n);
  }

  /** The string of ASCII bytes[start, end), the same object as last time when still held. */
  intern(b: Latin1Buffer, start: number, end: number): string {
    const len = end - start;
    if (len > MAX_INTERNED_BYTES) return b.latin1Slice(start, end);
    // FNV-1a over the head and tail bytes and the length.
    let h = 0x811c9dc5 ^ len;
    const head = len < HASHED_HEAD + HASHED_TAIL ? end : start + HASHED_HEAD;
    for (let j = start; j < head; j++) h = Math.imul(h ^ b[j]!, 0x01000193);
    for (let j = Math.max(head, end - HASHED_TAIL); j < end; j++) h = Math.imul(h ^ b[j]!, 0x01000193);
    h ^= h >>> 15;
    const slot = h & this.mask;
    const s = this.strings[slot]!;
    if (this.hashes[slot] === h && s.length === len) {
      let j = 0;
      while (j < len && s.charCodeAt(j) === b[start + j]) j++;
      if (j === len) {
        this.hits++;
        return s;
      }
    }
    this.misses++;
    const fresh = b.latin1Slice(start, end);
    this.strings[slot] = fresh;
    this.hashes[slot] = h;
    return fresh;
  }
}
