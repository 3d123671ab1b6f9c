// Enrolment with the baseline server and the credential it gives this host,
// kept in `<stateDir>/server-credential.json` (mode 0600). The credential
// belongs to one server URL and one host id: any other is ignored, and a 401
// from the server drops it, so the next sync enrols again with the token.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TokenSource } from '../common/token-source.js';
import type { LogFn } from '../common/log.js';
import { writeSecretFile } from '../common/secrets.js';
import type { CredentialSource, ServerCalls } from './http-client.js';
import { fail, type Step } from './step.js';

export const CREDENTIAL_FILE = 'server-credential.json';

export interface HostCredential {
  serverUrl: string;
  org: string;
  hostId: string;
  credential: string;
  enrolledMs: number;
}

/**
 * The credential this host got from the server at `serverUrl` when it enrolled
 * (kept in the state folder), for other clients of the same server (the alert
 * sink). An error says why there is none.
 */
export function readHostCredential(stateDir: string, serverUrl: string): { ok: true; value: string } | { ok: false; error: string } {
  try {
    const c = JSON.parse(readFileSync(join(stateDir, CREDENTIAL_FILE), 'utf8')) as Partial<HostCredential>;
    if (c.serverUrl !== serverUrl || typeof c.credential !== 'string')
      return { ok: false, error: `this host is not enrolled with ${serverUrl} yet` };
    return { ok: true, value: c.credential };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      error:
        code === 'ENOENT'
          ? `this host is not enrolled with ${serverUrl} yet`
          : `cannot read its credential: ${code ?? (err as Error).message}`,
    };
  }
}

export interface EnrolmentOptions {
  stateDir: string;
  serverUrl: string | null;
  hostId: string;
  hostName: string | null;
  token: TokenSource;
  log: LogFn;
  now: () => number;
}

export class Enrolment implements CredentialSource {
  private credential: HostCredential | null = null;

  constructor(private readonly opts: EnrolmentOptions) {}

  /** Reads the stored credential (at start, once the state folder exists). */
  load(): void {
    try {
      const c = JSON.parse(readFileSync(join(this.opts.stateDir, CREDENTIAL_FILE), 'utf8')) as HostCredential;
      this.credential = c.serverUrl !== this.opts.serverUrl || c.hostId !== this.opts.hostId || typeof c.credential !== 'string' ? null : c;
    } catch {
      this.credential = null;
    }
  }

  /** The organisation the server enrolled this host in; null when not enrolled. */
  org(): string | null {
    return this.credential?.org ?? null;
  }

  bearer(): string | null {
    return this.credential?.credential ?? null;
  }

  forget(): void {
    this.credential = null;
    rmSync(join(this.opts.stateDir, CREDENTIAL_FILE), { force: true });
  }

  /** The stored credential, or a new one from enrolling with the configured token. */
  async ensure(http: ServerCalls): Promise<Step<HostCredential>> {
    if (this.credential !== null) return { ok: true, value: this.credential };
    const token = this.opts.token.get();
    if (token === null)
      return fail(
        'not-enrolled',
        'this host is not enrolled and no enrolment token is configured (sync.enrolTokenEnv or sync.enrolTokenFile)',
      );
    if (!token.ok) return fail('not-enrolled', token.error);
    const r = await http.call('POST', '/v1/enroll', { token: token.value, hostId: this.opts.hostId, hostName: this.opts.hostName }, false);
    if (!r.ok) return r;
    if (r.value.status !== 200 || r.value.body === null) return http.failure(r.value, 'enrolment');
    const j = JSON.parse(r.value.body.toString('utf8')) as { org: string; credential: string; keyId: string };
    const cred: HostCredential = {
      serverUrl: this.opts.serverUrl as string,
      org: j.org,
      hostId: this.opts.hostId,
      credential: j.credential,
      enrolledMs: this.opts.now(),
    };
    writeSecretFile(join(this.opts.stateDir, CREDENTIAL_FILE), JSON.stringify(cred) + '\n');
    this.credential = cred;
    this.opts.log('info', 'This host enrolled with the baseline server.', { org: j.org, hostId: this.opts.hostId, serverKeyId: j.keyId });
    return { ok: true, value: cred };
  }
}
