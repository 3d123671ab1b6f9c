// Opens the store server.store names: SQLite files in the state folder (one
// node), or PostgreSQL shared by every node (server.postgres.url, downloads
// from readUrl when set).
import { join } from 'node:path';
import type { ServerConfig } from '../config/defaults.js';
import type { LogFn } from '../common/log.js';
import { IntakeStore } from './intake-store.js';
import { PublicationReader, type Publication } from './publication.js';
import { PgStore } from './pg-store.js';
import { PgPublication } from './pg-publication.js';
import { openPool } from './pg-schema.js';
import type { ServerStore } from './store.js';

export function serverPaths(stateDir: string): { intake: string; publish: string; baselines: string } {
  return { intake: join(stateDir, 'server.db'), publish: join(stateDir, 'publish.db'), baselines: join(stateDir, 'baselines') };
}

/** Days before today an upload may still carry (checkSightingsBatch's oldest useful day), with a day to spare. */
export function acceptDaysBack(cfg: ServerConfig): number {
  return cfg.windowDays + cfg.retainExtraDays + 1;
}

/** The intake store alone (the operator commands: enroll, tokens, revoke). */
export async function openServerStore(cfg: ServerConfig, log: LogFn = () => {}): Promise<ServerStore> {
  if (cfg.store === 'sqlite') return new IntakeStore(serverPaths(cfg.stateDir).intake);
  return PgStore.open(cfg.postgres, log, { acceptDaysBack: acceptDaysBack(cfg) }, Date.now());
}

export async function openStores(
  cfg: ServerConfig,
  log: LogFn,
  now: () => number,
): Promise<{ intake: ServerStore; publication: Publication }> {
  if (cfg.store === 'sqlite') {
    const paths = serverPaths(cfg.stateDir);
    return { intake: new IntakeStore(paths.intake), publication: new PublicationReader(paths.publish) };
  }
  const intake = await PgStore.open(cfg.postgres, log, { acceptDaysBack: acceptDaysBack(cfg) }, now());
  const readUrl = cfg.postgres.readUrl ?? cfg.postgres.url;
  const readPool = cfg.postgres.readUrl === null ? intake.pool : openPool(readUrl as string, cfg.postgres, log, 'read');
  const publication = new PgPublication(readPool, now);
  // One pool serves both when there is no standby: it is closed once, by the intake store.
  if (readPool === intake.pool) publication.close = async () => {};
  return { intake, publication };
}
