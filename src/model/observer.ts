// Who counts as one observer, per the baseline's unit (DETECTION.md section 4).
import { dayStart, type ObserverUnit } from './baseline.js';

const MAX_DATE_MS = 8.64e15;

/**
 * org -> the org id; host -> `org/host`; day -> the ISO date of the day (a
 * standalone host whose only history is its own counts each day once).
 * Returns '' for a day unit with an invalid time; the builder rejects an empty observer.
 */
export function observerId(unit: ObserverUnit, hostOrg: string, hostId: string, dayMs: number): string {
  switch (unit) {
    case 'org':
      return hostOrg;
    case 'host':
      return `${hostOrg}/${hostId}`;
    case 'day':
      if (!Number.isFinite(dayMs) || Math.abs(dayMs) > MAX_DATE_MS) return '';
      return new Date(dayStart(dayMs)).toISOString().slice(0, 10);
  }
}
