// Enrolment with the baseline server and the credential it gives this host,
// kept in `<stateDir>/server-credential.json` (mode 0600). The credential
// belongs to one server URL and one host id: any other is ignored.
//
// The server's rules (docs/security.md): a host id already enrolled gets a new
// credential only with its current one as proof, so a 401 (expired, replaced,
// server reset) keeps the refused credential in the file as proof for the next
// enrolment instead of deleting it. Credentials expire; this host rotates its
// own once the server's rotate-after time has passed, at the next sync. The
// enrolment answer names the server's current baseline version: this host
// never takes an older one afterwards (a replayed snapshot).
import { readFileSync } from 'node:fs';
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
  /** When the server stops taking it, and when this host should rotate it (null: never; absent: from before expiry existed). */
  expiresMs?: number | null;
  rotateAfterMs?: number | null;
  /** The baseline version the server held when this host enrolled: anything older is refused. */
  minBaselineVersion?: number | null;
  /** The server refused it (401): kept only as proof for enrolling again. */
  refusedMs?: number | null;
}

type CredentialFile = { ok: true; value: HostCredential } | { ok: false; error: string };

function readCredentialFile(stateDir: string, serverUrl: string): CredentialFile {
  try {
    const c = JSON.parse(readFileSync(join(stateDir, CREDENTIAL_FILE), 'utf8')) as Partial<HostCredential>;
    if (c.serverUrl !== serverUrl || typeof c.credential !== 'string')
      return { ok: false, error: `this host is not enrolled with ${serverUrl} yet` };
    return { ok: true, value: c as HostCredential };
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

/**
 * The credential this host got from the server at `serverUrl` when it enrolled
 * (kept in the state folder), for other clients of the same server (the alert
 * sink). An error says why there is none.
 */
export function readHostCredential(stateDir: string, serverUrl: string): { ok: true; value: string } | { ok: false; error: string } {
  const f = readCredentialFile(stateDir, serverUrl);
  if (!f.ok) return f;
  if (f.value.refusedMs !== null && f.value.refusedMs !== undefined)
    return { ok: false, error: `the server refused this host's credential; the next sync enrols again` };
  return { ok: true, value: f.value.credential };
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

interface CredentialAnswer {
  credential: string;
  credentialExpiresMs?: number | null;
  credentialRotateAfterMs?: number | null;
}

export class Enrolment implements CredentialSource {
  private credential: HostCredential | null = null;

  constructor(private readonly opts: EnrolmentOptions) {}

  /** Reads the stored credential (at start, once the state folder exists). */
  load(): void {
    if (this.opts.serverUrl === null) return;
    const f = readCredentialFile(this.opts.stateDir, this.opts.serverUrl);
    this.credential = f.ok && f.value.hostId === this.opts.hostId ? f.value : null;
  }

  /** The organisation the server enrolled this host in; null when not enrolled. */
  org(): string | null {
    return this.usable()?.org ?? null;
  }

  /** The oldest baseline version this host takes: the one the server held when it enrolled. */
  minBaselineVersion(): number | null {
    return this.credential?.minBaselineVersion ?? null;
  }

  /** When the credential in use expires (null: never or unknown). */
  expiresMs(): number | null {
    return this.usable()?.expiresMs ?? null;
  }

  bearer(): string | null {
    return this.usable()?.credential ?? null;
  }

  private usable(): HostCredential | null {
    const c = this.credential;
    return c === null || (c.refusedMs !== null && c.refusedMs !== undefined) ? null : c;
  }

  /** The server refused the credential (401): not used again, kept as proof for the next enrolment. */
  forget(): void {
    if (this.credential === null) return;
    this.save({ ...this.credential, refusedMs: this.opts.now() });
  }

  private save(c: HostCredential): void {
    writeSecretFile(join(this.opts.stateDir, CREDENTIAL_FILE), JSON.stringify(c) + '\n');
    this.credential = c;
  }

  /** The stored credential (rotated first when due), or a new one from enrolling with the configured token. */
  async ensure(http: ServerCalls): Promise<Step<HostCredential>> {
    const held = this.usable();
    if (held !== null) {
      // Absent rotate-after: a credential from before rotation existed, rotated at once to learn its dates.
      const due = held.rotateAfterMs === undefined || (held.rotateAfterMs !== null && this.opts.now() >= held.rotateAfterMs);
      if (!due) return { ok: true, value: held };
      const r = await this.rotate(http, held);
      // A rotation that fails for any other reason than a refusal leaves the credential in use: it is tried again next time.
      if (r.ok || this.usable() !== null) return r.ok ? r : { ok: true, value: held };
    }
    return this.enrol(http);
  }

  private async rotate(http: ServerCalls, held: HostCredential): Promise<Step<HostCredential>> {
    const r = await http.call('POST', '/v1/credential', {}, true);
    if (!r.ok) return r;
    if (r.value.status !== 200 || r.value.body === null) return http.failure(r.value, 'credential rotation');
    const j = JSON.parse(r.value.body.toString('utf8')) as CredentialAnswer;
    const next: HostCredential = {
      ...held,
      credential: j.credential,
      expiresMs: j.credentialExpiresMs ?? null,
      rotateAfterMs: j.credentialRotateAfterMs ?? null,
      refusedMs: null,
    };
    this.save(next);
    this.opts.log('info', 'This host rotated its server credential.', {
      hostId: this.opts.hostId,
      expires: next.expiresMs === null ? null : new Date(next.expiresMs as number).toISOString(),
    });
    return { ok: true, value: next };
  }

  private async enrol(http: ServerCalls): Promise<Step<HostCredential>> {
    const token = this.opts.token.get();
    if (token === null)
      return fail(
        'not-enrolled',
        'this host is not enrolled and no enrolment token is configured (sync.enrolTokenEnv or sync.enrolTokenFile)',
      );
    if (!token.ok) return fail('not-enrolled', token.error);
    const proof = this.credential?.credential ?? null;
    const r = await http.call(
      'POST',
      '/v1/enroll',
      { token: token.value, hostId: this.opts.hostId, hostName: this.opts.hostName, ...(proof === null ? {} : { credential: proof }) },
      false,
    );
    if (!r.ok) return r;
    if (r.value.status !== 200 || r.value.body === null) {
      if (r.value.status === 409) {
        const f = http.failure(r.value, 'enrolment');
        return fail('host-enrolled', f.error);
      }
      return http.failure(r.value, 'enrolment');
    }
    const j = JSON.parse(r.value.body.toString('utf8')) as CredentialAnswer & {
      org: string;
      keyId: string;
      baselineVersion?: number | null;
    };
    const cred: HostCredential = {
      serverUrl: this.opts.serverUrl as string,
      org: j.org,
      hostId: this.opts.hostId,
      credential: j.credential,
      enrolledMs: this.opts.now(),
      expiresMs: j.credentialExpiresMs ?? null,
      rotateAfterMs: j.credentialRotateAfterMs ?? null,
      // Enrolling again never lowers the floor this host already had.
      minBaselineVersion: Math.max(j.baselineVersion ?? 0, this.credential?.minBaselineVersion ?? 0) || null,
      refusedMs: null,
    };
    this.save(cred);
    this.opts.log('info', 'This host enrolled with the baseline server.', {
      org: j.org,
      hostId: this.opts.hostId,
      serverKeyId: j.keyId,
      again: proof !== null,
      baselineVersion: cred.minBaselineVersion,
    });
    return { ok: true, value: cred };
  }
}
