// Where the native line scanner (native-events/line-scan/line_scan.h) puts the
// fields of a scanned line in its Int32Array, declared here once for
// TypeScript. Only this folder reads the slots (scanned-lines.ts, the view the
// rest of rarecon uses, and the reader's own checks). The addon exports its
// own layout, built from line_scan.h's macros, and native-scan.ts refuses an
// addon whose layout differs from this one in anything (layoutMismatch).

/** Int32 slots per scanned line: line i's fields are lines[i * LINE_STRIDE + L_...]. */
export const LINE_STRIDE = 12;
/** Offset of the line's first byte in the chunk. */
export const L_START = 0;
/** Offset just after its last byte (a trailing CR and the newline left out). */
export const L_END = 1;
/** KIND_... */
export const L_KIND = 2;
/** host.id */
export const L_HOST = 3;
/** host.org; -1 when absent or null. */
export const L_ORG = 4;
/** process.sha256 (lower-case hex); -1 when absent or null. */
export const L_SHA = 5;
/** remote.ip as written. */
export const L_IP = 6;
export const L_PORT = 7;
/** remote.hostname as written; -1 when absent or null. */
export const L_NAME = 8;
/** FLAG_... */
export const L_FLAGS = 9;
/** local.ip as written; -1 without a local endpoint. */
export const L_LOCAL_IP = 10;
/** Always 0. */
export const L_RESERVED = 11;

export const KIND_DECLINED = 0;
export const KIND_CONNECTION = 1;
export const KIND_TOO_LONG = 2;
export const KIND_NUL = 3;

export const FLAG_UDP = 1;
export const FLAG_INBOUND = 2;
export const FLAG_INJECTED = 4;

/** An accepted line brings at most this many new strings (host, org, sha, ip, hostname, local ip). */
export const MAX_NEW_PER_LINE = 6;

/** A layout as the addon exports it (`layout`), in this shape. */
export interface ScannedLayout {
  stride: number;
  /** Slot name -> offset within a line. */
  slots: Record<string, number>;
  kinds: Record<string, number>;
  flags: Record<string, number>;
  maxNewPerLine: number;
}

/** The layout this version reads, with the names line_scan.c exports. */
export const SCANNED_LAYOUT: ScannedLayout = Object.freeze({
  stride: LINE_STRIDE,
  slots: Object.freeze({
    start: L_START,
    end: L_END,
    kind: L_KIND,
    host: L_HOST,
    org: L_ORG,
    sha256: L_SHA,
    ip: L_IP,
    port: L_PORT,
    hostname: L_NAME,
    flags: L_FLAGS,
    localIp: L_LOCAL_IP,
    reserved: L_RESERVED,
  }),
  kinds: Object.freeze({ declined: KIND_DECLINED, connection: KIND_CONNECTION, tooLong: KIND_TOO_LONG, nul: KIND_NUL }),
  flags: Object.freeze({ udp: FLAG_UDP, inbound: FLAG_INBOUND, injected: FLAG_INJECTED }),
  maxNewPerLine: MAX_NEW_PER_LINE,
});

const GROUPS = [
  ['slots', 'slot'],
  ['kinds', 'kind'],
  ['flags', 'flag'],
] as const;

/**
 * The first way `layout` (what an addon exports) differs from `expected`, as
 * a short reason naming it (e.g. `slot ip is 7 in the addon, 6 here`); null
 * when they agree in everything: slots, stride, kinds, flags, new strings per line.
 */
export function layoutMismatch(layout: unknown, expected: ScannedLayout = SCANNED_LAYOUT): string | null {
  if (typeof layout !== 'object' || layout === null) return 'the addon exports no layout';
  const got = layout as Partial<Record<keyof ScannedLayout, unknown>>;
  const differs = (what: string, value: unknown, want: number): string => `${what} is ${String(value)} in the addon, ${want} here`;
  for (const [group, what] of GROUPS) {
    const g = got[group];
    if (typeof g !== 'object' || g === null) return `the addon's layout has no ${group}`;
    const have = g as Record<string, unknown>;
    for (const [name, want] of Object.entries(expected[group])) {
      if (have[name] !== want) return differs(`${what} ${name}`, have[name], want);
    }
    for (const name of Object.keys(have)) {
      if (!Object.hasOwn(expected[group], name)) return `${what} ${name} is in the addon, not here`;
    }
    if (group === 'slots' && got.stride !== expected.stride) return differs('stride', got.stride, expected.stride);
  }
  if (got.maxNewPerLine !== expected.maxNewPerLine) return differs('new strings per line', got.maxNewPerLine, expected.maxNewPerLine);
  return null;
}
