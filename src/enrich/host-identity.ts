// The host's pseudonymous id: a hash of /etc/machine-id, so the raw id never
// leaves the host; overridable in config for images cloned with one machine-id.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { HostRef } from '../model/records.js';

export function hostIdentity(org: string, configuredId: string | null, machineIdPath = '/etc/machine-id'): HostRef {
  if (configuredId !== null) return { id: configuredId, org, name: hostname() };
  let seed: string;
  try {
    seed = readFileSync(machineIdPath, 'utf8').trim();
  } catch {
    seed = '';
  }
  if (seed === '') seed = `hostname:${hostname()}`;
  const id = createHash('sha256').update(`rarecon-host:${seed}`).digest('hex').slice(0, 16);
  return { id, org, name: hostname() };
}
