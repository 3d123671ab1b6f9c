// The form an alert leaves the host in: OCSF (canonical) or ECS (AlertFormat).
import type { Alert } from '../model/alert.js';
import { toEcs } from '../model/ecs.js';
import { toOcsf } from '../model/ocsf.js';
import type { AlertFormat } from '../config/defaults.js';

export function renderAlert(a: Alert, format: AlertFormat): Record<string, unknown> {
  return format === 'ecs' ? toEcs(a) : toOcsf(a);
}

/** One JSON document a line. */
export function ndjson(batch: readonly Alert[], format: AlertFormat): string {
  let out = '';
  for (const a of batch) out += `${JSON.stringify(renderAlert(a, format))}\n`;
  return out;
}
