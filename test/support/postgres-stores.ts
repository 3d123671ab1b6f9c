// The server tests run against both stores: `describe.each(STORES)` with
// useStore(store) inside. The PostgreSQL one starts a throwaway cluster once
// per test file (test/support/postgres.ts) and gives each server a fresh
// database; it is skipped, with the reason printed, only when the PostgreSQL
// binaries are missing.
import { afterAll } from 'vitest';
import { DEFAULT_SERVER, type ServerConfig } from '../../src/config/defaults.js';
import { openServerStore } from '../../src/server/stores.js';
import type { ServerStore } from '../../src/server/store.js';
import { pgMissingReason, startPgCluster, type PgCluster } from './postgres.js';

export const STORES = ['sqlite', 'postgresql'] as const;
export type StoreName = (typeof STORES)[number];

const missing = pgMissingReason();
let cluster: Promise<PgCluster> | null = null;
let databases = 0;

/** The file's cluster, started at first use (stopped by the afterAll storeUnderTest registers). */
export function fileCluster(): Promise<PgCluster> {
  cluster ??= startPgCluster();
  return cluster;
}

export interface StoreUnderTest {
  name: StoreName;
  /** Why this store's tests are skipped here; null = they run. */
  skip: string | null;
  /** Config lines selecting the store: a fresh database each call for PostgreSQL. */
  config: () => Promise<Partial<ServerConfig>>;
  /** The same as YAML lines under `server:` (for a `rarecon server` process). */
  yaml: (over: Partial<ServerConfig>) => string;
  /** The store a server with `over` uses, opened beside it (as the operator commands do). */
  open: (stateDir: string, over: Partial<ServerConfig>) => Promise<ServerStore>;
}

export function storeUnderTest(name: StoreName): StoreUnderTest {
  const skip = name === 'postgresql' ? missing : null;
  if (skip !== null) process.stdout.write(`skipping the PostgreSQL store's server tests: ${skip}\n`);
  if (name === 'postgresql' && skip === null) {
    // Registered first in its describe, so it runs after the servers' own afterAll (hooks run as a stack).
    afterAll(async () => {
      const c = cluster;
      cluster = null;
      if (c !== null) await (await c).stop();
    });
  }
  return {
    name,
    skip,
    config: async () => {
      if (name === 'sqlite') return { store: 'sqlite' };
      const c = await fileCluster();
      const url = await c.createDatabase(`rarecon_${process.pid}_${++databases}`);
      return { store: 'postgresql', postgres: { ...DEFAULT_SERVER.postgres, url } };
    },
    yaml: (over) =>
      over.store === 'postgresql' ? `  store: postgresql\n  postgres:\n    url: ${over.postgres?.url ?? ''}\n` : `  store: sqlite\n`,
    open: (stateDir, over) => openServerStore({ ...structuredClone(DEFAULT_SERVER), stateDir, ...over }),
  };
}
