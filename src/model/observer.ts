// Who counts as one observer, per the baseline's unit (DETECTION.md section 4):
// the one rule for the endpoint's sightings (detect/sightings.ts), the
// baseline builder and the server's aggregation.
import { dayStart, type ObserverUnit } from './baseline.js';

const MAX_DATE_MS = 8.64e15;

/**
 * org -> the org id; host -> `org/host`; day -> the ISO date of the day of
 * `timeMs` (any time in the day, its start included: a standalone host whose
 * only history is its own counts each day once).
 * Returns '' for a day unit with an invalid time; the builder rejects an empty observer.
 */
export function observerId(unit: ObserverUnit, hostOrg: string, hostId: string, timeMs: number): string {
  switch (unit) {
    case 'org':
      return hostOrg;
    case 'host':
      return `${hostOrg}/${hostId}`;
    case 'day':
      if (!Number.isFinite(timeMs) || Math.abs(timeMs) > MAX_DATE_MS) return '';
      return new Date(dayStart(timeMs)).toISOString().slice(0, 10);
  }
}
