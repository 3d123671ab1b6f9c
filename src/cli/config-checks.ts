// What `rarecon validate` checks beyond the shape of the config file: what
// start-up would refuse (a file it cannot read, an environment variable that
// is not set, TLS files without their pair, a baseline that does not open, an
// output path that is a link or another user's file, a state folder it must
// not use) and more (PEM that does not parse, a certificate and a key that do
// not belong together, a helper that is not executable). Problems carry the
// dotted path of the setting, so validate can name the line.
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, lstatSync, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Problem } from '../config/spec.js';
import type { RareconConfig, SinkConfig } from '../config/defaults.js';
import { checkOutputPath, preparePrivateFolder } from '../common/private-files.js';
import { TokenSource } from '../common/token-source.js';
import { openBaseline } from '../baseline/store.js';
import { serverConfigProblems } from '../server/config.js';
import { loadPinnedKey } from '../sync/signed-answer.js';
import { readHostCredential } from '../sync/enrolment.js';

export interface ConfigChecks {
  /** What start-up would refuse, or what cannot work: validate says the file is not valid. */
  problems: Problem[];
  /** What start-up fixes by itself and says so (an open state folder of its own): told, not refused. */
  notes: Problem[];
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES')
    return `permission denied (validate runs as uid ${process.geteuid?.() ?? '?'}: run it as the user rarecon runs as)`;
  return code ?? (err as Error).message;
}

class Checker {
  readonly problems: Problem[] = [];
  readonly notes: Problem[] = [];

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  problem(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  /** The file's bytes, or null with the problem noted. */
  read(path: string, file: string, what: string): Buffer | null {
    try {
      return readFileSync(file);
    } catch (err) {
      this.problem(path, `cannot read the ${what} ${file}: ${errorCode(err)}`);
      return null;
    }
  }

  /** A CA bundle: readable, and PEM certificates that parse. */
  caFile(path: string, file: string | null): void {
    if (file === null) return;
    const pem = this.read(path, file, 'CA file');
    if (pem === null) return;
    const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) return this.problem(path, `the CA file ${file} holds no PEM certificate`);
    for (const b of blocks) {
      try {
        new X509Certificate(b);
      } catch (err) {
        return this.problem(path, `the CA file ${file} holds a certificate that does not parse: ${(err as Error).message}`);
      }
    }
  }

  /** A certificate and its key: both readable, both PEM, and one pair. */
  certAndKey(at: string, certPath: string, cert: string | null, keyPath: string, key: string | null): void {
    if (cert === null || key === null) return;
    const c = this.read(`${at}.${certPath}`, cert, 'certificate');
    const k = this.read(`${at}.${keyPath}`, key, 'private key');
    if (c === null || k === null) return;
    try {
      createSecureContext({ cert: c, key: k });
    } catch (err) {
      const msg = (err as Error).message;
      this.problem(
        `${at}.${certPath}`,
        /mismatch/i.test(msg)
          ? `${cert} and ${key} are not a certificate and its own private key (${msg})`
          : `${cert} and ${key} are not a PEM certificate and private key: ${msg}`,
      );
    }
  }

  token(path: string, tokenEnv: string | null, tokenFile: string | null): void {
    const r = new TokenSource(tokenEnv, tokenFile, this.env).get();
    if (r !== null && !r.ok) this.problem(path, r.error);
  }

  output(path: string, file: string, what: string, privateFolder = false): void {
    const r = checkOutputPath(file, what, { privateFolder });
    if (!r.ok) this.problem(path, r.error);
  }

  folder(path: string, dir: string, what: string): void {
    const r = preparePrivateFolder(dir, what, { dryRun: true });
    if (!r.ok) this.problem(path, r.error);
    else if (r.tightened !== null)
      this.notes.push({
        path,
        message: `${what} ${dir} is open to other users (mode ${r.tightened.from}): rarecon tightens it to ${r.tightened.to} at start`,
      });
  }

  sink(s: SinkConfig, at: string): void {
    switch (s.type) {
      case 'http':
        this.token(`${at}.${s.tokenEnv !== null ? 'tokenEnv' : 'tokenFile'}`, s.tokenEnv, s.tokenFile);
        if (!s.url.startsWith('https:')) return;
        this.caFile(`${at}.caFile`, s.caFile);
        this.certAndKey(at, 'certFile', s.certFile, 'keyFile', s.keyFile);
        return;
      case 'syslog':
        if (s.transport !== 'tls') return;
        this.caFile(`${at}.caFile`, s.caFile);
        this.certAndKey(at, 'certFile', s.certFile, 'keyFile', s.keyFile);
        return;
      case 'file':
        this.output(`${at}.path`, s.path, `sink ${s.name}: the file`);
        return;
      case 'stdout':
      case 'server':
        return;
    }
  }
}

/** Every check of a config that passed the shape checks (and was merged over the defaults). */
export function checkConfig(c: RareconConfig, env: NodeJS.ProcessEnv = process.env): ConfigChecks {
  const k = new Checker(env);
  c.report.sinks.forEach((s, i) => k.sink(s, `report.sinks[${i}]`));
  if (c.report.outbox.path !== null) {
    try {
      if (lstatSync(c.report.outbox.path).isSymbolicLink())
        k.problem(
          'report.outbox.path',
          `the outbox ${c.report.outbox.path} is a symbolic link: rarecon opens its stores only as files of their own`,
        );
    } catch {
      // not made yet: the daemon makes it
    }
  }

  k.folder('stateDir', c.stateDir, 'the state folder');
  if (c.logFile !== null) k.output('logFile', c.logFile, 'the log file (logFile)', true);
  if (c.alertsPath !== null) k.output('alertsPath', c.alertsPath, 'the alerts file (alertsPath)');
  if (c.baselinePath !== null) {
    const b = openBaseline(c.baselinePath, c.baselineStore);
    if (b.ok) b.baseline.close();
    else k.problem('baselinePath', b.error);
  }
  if (c.source.helperPath !== null) {
    try {
      accessSync(c.source.helperPath, constants.X_OK);
    } catch (err) {
      k.problem('source.helperPath', `the eBPF helper ${c.source.helperPath} cannot be run: ${errorCode(err)}`);
    }
  }

  const sync = c.sync;
  if (sync.serverUrl !== null) {
    try {
      loadPinnedKey(sync);
    } catch (err) {
      k.problem(sync.serverPublicKeyFile !== null ? 'sync.serverPublicKeyFile' : 'sync.serverPublicKey', (err as Error).message);
    }
    if (!sync.serverUrl.startsWith('https:') && sync.caFile !== null)
      k.problem('sync.caFile', 'a CA file needs an https:// sync.serverUrl');
    k.caFile('sync.caFile', sync.caFile);
    // The token is needed until this host holds a credential from that server.
    if (!readHostCredential(c.stateDir, sync.serverUrl).ok) {
      if (sync.enrolTokenEnv === null && sync.enrolTokenFile === null)
        k.problem(
          'sync',
          `this host is not enrolled with ${sync.serverUrl} yet and no enrolment token is configured (sync.enrolTokenEnv or sync.enrolTokenFile)`,
        );
      else k.token(sync.enrolTokenEnv !== null ? 'sync.enrolTokenEnv' : 'sync.enrolTokenFile', sync.enrolTokenEnv, sync.enrolTokenFile);
    }
  }

  const server = c.server;
  for (const message of serverConfigProblems(server))
    k.problem(message.startsWith('server.tls') ? 'server.tlsCertFile' : 'server', message);
  k.certAndKey('server', 'tlsCertFile', server.tlsCertFile, 'tlsKeyFile', server.tlsKeyFile);
  try {
    lstatSync(server.stateDir);
    k.folder('server.stateDir', server.stateDir, 'the server state folder');
  } catch {
    // made at the server's first start
  }
  return { problems: k.problems, notes: k.notes };
}
