// Deterministic synthetic baseline data for the baseline benchmarks: combo i of
// n is computed from i alone, so the reader (a child process) can ask for any
// combo without the builder's data in memory.

export const BENCH_DAY0_MS = Date.UTC(2026, 9, 1);
export const BENCH_DAYS = 30;
export const BENCH_ORGS = 2_000;
const PORTS = [443, 80, 8443, 22, 53, 993, 5222, 3478] as const;
const ROOTS = 200_000; // 2^6 * 5^5: coprime with the prime 7919 below

export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85eb_ca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2_ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Distinct processes for n combos: about 20 combos a process. */
export function processCountFor(combos: number): number {
  return Math.max(1, Math.floor(combos / 20));
}

/** A 64-hex-digit sha256-like string for process j. */
export function shaHex(j: number): string {
  let s = '';
  for (let k = 0; k < 8; k++)
    s += mix32(j * 8 + k + 0x9e37_79b9)
      .toString(16)
      .padStart(8, '0');
  return s;
}

export function rootName(r: number): string {
  return `r${r.toString(36)}.example${r % 10}.com`;
}

export interface ComboParts {
  sha: number;
  root: number;
  port: number;
}

/** Combo i of a set of `combos`; distinct for distinct i. */
export function comboParts(i: number, combos: number, out: ComboParts): ComboParts {
  const shas = processCountFor(combos);
  const sha = i % shas;
  const rest = Math.floor(i / shas);
  out.sha = sha;
  out.root = (rest * 7919 + sha * 31) % ROOTS;
  out.port = PORTS[(rest + sha) % PORTS.length] as number;
  return out;
}

/** How many orgs saw combo i: most one, a long tail many (about 3 on average). */
export function observersOf(i: number): number {
  const h = mix32(i ^ 0x5bd1_e995);
  const u = h / 4_294_967_296;
  if (u < 0.7) return 1;
  if (u < 0.9) return 2 + (h % 2);
  if (u < 0.98) return 4 + (h % 17);
  return 21 + (h % 40);
}
