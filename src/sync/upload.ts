// Sightings go up one host-day per request, oldest first; a re-upload replaces
// the day on the server, so a day changed since its last upload is sent whole.
import type { LogFn } from '../common/log.js';
import { errorMessage, type ServerCalls } from './http-client.js';
import type { SightingsStore } from './sightings-store.js';
import type { SyncStatus } from './status.js';
import type { Step } from './step.js';

export type UploadCounters = Pick<SyncStatus, 'uploadedDaysTotal' | 'uploadRejectedDaysTotal'>;

/** Uploads every day due; stops at the first failure (the day stays due). Counts into `counters`. */
export async function uploadSightings(
  store: SightingsStore | null | undefined,
  http: ServerCalls,
  counters: UploadCounters,
  log: LogFn,
): Promise<Step<null>> {
  if (store === null || store === undefined) return { ok: true, value: null };
  for (const dayMs of store.daysToUpload()) {
    const d = store.dayUpload(dayMs);
    const r = await http.call('POST', '/v1/sightings', { days: [{ day: d.day, processes: d.processes, combos: d.combos }] }, true);
    if (!r.ok) return r;
    const { status } = r.value;
    if (status === 200) {
      store.markUploaded(dayMs, d.changes);
      counters.uploadedDaysTotal++;
    } else if (status === 400 || status === 413) {
      // Sending it again would be refused again: counted, logged, not retried.
      store.markUploaded(dayMs, d.changes);
      counters.uploadRejectedDaysTotal++;
      log('error', 'The server refused a day of sightings; it will not be sent again.', {
        day: d.day,
        status,
        error: errorMessage(r.value.body),
      });
    } else {
      return http.failure(r.value, 'sightings upload');
    }
  }
  return { ok: true, value: null };
}
