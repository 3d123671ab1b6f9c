// Operator exclusions (DETECTION.md section 2.5). Each kind is counted by the caller.
import type { Exclusions } from '../config/defaults.js';
import type { ConnectionEvent } from '../model/records.js';

export type ExclusionKind = 'domain-suffix' | 'sha256' | 'signer' | 'port' | 'process-path';

export interface CompiledExclusions {
  /** Nothing is excluded: match() is always null. */
  readonly empty: boolean;
  match(e: ConnectionEvent, hostname: string, rootDomain: string): ExclusionKind | null;
}

/** `*` in a process path matches any run of characters; otherwise the path must match whole. */
function pathMatcher(patterns: readonly string[]): (path: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) {
    if (p.includes('*')) {
      const re = p
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*');
      globs.push(new RegExp(`^${re}$`, 'i'));
    } else {
      exact.add(p.toLowerCase());
    }
  }
  return (path) => exact.has(path.toLowerCase()) || globs.some((g) => g.test(path));
}

export function compileExclusions(x: Exclusions): CompiledExclusions {
  const suffixes = x.domainSuffixes.map((s) => s.toLowerCase().replace(/^\.+|\.+$/g, '')).filter((s) => s !== '');
  const shas = new Set(x.sha256.map((s) => s.toLowerCase()));
  const signers = x.signers.map((s) => s.toLowerCase());
  const ports = new Set(x.ports);
  const pathMatches = pathMatcher(x.processPaths);
  const empty = suffixes.length === 0 && shas.size === 0 && signers.length === 0 && ports.size === 0 && x.processPaths.length === 0;

  return {
    empty,
    match(e, hostname, rootDomain) {
      if (empty) return null;
      for (const s of suffixes) {
        if (hostname === s || hostname.endsWith('.' + s) || rootDomain === s) return 'domain-suffix';
      }
      if (e.process.sha256 !== null && shas.has(e.process.sha256)) return 'sha256';
      const subject = e.process.signer.subject?.toLowerCase();
      const vendor = e.process.signer.vendor?.toLowerCase();
      if (signers.some((s) => s === subject || s === vendor)) return 'signer';
      if (ports.has(e.remote.port)) return 'port';
      if (e.process.path !== null && pathMatches(e.process.path)) return 'process-path';
      return null;
    },
  };
}
