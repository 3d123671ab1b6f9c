// Talking to a server by the sha256 of its certificate (a pin) instead of a
// CA: the baseline server makes its own certificate, and endpoints are told
// its sha256 when they are given their enrolment token. The agent below makes
// the TLS connection, compares the certificate the server showed with the pin,
// and only then hands the socket to the HTTP request: not one byte of the
// request (a token, a credential) goes to a server that is not the pinned one.
import https from 'node:https';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ClientRequestArgs } from 'node:http';

const PIN_RE = /^sha256:([0-9a-f]{64})$/;

/** `sha256:<hex>` in lower case, from that form or the colon-separated hex openssl prints; null when neither. */
export function normalizePin(text: string): string | null {
  const t = text.trim().toLowerCase();
  if (PIN_RE.test(t)) return t;
  const bare = t.replace(/^sha256[:=/ ]?/, '').replace(/:/g, '');
  return /^[0-9a-f]{64}$/.test(bare) ? `sha256:${bare}` : null;
}

export function pinOf(derCertificate: Buffer): string {
  return `sha256:${createHash('sha256').update(derCertificate).digest('hex')}`;
}

/** An HTTPS agent whose connections are good only when the server's certificate has this pin. */
export class PinnedAgent extends https.Agent {
  constructor(
    private readonly pin: string,
    opts: https.AgentOptions = {},
  ) {
    super(opts);
  }

  // The callback form: the HTTP request gets the socket only once the pin has been checked.
  override createConnection(options: ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): Duplex | undefined {
    const done = (err: Error | null, s?: Duplex): void => cb?.(err, s as Duplex);
    // The pin replaces the CA chain and the name check; both are checked by the comparison below.
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false });
    let settled = false;
    const onError = (e: Error): void => {
      if (settled) return;
      settled = true;
      done(e);
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      if (settled) return;
      const cert = socket.getPeerX509Certificate();
      const got = cert === undefined ? 'no certificate' : pinOf(cert.raw);
      if (got !== this.pin) {
        settled = true;
        socket.destroy();
        const e = new Error(
          `the server's TLS certificate is ${got}, not the pinned ${this.pin} (sync.serverCertSha256): not the server this endpoint was given, or its certificate was replaced`,
        ) as NodeJS.ErrnoException;
        e.code = 'ERR_TLS_PIN_MISMATCH';
        done(e);
        return;
      }
      settled = true;
      socket.off('error', onError);
      done(null, socket);
    });
    return undefined;
  }
}

/** A readable reason for a TLS failure a server's certificate caused, with what to configure. */
export function tlsFailureHint(e: NodeJS.ErrnoException): string | null {
  switch (e.code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'the server certificate is not signed by a CA this endpoint trusts: give it the pin "rarecon server enroll" printed (sync.serverCertSha256), or the CA (sync.caFile)';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'the server certificate does not name the host in sync.serverUrl: pin it (sync.serverCertSha256) or set sync.serverName';
    default:
      return null;
  }
}
