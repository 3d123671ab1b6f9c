// `rarecon server`: the baseline server, and its operator commands.
//   rarecon server [--config FILE] [--state DIR] [--listen HOST] [--port N]
//   rarecon server enroll --org NAME [--max-hosts N] [--json]   a new enrolment token for an org
//   rarecon server tokens [--org NAME] [--json]   the enrolment tokens, their use and state
//   rarecon server revoke-token ID                refuse an enrolment token from now on
//   rarecon server revoke HOST [--org NAME]       refuse a host's credential from now on
//   rarecon server allow-reenrol HOST --org NAME [--hours N]   let a host that lost its credential enrol again
//   rarecon server pubkey                          the public key endpoints pin
//   rarecon server build                           aggregate and publish once, then exit
import type { Writable } from 'node:stream';
import type { ServerConfig } from '../config/defaults.js';
import { formatProblems, loadConfig } from './config-file.js';
import { serverTls, startBaselineServer } from '../server/server.js';
import { openServerStore } from '../server/stores.js';
import { loadOrCreateSigningKey } from '../server/keys.js';
import type { TokenRow } from '../server/store.js';
import { makeLogger } from '../common/logger.js';
import { keepFilesPrivate, preparePrivateFolder } from '../common/private-files.js';
import type { LogFn } from '../common/log.js';
import { UsageError } from './io.js';
import { helpText, parseCommand, usageHint, wantsHelp } from './command-spec.js';
import { SERVER, SERVER_SUBCOMMANDS } from './commands.js';

function wholeNumber(v: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, not "${v}"`);
  return n;
}

function tokenLine(t: TokenRow): string {
  const state = t.revokedMs === null ? 'active' : `revoked ${new Date(t.revokedMs).toISOString()}`;
  return `${t.id}  org ${t.org}  ${t.hostsAdmitted}/${t.maxHosts} hosts  made ${new Date(t.createdMs).toISOString()}  ${state}`;
}

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
  // The folder holds the signing key, the tokens and every host's uploads: 0600 files in a 0700 folder.
  keepFilesPrivate();
  const folder = preparePrivateFolder(cfg.stateDir, 'the server state folder');
  if (!folder.ok) throw new UsageError(folder.error);
  if (folder.tightened !== null)
    process.stderr.write(
      `rarecon server: the state folder ${cfg.stateDir} was open to other users (mode ${folder.tightened.from}); tightened to ${folder.tightened.to}\n`,
    );

  if (sub === 'enroll') {
    const org = values.org?.trim();
    if (org === undefined || org === '' || org.length > 200) throw new UsageError('enroll needs --org NAME (1 to 200 characters)');
    const maxHosts = wholeNumber(values['max-hosts'], '--max-hosts', cfg.enrolMaxHostsDefault, 1, 10_000_000);
    const { key } = loadOrCreateSigningKey(cfg.stateDir);
    let pin: string | null;
    try {
      // Made here at first use too, so the pin printed is the certificate the server will serve.
      pin = serverTls(cfg)?.certSha256 ?? null;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const store = await openServerStore(cfg);
    try {
      const t = await store.createEnrolToken(org, maxHosts, Date.now());
      if (values.json)
        out.write(
          JSON.stringify({
            org: t.org,
            token: t.token,
            tokenId: t.tokenId,
            maxHosts,
            publicKey: key.publicKeyText,
            keyId: key.keyId,
            certSha256: pin,
          }) + '\n',
        );
      else {
        out.write(
          `org: ${t.org}${t.orgCreated ? ' (new)' : ''}\n` +
            `enrolment token: ${t.token}\n` +
            `  admits at most ${maxHosts} hosts; id ${t.tokenId} ("rarecon server tokens" lists it, "rarecon server revoke-token ${t.tokenId}" ends it)\n` +
            `server public key: ${key.publicKeyText}\n` +
            (pin === null
              ? `server certificate: none, the server listens in clear text (server.plainHttp)\n`
              : `server certificate: ${pin}\n`) +
            `Give each endpoint of this org the token (sync.enrolTokenFile or sync.enrolTokenEnv), the public key (sync.serverPublicKey)` +
            (pin === null ? '.\n' : ` and the certificate pin (sync.serverCertSha256).\n`),
        );
      }
    } finally {
      await store.close();
    }
    return 0;
  }

  if (sub === 'tokens') {
    const store = await openServerStore(cfg);
    try {
      const tokens = await store.tokens(values.org ?? null);
      if (values.json) out.write(JSON.stringify({ tokens }) + '\n');
      else if (tokens.length === 0) out.write(`no enrolment tokens${values.org === undefined ? '' : ` for org ${values.org}`}\n`);
      else for (const t of tokens) out.write(tokenLine(t) + '\n');
    } finally {
      await store.close();
    }
    return 0;
  }

  if (sub === 'revoke-token') {
    const id = rest[0];
    if (id === undefined)
      throw new UsageError('revoke-token needs the token id "rarecon server tokens" lists: rarecon server revoke-token ID');
    const store = await openServerStore(cfg);
    try {
      const r = await store.revokeToken(id, Date.now());
      if (!r.ok) {
        process.stderr.write(`rarecon server revoke-token: ${r.error}\n`);
        return 1;
      }
      out.write(`revoked: ${tokenLine(r.token)}\n`);
    } finally {
      await store.close();
    }
    return 0;
  }

  if (sub === 'allow-reenrol') {
    const host = rest[0];
    const org = values.org;
    if (host === undefined || org === undefined)
      throw new UsageError('allow-reenrol needs the host id and its org: rarecon server allow-reenrol HOST --org NAME [--hours N]');
    const hours = wholeNumber(values.hours, '--hours', 24, 1, 24 * 30);
    const store = await openServerStore(cfg);
    try {
      const untilMs = Date.now() + hours * 3_600_000;
      const h = await store.allowReenrol(host, org, untilMs);
      if (h === null) {
        process.stderr.write(`rarecon server allow-reenrol: no enrolled, unrevoked host "${host}" in org ${org}\n`);
        return 1;
      }
      out.write(
        `host ${h.hostId} of org ${h.org} may enrol again with the org token until ${new Date(untilMs).toISOString()}; its current credential stops working when it does\n`,
      );
    } finally {
      await store.close();
    }
    return 0;
  }

  if (sub === 'revoke') {
    const host = rest[0];
    if (host === undefined) throw new UsageError('revoke needs the host id: rarecon server revoke HOST [--org NAME]');
    const store = await openServerStore(cfg);
    try {
      const revoked = await store.revokeHost(host, values.org ?? null, Date.now());
      if (revoked.length === 0) {
        process.stderr.write(
          `rarecon server revoke: no enrolled, unrevoked host "${host}"${values.org === undefined ? '' : ` in org ${values.org}`}\n`,
        );
        return 1;
      }
      for (const h of revoked) out.write(`revoked host ${h.hostId} of org ${h.org}\n`);
    } finally {
      await store.close();
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
