// LSD radix sort of (hi, lo) unsigned 32-bit key pairs carrying an index, for
// ordering millions of rows before insertion; a comparator sort of 10M indices
// in JS takes many seconds, this takes a few hundred milliseconds.

export interface KeyedRows {
  hi: Uint32Array;
  lo: Uint32Array;
  idx: Uint32Array;
}

/** Sorts by hi, then lo, ascending. Returns the sorted arrays (the inputs may be reused as scratch). */
export function radixSort(rows: KeyedRows): KeyedRows {
  const n = rows.idx.length;
  let { hi, lo, idx } = rows;
  let hi2: Uint32Array = new Uint32Array(n);
  let lo2: Uint32Array = new Uint32Array(n);
  let idx2: Uint32Array = new Uint32Array(n);
  const counts = new Uint32Array(65_536);
  // Digits: lo low 16 bits, lo high 16, hi low 16, hi high 16.
  for (let pass = 0; pass < 4; pass++) {
    const src = pass < 2 ? lo : hi;
    const shift = pass % 2 === 0 ? 0 : 16;
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const d = ((src[i] as number) >>> shift) & 0xffff;
      counts[d] = (counts[d] as number) + 1;
    }
    if (n === 0 || counts[((src[0] as number) >>> shift) & 0xffff] === n) continue; // one digit value: order unchanged
    let sum = 0;
    for (let d = 0; d < 65_536; d++) {
      const c = counts[d] as number;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const d = ((src[i] as number) >>> shift) & 0xffff;
      const to = counts[d] as number;
      counts[d] = to + 1;
      hi2[to] = hi[i] as number;
      lo2[to] = lo[i] as number;
      idx2[to] = idx[i] as number;
    }
    [hi, hi2] = [hi2, hi];
    [lo, lo2] = [lo2, lo];
    [idx, idx2] = [idx2, idx];
  }
  return { hi, lo, idx };
}
