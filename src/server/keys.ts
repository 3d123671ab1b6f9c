// The server's Ed25519 signing key and admin token, made at first start and
// kept in the state folder, mode 0600. The public key is what endpoints pin.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, privateKeyPem, signingKeyFromPem, type SigningKey } from '../baseline/signature.js';
import { ADMIN_TOKEN_PREFIX, loadOrCreateSecretFile, newSecret, writeSecretFile } from '../common/secrets.js';

export const SIGNING_KEY_FILE = 'signing-key.pem';
export const PUBLIC_KEY_FILE = 'signing-key.pub';
export const ADMIN_TOKEN_FILE = 'admin-token';

export function loadOrCreateSigningKey(stateDir: string): { key: SigningKey; created: boolean } {
  const path = join(stateDir, SIGNING_KEY_FILE);
  if (existsSync(path)) {
    try {
      return { key: signingKeyFromPem(readFileSync(path)), created: false };
    } catch (e) {
      throw new Error(
        `the signing key ${path} is not a usable Ed25519 key (${(e as Error).message}); restore it from a backup, or move it away to make a new one (every endpoint must then pin the new public key)`,
      );
    }
  }
  const key = generateSigningKey();
  writeSecretFile(path, privateKeyPem(key));
  writeSecretFile(join(stateDir, PUBLIC_KEY_FILE), `${key.publicKeyText}\n`);
  return { key, created: true };
}

export function loadOrCreateAdminToken(stateDir: string): { token: string; created: boolean } {
  const r = loadOrCreateSecretFile(join(stateDir, ADMIN_TOKEN_FILE), () => newSecret(ADMIN_TOKEN_PREFIX));
  return { token: r.value, created: r.created };
}
