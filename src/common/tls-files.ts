// PEM files for TLS, read once at start-up: a missing or unreadable file is a
// configuration error that stops rarecon with a message saying which.
import { readFileSync } from 'node:fs';

/** TLS files a client may be configured with (a sink's settings carry them). */
export interface TlsFiles {
  /** PEM CA bundle to verify the server with; null = the system's. */
  caFile: string | null;
  /** PEM client certificate and key for mutual TLS. */
  certFile: string | null;
  keyFile: string | null;
  /** Name to verify the server certificate against, when not the host. */
  serverName: string | null;
}

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
}

function read(what: string, file: string, sink: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`sink ${sink}: cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function loadTlsFiles(files: TlsFiles, sink: string): TlsMaterial {
  const out: TlsMaterial = {};
  if (files.caFile !== null) out.ca = read('CA file', files.caFile, sink);
  if (files.certFile !== null) out.cert = read('client certificate', files.certFile, sink);
  if (files.keyFile !== null) out.key = read('client key', files.keyFile, sink);
  if (files.serverName !== null) out.servername = files.serverName;
  return out;
}
