// The line scanner's slot layout is declared once in TypeScript
// (scanned-slots.ts) and once in C (line_scan.h); the addon exports its own and
// is refused, with the first difference named, unless the two agree in full.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { layoutMismatch, SCANNED_LAYOUT, type ScannedLayout } from '../../../../src/sources/replay/fast/scanned-slots.js';
import { loadLineScanner } from '../../../../src/sources/replay/fast/native-scan.js';
import { REPO } from '../../../support/cli.js';

const ADDON = join(REPO, 'native-events', 'build', 'line_scan.node');

/** A copy of the layout with one change made to it. */
function changed(change: (l: ScannedLayout) => void, from: ScannedLayout = SCANNED_LAYOUT): ScannedLayout {
  const l = structuredClone(from);
  change(l);
  return l;
}

describe('scanned line layout check', () => {
  it('accepts its own layout', () => {
    expect(layoutMismatch(structuredClone(SCANNED_LAYOUT))).toBeNull();
  });

  it('names the first slot that differs', () => {
    expect(
      layoutMismatch(
        changed((l) => {
          l.slots.ip = 7;
          l.slots.port = 6;
        }),
      ),
    ).toBe('slot ip is 7 in the addon, 6 here');
    expect(layoutMismatch(changed((l) => delete l.slots.hostname))).toBe('slot hostname is undefined in the addon, 8 here');
    expect(layoutMismatch(changed((l) => (l.slots.extra = 12)))).toBe('slot extra is in the addon, not here');
  });

  it('checks the stride, kinds, flags and new strings per line too', () => {
    expect(layoutMismatch(changed((l) => (l.stride = 13)))).toBe('stride is 13 in the addon, 12 here');
    expect(layoutMismatch(changed((l) => (l.kinds.nul = 4)))).toBe('kind nul is 4 in the addon, 3 here');
    expect(layoutMismatch(changed((l) => (l.flags.inbound = 8)))).toBe('flag inbound is 8 in the addon, 2 here');
    expect(layoutMismatch(changed((l) => (l.maxNewPerLine = 7)))).toBe('new strings per line is 7 in the addon, 6 here');
    expect(layoutMismatch(undefined)).toBe('the addon exports no layout');
    expect(layoutMismatch({ stride: 12 })).toBe("the addon's layout has no slots");
  });

  // In CI the addon is built, so a missing one fails here rather than skipping.
  describe.skipIf(!existsSync(ADDON) && process.env.CI !== 'true')('the built addon', () => {
    const exported = (createRequire(import.meta.url)(ADDON) as { layout: unknown }).layout as ScannedLayout;

    it('exports the layout of line_scan.h, which agrees with this one', () => {
      expect(exported).toEqual(SCANNED_LAYOUT);
      expect(layoutMismatch(exported)).toBeNull();
      expect(loadLineScanner().ok).toBe(true);
    });

    it('would be refused with one slot moved', () => {
      expect(layoutMismatch(changed((l) => (l.slots.sha256 = 11), exported))).toBe('slot sha256 is 11 in the addon, 5 here');
    });
  });
});
