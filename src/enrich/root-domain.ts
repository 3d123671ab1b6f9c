import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import { getDomain } from 'tldts';
import type { RootDomainPolicy } from '../model/baseline.js';

// The PSL ships inside tldts, so its version names the list we apply.
const tldtsVersion: string = (createRequire(import.meta.url)('tldts/package.json') as { version: string }).version;

export const LOCAL_PSL_VERSION = `tldts@${tldtsVersion}`;

export const DEFAULT_POLICY: RootDomainPolicy = Object.freeze({
  allowPrivateDomains: true,
  pslVersion: LOCAL_PSL_VERSION,
});

/** Names that never leave the site, whatever the PSL says (DETECTION.md section 2). */
export const BUILTIN_INTERNAL_SUFFIXES: readonly string[] = ['local', 'internal', 'lan', 'home.arpa', 'corp', 'localhost', 'localdomain', 'intranet', 'private'];

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

export function isInternalName(hostname: string, extraSuffixes: readonly string[]): boolean {
  for (const list of [BUILTIN_INTERNAL_SUFFIXES, extraSuffixes]) {
    for (const s of list) {
      const suffix = s.toLowerCase().replace(/^\.+|\.+$/g, '');
      if (suffix === '') continue;
      if (hostname === suffix || hostname.endsWith('.' + suffix)) return true;
    }
  }
  return false;
}

/**
 * The registrable domain of `raw` under `policy`. The caller checks that the
 * policy's PSL is one it can apply (see `policyProblem`).
 */
export function rootDomainOf(
  raw: string,
  policy: Pick<RootDomainPolicy, 'allowPrivateDomains'>,
  internalSuffixes: readonly string[] = [],
): RootDomainResult {
  const bare = raw.trim().replace(/^\[|\]$/g, '');
  if (bare === '') return { ok: false, reason: 'empty' };
  if (isIP(bare) !== 0) return { ok: false, reason: 'ip-literal' };
  const hostname = normaliseHostname(bare);
  if (hostname === '' || hostname.length > 253 || hostname.includes('..')) return { ok: false, reason: 'invalid-name' };
  if (!hostname.includes('.')) return { ok: false, reason: 'single-label' };
  if (isInternalName(hostname, internalSuffixes)) return { ok: false, reason: 'internal-name' };
  const rootDomain = getDomain(hostname, { allowPrivateDomains: policy.allowPrivateDomains, validateHostname: true });
  if (rootDomain === null || rootDomain === '') return { ok: false, reason: 'no-registrable-domain' };
  return { ok: true, hostname, rootDomain };
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
