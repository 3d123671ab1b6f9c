// `rarecon sync`: the endpoint's baseline sync, by hand.
//   rarecon sync --now [--config FILE] [--state DIR] [--host-id ID] [--json]
//       uploads this host's sightings and brings the baseline up to date now
//   rarecon sync [--status] [--json]
//       prints the last sync status (version, age, last error)
import type { Writable } from 'node:stream';
import { join } from 'node:path';
import { formatProblems, loadConfig } from './config-file.js';
import { syncConfigProblems } from '../sync/config.js';
import { SyncClient } from '../sync/sync-client.js';
import { keepFilesPrivate, preparePrivateFolder } from '../common/private-files.js';
import { readSyncStatus, type SyncStatus } from '../sync/status.js';
import { SightingsStore } from '../sync/sightings-store.js';
import { hostIdentity } from '../enrich/host-identity.js';
import type { LogFn } from '../common/log.js';
import { UsageError } from './io.js';
import { parseCommand } from './command-spec.js';
import { SYNC } from './commands.js';

function ago(ms: number | null, nowMs: number): string {
  if (ms === null) return 'never';
  const s = Math.round((nowMs - ms) / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

export function formatSyncStatus(st: SyncStatus, nowMs: number): string {
  const lines = [
    `mode: ${st.mode}${st.serverUrl === null ? '' : ` (${st.serverUrl}${st.org === null ? ', not enrolled' : `, org ${st.org}`})`}`,
    `baseline: ${st.version === null ? 'none yet' : `version ${st.version}, built ${ago(st.builtAtMs, nowMs)}`}` +
      (st.stale
        ? `; STALE: a newer one was due ${ago(st.baselineDueMs, nowMs)} and has not arrived (the server or the network is holding it back)`
        : ''),
    `last sync: ${ago(st.lastSuccessMs, nowMs)}; last attempt ${ago(st.lastAttemptMs, nowMs)}`,
    `last error: ${st.lastError === null ? 'none' : `${st.lastErrorCode ?? 'error'}: ${st.lastError}`}${st.consecutiveFailures > 0 ? ` (${st.consecutiveFailures} failures in a row)` : ''}`,
    `totals: ${st.syncedTotal} synced, ${st.failedTotal} failed, ${st.refusedTotal} refused, ${st.uploadedDaysTotal} days uploaded, ${st.uploadRejectedDaysTotal} days refused by the server`,
  ];
  if (st.buckets !== null) {
    const b = st.buckets;
    lines.push(
      `buckets: ${b.cached} cached (${(b.sizeBytes / 1024 / 1024).toFixed(1)} MiB), ${b.pending} events held; ${b.releasedTotal} released, ${b.expiredTotal} expired, ${b.droppedTotal} dropped`,
    );
  }
  return lines.join('\n') + '\n';
}

export async function syncCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const parsed = parseCommand(SYNC, argv, out as Writable);
  if (parsed === null) return 0;
  const { values } = parsed;
  const loaded = loadConfig(values.config ?? null);
  if (!loaded.ok) throw new UsageError(`bad config:\n${formatProblems(loaded)}`);
  const syncCfg = loaded.config.sync;
  const stateDir = values.state ?? loaded.config.stateDir;
  const nowMs = Date.now();

  if (!values.now) {
    const st = readSyncStatus(stateDir);
    if (st === null) {
      out.write(`no sync has run yet (state folder ${stateDir})\n`);
      return 1;
    }
    out.write(values.json ? JSON.stringify(st) + '\n' : formatSyncStatus(st, nowMs));
    return 0;
  }

  const problems = syncConfigProblems(syncCfg);
  if (problems.length > 0) throw new UsageError(`bad config:\n  ${problems.join('\n  ')}`);
  // The same identity as the daemon's, so both use one enrolment and credential.
  const host = hostIdentity(loaded.config.host.org, values['host-id'] ?? loaded.config.host.id);
  const log: LogFn = (level, msg, fields) => {
    if (level === 'debug' && !values.verbose) return;
    err.write(`${level}: ${msg}${fields === undefined || Object.keys(fields).length === 0 ? '' : ` ${JSON.stringify(fields)}`}\n`);
  };
  // The daemon's state folder and its rules (common/private-files.ts).
  keepFilesPrivate();
  const folder = preparePrivateFolder(stateDir, 'the state folder');
  if (!folder.ok) throw new UsageError(folder.error);
  if (folder.tightened !== null)
    log('warn', 'The state folder was open to other users; rarecon tightened it.', { path: stateDir, ...folder.tightened });
  const sightings = new SightingsStore(join(stateDir, 'sightings.db'));
  let client: SyncClient;
  try {
    client = new SyncClient({ cfg: syncCfg, stateDir, hostId: host.id, hostName: host.name ?? null, log, sightings });
  } catch (e) {
    sightings.close();
    throw new UsageError((e as Error).message);
  }
  const r = await client.syncNow();
  await client.stop();
  const st = client.status();
  client.close();
  sightings.close();
  out.write(values.json ? JSON.stringify({ outcome: r, status: st }) + '\n' : formatSyncStatus(st, Date.now()));
  return r.ok ? 0 : 1;
}
