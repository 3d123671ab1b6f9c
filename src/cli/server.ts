// `rarecon server`: the baseline server, and its operator commands.
//   rarecon server [--config FILE] [--state DIR] [--listen HOST] [--port N]
//   rarecon server enroll --org NAME [--json]     a new enrolment token for an org
//   rarecon server revoke HOST [--org NAME]       refuse a host's credential from now on
//   rarecon server pubkey                          the public key endpoints pin
//   rarecon server build                           aggregate and publish once, then exit
import type { Writable } from 'node:stream';
import type { ServerConfig } from '../config/defaults.js';
import { formatProblems, loadConfig } from './config-file.js';
import { serverPaths, startBaselineServer } from '../server/server.js';
import { IntakeStore } from '../server/intake-store.js';
import { loadOrCreateSigningKey } from '../server/keys.js';
import { makeLogger } from '../common/logger.js';
import type { LogFn } from '../common/log.js';
import { UsageError } from './io.js';
import { helpText, parseCommand, usageHint, wantsHelp } from './command-spec.js';
import { SERVER, SERVER_SUBCOMMANDS } from './commands.js';

function loadServerConfig(values: {
  config?: string | undefined;
  state?: string | undefined;
  listen?: string | undefined;
  port?: string | undefined;
}): ServerConfig {
  const r = loadConfig(values.config ?? null);
  if (!r.ok) throw new UsageError(`bad config:\n${formatProblems(r)}`);
  const cfg = r.config.server;
  if (values.state !== undefined) cfg.stateDir = values.state;
  if (values.listen !== undefined) cfg.listenHost = values.listen;
  if (values.port !== undefined) {
    const p = Number(values.port);
    if (!Number.isInteger(p) || p < 0 || p > 65_535) throw new UsageError(`--port takes 0..65535, not "${values.port}"`);
    cfg.port = p;
  }
  return cfg;
}

export async function serverCommand(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  // `server enroll --help` is the help of enroll; the options are parsed together.
  const first = argv[0] as keyof typeof SERVER_SUBCOMMANDS | undefined;
  if (first !== undefined && first in SERVER_SUBCOMMANDS && wantsHelp(argv)) {
    out.write(helpText(SERVER_SUBCOMMANDS[first]));
    return 0;
  }
  const parsed = parseCommand(SERVER, argv, out as Writable);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  const cfg = loadServerConfig(values);

  if (sub === 'enroll') {
    const org = values.org?.trim();
    if (org === undefined || org === '' || org.length > 200) throw new UsageError('enroll needs --org NAME (1 to 200 characters)');
    const { key } = loadOrCreateSigningKey(cfg.stateDir);
    const store = new IntakeStore(serverPaths(cfg.stateDir).intake);
    try {
      const t = store.createEnrolToken(org, Date.now());
      if (values.json) out.write(JSON.stringify({ org: t.org, token: t.token, publicKey: key.publicKeyText, keyId: key.keyId }) + '\n');
      else {
        out.write(
          `org: ${t.org}${t.orgCreated ? ' (new)' : ''}\n` +
            `enrolment token: ${t.token}\n` +
            `server public key: ${key.publicKeyText}\n` +
            `Give each endpoint of this org the token (sync.enrolTokenFile or sync.enrolTokenEnv) and the public key (sync.serverPublicKey).\n`,
        );
      }
    } finally {
      store.close();
    }
    return 0;
  }

  if (sub === 'revoke') {
    const host = rest[0];
    if (host === undefined) throw new UsageError('revoke needs the host id: rarecon server revoke HOST [--org NAME]');
    const store = new IntakeStore(serverPaths(cfg.stateDir).intake);
    try {
      const revoked = store.revokeHost(host, values.org ?? null, Date.now());
      if (revoked.length === 0) {
        process.stderr.write(
          `rarecon server revoke: no enrolled, unrevoked host "${host}"${values.org === undefined ? '' : ` in org ${values.org}`}\n`,
        );
        return 1;
      }
      for (const h of revoked) out.write(`revoked host ${h.hostId} of org ${h.org}\n`);
    } finally {
      store.close();
    }
    return 0;
  }

  if (sub === 'pubkey') {
    out.write(`${loadOrCreateSigningKey(cfg.stateDir).key.publicKeyText}\n`);
    return 0;
  }

  const logger = makeLogger({ level: 'info', file: null });
  const log: LogFn = (level, msg, fields) => logger[level](msg, fields);

  if (sub === 'build') {
    const server = await startBaselineServer({ ...cfg, port: 0, listenHost: '127.0.0.1' }, log, { noInitialBuild: true });
    const r = await server.buildNow();
    await server.close();
    await logger.close();
    return r.ok ? 0 : 1;
  }

  if (sub !== undefined) throw new UsageError(`unknown server command "${sub}"\n${usageHint(SERVER)}`);

  let server;
  try {
    server = await startBaselineServer(cfg, log);
  } catch (e) {
    await logger.close();
    throw new UsageError((e as Error).message);
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  log('info', 'The baseline server is stopping.', {});
  await server.close();
  await logger.close();
  return 0;
}
