import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import { getDomain } from 'tldts';
import type { RootDomainPolicy } from './baseline.js';

// The PSL ships inside tldts, so its version names the list we apply.
const tldtsVersion: string = (createRequire(import.meta.url)('tldts/package.json') as { version: string }).version;

export const LOCAL_PSL_VERSION = `tldts@${tldtsVersion}`;

export const DEFAULT_POLICY: RootDomainPolicy = Object.freeze({
  allowPrivateDomains: true,
  pslVersion: LOCAL_PSL_VERSION,
});

/** Names that never leave the site, whatever the PSL says (DETECTION.md section 2). */
export const BUILTIN_INTERNAL_SUFFIXES: readonly string[] = [
  'local',
  'internal',
  'lan',
  'home.arpa',
  'corp',
  'localhost',
  'localdomain',
  'intranet',
  'private',
];

export type RootDomainResult =
  | { ok: true; hostname: string; rootDomain: string }
  | { ok: false; reason: 'empty' | 'ip-literal' | 'single-label' | 'internal-name' | 'invalid-name' | 'no-registrable-domain' };

/** Lower-case, trim the trailing dot, punycode an IDN. Returns '' for a name that cannot be a DNS name. */
export function normaliseHostname(raw: string): string {
  let h = raw.trim().toLowerCase();
  while (h.endsWith('.')) h = h.slice(0, -1);
  if (h === '') return '';
  if (/^[a-z0-9.-]+$/.test(h)) return h;
  return domainToASCII(h);
}

function normaliseSuffix(s: string): string {
  return s.toLowerCase().replace(/^\.+|\.+$/g, '');
}

/** Each suffix normalised once, with its leading dot, for the per-name test. */
interface Suffix {
  bare: string;
  dotted: string;
}

function compileSuffixes(list: readonly string[]): Suffix[] {
  const out: Suffix[] = [];
  for (const s of list) {
    const bare = normaliseSuffix(s);
    if (bare !== '') out.push({ bare, dotted: '.' + bare });
  }
  return out;
}

const BUILTIN_SUFFIXES: readonly Suffix[] = compileSuffixes(BUILTIN_INTERNAL_SUFFIXES);

function matchesSuffix(hostname: string, list: readonly Suffix[]): boolean {
  for (let i = 0; i < list.length; i++) {
    const s = list[i]!;
    if (hostname === s.bare || hostname.endsWith(s.dotted)) return true;
  }
  return false;
}

export function isInternalName(hostname: string, extraSuffixes: readonly string[]): boolean {
  return matchesSuffix(hostname, BUILTIN_SUFFIXES) || (extraSuffixes.length > 0 && matchesSuffix(hostname, compileSuffixes(extraSuffixes)));
}

const NO_SUFFIXES: readonly string[] = [];

/**
 * The registrable domain of `raw` under `policy`. The caller checks that the
 * policy's PSL is one it can apply (see `policyProblem`).
 */
export function rootDomainOf(
  raw: string,
  policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>,
  internalSuffixes: readonly string[] = NO_SUFFIXES,
): RootDomainResult {
  return resolve(raw, policy.allowPrivateDomains, compileSuffixes(internalSuffixes));
}

function resolve(raw: string, allowPrivateDomains: boolean, extra: readonly Suffix[]): RootDomainResult {
  const bare = raw.trim().replace(/^\[|\]$/g, '');
  if (bare === '') return { ok: false, reason: 'empty' };
  if (isIP(bare) !== 0) return { ok: false, reason: 'ip-literal' };
  const hostname = normaliseHostname(bare);
  if (hostname === '' || hostname.length > 253 || hostname.includes('..')) return { ok: false, reason: 'invalid-name' };
  if (!hostname.includes('.')) return { ok: false, reason: 'single-label' };
  if (matchesSuffix(hostname, BUILTIN_SUFFIXES) || matchesSuffix(hostname, extra)) return { ok: false, reason: 'internal-name' };
  const rootDomain = getDomain(hostname, { allowPrivateDomains, validateHostname: true });
  if (rootDomain === null || rootDomain === '') return { ok: false, reason: 'no-registrable-domain' };
  return { ok: true, hostname, rootDomain };
}

export type RootDomainResolver = (raw: string, policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>) => RootDomainResult;

/**
 * `rootDomainOf` with the internal suffixes fixed when made and a bounded memo
 * of answers by raw name: a host asks for the same few names all day, and
 * tldts plus the checks cost ~1 us a name. Answers are frozen and shared.
 */
export function makeRootDomainResolver(
  internalSuffixes: readonly string[],
  entriesPerGeneration = 65_536,
): RootDomainResolver & { uncached: RootDomainResolver } {
  const extra = compileSuffixes(internalSuffixes);
  const memos = [new GenerationalMemo(entriesPerGeneration), new GenerationalMemo(entriesPerGeneration)] as const;
  const uncached: RootDomainResolver = (raw, policy) => Object.freeze(resolve(raw, policy.allowPrivateDomains, extra));
  // Without the memo, for callers that keep each answer themselves (the detector's per-id caches).
  return Object.assign(
    (raw: string, policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>): RootDomainResult => {
      const memo = memos[policy.allowPrivateDomains ? 1 : 0];
      let r = memo.get(raw);
      if (r === undefined) {
        r = uncached(raw, policy);
        memo.set(raw, r);
      }
      return r;
    },
    { uncached },
  );
}

/** Two maps: a full young one becomes the old one, so recently used names survive at O(1) upkeep. */
class GenerationalMemo {
  private young = new Map<string, RootDomainResult>();
  private old = new Map<string, RootDomainResult>();

  constructor(private readonly entries: number) {}

  get(key: string): RootDomainResult | undefined {
    const hit = this.young.get(key);
    if (hit !== undefined) return hit;
    const aged = this.old.get(key);
    if (aged !== undefined) this.set(key, aged);
    return aged;
  }

  set(key: string, value: RootDomainResult): void {
    if (this.young.size >= this.entries) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}

/**
 * Why this endpoint cannot apply a baseline's root-domain policy, or null when it can.
 * Same tldts major means the same list format and semantics; a minor PSL drift is
 * tolerated because refusing every baseline after a library patch would leave a
 * fleet blind.
 */
export function policyProblem(policy: RootDomainPolicy): string | null {
  const m = /^tldts@(\d+)\./.exec(policy.pslVersion);
  if (m === null) return `unknown Public Suffix List "${policy.pslVersion}" (this endpoint applies ${LOCAL_PSL_VERSION})`;
  const localMajor = /^(\d+)\./.exec(tldtsVersion)?.[1];
  if (m[1] !== localMajor) {
    return `Public Suffix List ${policy.pslVersion} is not compatible with this endpoint's ${LOCAL_PSL_VERSION}`;
  }
  return null;
}
