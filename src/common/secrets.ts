// Tokens and credentials of the baseline server: random, prefixed so a leaked
// one is recognisable, and stored only as their sha256. Files holding a secret
// are created 0600 in a 0700 folder.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PRIVATE_DIR_MODE, replaceFile } from './private-files.js';

export const ENROL_TOKEN_PREFIX = 'rce_';
export const HOST_CREDENTIAL_PREFIX = 'rch_';
export const ADMIN_TOKEN_PREFIX = 'rca_';

export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function secretHash(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function sameSecret(a: string, b: string): boolean {
  const ha = secretHash(a);
  const hb = secretHash(b);
  return timingSafeEqual(ha, hb);
}

/** Writes a secret file atomically with mode 0600 (its folder 0700 when created here), through an exclusive temp file. */
export function writeSecretFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
  replaceFile(path, content, { fsync: true });
}

/** The secret in `path`, made (0600) when missing. */
export function loadOrCreateSecretFile(path: string, make: () => string): { value: string; created: boolean } {
  if (existsSync(path)) return { value: readFileSync(path, 'utf8').trim(), created: false };
  const value = make();
  writeSecretFile(path, `${value}\n`);
  return { value, created: true };
}
