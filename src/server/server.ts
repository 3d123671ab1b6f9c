// The baseline server: HTTP(S) API, sightings intake, the scheduled
// aggregation (node-cron) and baseline publishing, over one state folder:
//   server.db        orgs, tokens, hosts, sightings, alerts (intake-store.ts)
//   publish.db       the published rows and versions (publication.ts)
//   baselines/       the signed snapshot files, the last few versions
//   signing-key.pem  Ed25519, 0600; signing-key.pub the key endpoints pin
//   admin-token      0600; bearer token of the admin routes
//   tls-cert.pem     the server's own certificate (tls-key.pem 0600), unless one is configured
// With server.store postgresql the databases and snapshot files live in PostgreSQL
// instead (pg-store.ts, pg-publication.ts, pg-aggregate.ts), shared by every node;
// the state folder keeps only the keys, the admin token and the certificate.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import cron, { type ScheduledTask } from 'node-cron';
import type { SigningKey } from '../baseline/signature.js';
import { DEFAULT_POLICY } from '../model/root-domain.js';
import { DAY_MS } from '../model/baseline.js';
import type { LogFn } from '../common/log.js';
import { type ServerConfig } from '../config/defaults.js';
import { serverConfigProblems } from './config.js';
import type { CredentialPolicy } from './security-rules.js';
import { RequestLimits } from './rate-limit.js';
import { MemoryBudget } from './memory-budget.js';
import { loadTlsIdentity, type TlsIdentity } from './tls-identity.js';
import { loadOrCreateAdminToken, loadOrCreateSigningKey } from './keys.js';
import { route } from './routes.js';
import { sendError } from './http-io.js';
import type { AggregateResult } from './aggregate.js';
import { runAggregation, type BuildJob } from './build-runner.js';
import { openStores, serverPaths } from './stores.js';

export { serverPaths } from './stores.js';

export interface StartOptions {
  /** Injectable clock (tests, the fleet simulator). */
  now?: () => number;
  /** Skip the build at start when nothing is published yet. */
  noInitialBuild?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  publicKeyText: string;
  keyId: string;
  /** The certificate pin endpoints check (`sha256:<hex>`); null over plain HTTP. */
  certSha256: string | null;
  adminToken: string;
  stateDir: string;
  /** Builds now; on a shared store it waits for a build another node runs, then builds. */
  buildNow(): Promise<AggregateResult>;
  /** Stops the schedule, lets a running build finish, closes the sockets and databases. Safe twice. */
  close(): Promise<void>;
}

/** Throws for start-up failures (bad config, unreadable TLS files, port in use) with a message saying what to fix. */
export async function startBaselineServer(cfg: ServerConfig, log: LogFn, opts: StartOptions = {}): Promise<RunningServer> {
  const problems = serverConfigProblems(cfg);
  if (problems.length > 0) throw new Error(`the server config is not usable:\n  ${problems.join('\n  ')}`);
  if (!cron.validate(cfg.buildCron)) throw new Error(`server.buildCron "${cfg.buildCron}" is not a cron expression`);
  const now = opts.now ?? Date.now;
  mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  const paths = serverPaths(cfg.stateDir);
  mkdirSync(paths.baselines, { recursive: true, mode: 0o700 });

  const { key, created } = loadOrCreateSigningKey(cfg.stateDir);
  if (created)
    log('info', 'A new Ed25519 signing key was made; endpoints must pin its public key.', {
      keyId: key.keyId,
      publicKey: key.publicKeyText,
    });
  const admin = loadOrCreateAdminToken(cfg.stateDir);
  // Before any database is opened: a certificate problem is a start-up failure with nothing to close.
  const tls = serverTls(cfg);
  if (tls?.created === true)
    log('info', 'The server made its own TLS certificate; endpoints pin its sha256 (rarecon server enroll prints it).', {
      certSha256: tls.certSha256,
      notAfter: tls.notAfter,
    });
  const { intake, publication } = await openStores(cfg, log, now);
  const credentialPolicy: CredentialPolicy = { lifetimeMs: cfg.credentialLifetimeMs, graceMs: cfg.credentialGraceMs };
  let task: ScheduledTask | null = null;

  const policy = { ...DEFAULT_POLICY, allowPrivateDomains: cfg.allowPrivateDomains };
  const signedCache = new Map<string, Buffer>();
  let running: Promise<AggregateResult> | null = null;

  /** why: a scheduled run (skipped when another node of a shared store built it), the first build at start, or now. */
  const buildNow = (why: 'schedule' | 'start' | 'now' = 'now'): Promise<AggregateResult> => {
    if (running !== null) return running;
    const startedMs = now();
    log('info', 'The aggregation started.', { windowDays: cfg.windowDays, unit: cfg.observerUnit, store: cfg.store });
    const common = {
      unit: cfg.observerUnit,
      windowDays: cfg.windowDays,
      thresholds: cfg.thresholds,
      policy,
      omitSingleObserverCombos: cfg.omitSingleObserverCombos,
      bucketHexChars: cfg.bucketHexChars,
      heavyProcessCombos: cfg.heavyProcessCombos,
      combosPerCell: cfg.combosPerCell,
      deltaHistoryVersions: cfg.deltaHistoryVersions,
      keepSnapshots: cfg.keepSnapshots,
      hostMinUploadDays: cfg.hostMinUploadDays,
      nextBuildByMs: nextBuildByMs(task, startedMs, cfg.buildGraceMs),
      nowMs: startedMs,
      signingKeyPem: key.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    };
    const job: BuildJob =
      cfg.store === 'sqlite'
        ? { store: 'sqlite', opts: { ...common, intakePath: paths.intake, publishPath: paths.publish, baselinesDir: paths.baselines } }
        : {
            store: 'postgresql',
            opts: {
              ...common,
              postgres: cfg.postgres,
              scratchDir: paths.baselines,
              // A scheduled run fires on every node: the first to take the build lock builds, the others see its version.
              skipIfPublishedSinceMs: why === 'schedule' ? Math.floor(startedMs / 60_000) * 60_000 : null,
              onlyIfNone: why === 'start',
            },
          };
    running = runAggregation(job, cfg.buildInWorker).then(async (r) => {
      running = null;
      signedCache.clear();
      publication.published();
      if (r.ok) {
        const pruned = await intake.pruneBefore(Math.floor(startedMs / DAY_MS) + 1 - cfg.windowDays - cfg.retainExtraDays);
        log('info', 'A baseline was published.', {
          version: r.version,
          processes: r.meta.processCount,
          combos: r.meta.comboCount,
          population: r.meta.populationSize,
          prunedHostDays: pruned,
          ...r.figures,
        });
      } else if (r.skipped === true) {
        log('info', 'The aggregation was left to another node.', { reason: r.error });
      } else {
        log('error', 'The aggregation failed; the previous baseline stays published.', { error: r.error });
      }
      return r;
    });
    return running;
  };

  const ctx = {
    cfg,
    intake,
    credentialPolicy,
    limits: new RequestLimits(cfg.rateLimits),
    budget: new MemoryBudget(cfg.limits.memoryBudgetBytes),
    alertTotals: { stored: 0, updated: 0, duplicates: 0 },
    certSha256: tls?.certSha256 ?? null,
    publication,
    key: key as SigningKey,
    adminToken: admin.token,
    log,
    now,
    startedMs: now(),
    building: () => running !== null,
    buildNow: () => buildNow(),
    // A build already running may have read the window before the uploads the admin is waiting for.
    buildFresh: (): Promise<AggregateResult> => (running === null ? buildNow() : running.then(() => buildNow())),
    signedCache,
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    route(ctx, req, res).catch((e: unknown) => {
      log('error', 'A request failed inside the server.', { method: req.method, url: req.url, error: (e as Error).stack ?? String(e) });
      if (!res.headersSent) sendError(req, res, 500, 'internal', 'the server failed on this request; see its log');
      else res.destroy();
    });
  };
  const server: Server = tls === null ? createHttpServer(handler) : createHttpsServer({ cert: tls.cert, key: tls.key }, handler);
  server.requestTimeout = cfg.requestTimeoutMs;
  server.headersTimeout = Math.min(cfg.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      void intake.close();
      void publication.close();
      reject(new Error(`cannot listen on ${cfg.listenHost}:${cfg.port}: ${e.message}`));
    };
    server.once('error', onError);
    server.listen(cfg.port, cfg.listenHost, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = cfg.listenHost === '0.0.0.0' || cfg.listenHost === '::' ? '127.0.0.1' : cfg.listenHost;
  const scheme = tls === null ? 'http' : 'https';
  const url = `${scheme}://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${port}`;
  const bound = `${scheme}://${cfg.listenHost.includes(':') ? `[${cfg.listenHost}]` : cfg.listenHost}:${port}`;
  const everywhere = cfg.listenHost === '0.0.0.0' || cfg.listenHost === '::';

  const scheduled = cron.schedule(cfg.buildCron, () => void buildNow('schedule'), { timezone: 'UTC', noOverlap: true });
  task = scheduled;
  const fields = { url, listen: bound, keyId: key.keyId, publicKey: key.publicKeyText, unit: cfg.observerUnit, buildCron: cfg.buildCron };
  if (tls === null) {
    log(
      'warn',
      `The baseline server listens in clear text on ${bound}${everywhere ? ' (every interface of this host)' : ''} (server.plainHttp): enrolment tokens, host credentials, sightings and alerts cross the network readable and alterable by anyone on the path.`,
      fields,
    );
  } else {
    log(
      'info',
      `The baseline server listens on ${bound}${everywhere ? ' (every interface of this host)' : ''} over HTTPS with ${tls.source === 'own' ? 'its own certificate' : `the certificate ${cfg.tlsCertFile}`}, sha256 ${tls.certSha256.slice(7)}.`,
      { ...fields, certSha256: tls.certSha256, certificate: tls.source },
    );
  }
  if (opts.noInitialBuild !== true && (await publication.current()) === null) void buildNow('start');

  let closed: Promise<void> | null = null;
  return {
    url,
    port,
    publicKeyText: key.publicKeyText,
    keyId: key.keyId,
    certSha256: tls?.certSha256 ?? null,
    adminToken: admin.token,
    stateDir: cfg.stateDir,
    buildNow: () => buildNow(),
    close: () => {
      if (closed !== null) return closed;
      closed = (async () => {
        await scheduled.stop();
        await scheduled.destroy();
        const closing = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (running !== null) await running;
        setTimeout(() => server.closeAllConnections(), 2_000).unref();
        await closing;
        await publication.close();
        await intake.close();
      })();
      return closed;
    },
  };
}

/** The certificate the server serves (its own, made when missing, or the configured one); null with server.plainHttp. Throws with what to fix. */
export function serverTls(cfg: ServerConfig): TlsIdentity | null {
  if (cfg.plainHttp) return null;
  return loadTlsIdentity(cfg);
}

/**
 * When the schedule promises a newer baseline: the first scheduled build after
 * this one (at least a second later), plus the grace a build may take. Null
 * before the schedule runs or when cron names no next run.
 */
function nextBuildByMs(task: ScheduledTask | null, startedMs: number, graceMs: number): number | null {
  if (task === null) return null;
  const next = task.getNextRuns(3).find((d) => d.getTime() > startedMs + 1_000);
  return next === undefined ? null : next.getTime() + graceMs;
}
