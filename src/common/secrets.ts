// Tokens and credentials of the baseline server: random, prefixed so a leaked
// one is recognisable, and stored only as their sha256. Files holding a secret
// are created 0600 in a 0700 folder.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** Writes a secret file atomically with mode 0600 (its folder 0700 when created here). */
export function writeSecretFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The secret in `path`, made (0600) when missing. */
export function loadOrCreateSecretFile(path: string, make: () => string): { value: string; created: boolean } {
  if (existsSync(path)) return { value: readFileSync(path, 'utf8').trim(), created: false };
  const value = make();
  writeSecretFile(path, `${value}\n`);
  return { value, created: true };
}
