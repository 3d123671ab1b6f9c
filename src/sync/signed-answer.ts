// The server's Ed25519 key the endpoint pins (sync.serverPublicKey or
// sync.serverPublicKeyFile), and the checks every signed answer passes before
// its content is looked at: envelope and signature, digest and length, kind,
// and a root-domain policy this rarecon scores with.
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { checkContent, parsePublicKey, verifyEnvelope, type SignedHeader } from '../baseline/signature.js';
import { policyProblem } from '../model/root-domain.js';
import type { SyncConfig } from '../config/defaults.js';
import type { SignedDownload } from './http-client.js';
import { fail, type Step } from './step.js';

/**
 * The pinned key; null without a server (standalone). Throws when a server is
 * configured without a key, or the key cannot be read or parsed: the endpoint
 * refuses unsigned baselines.
 */
export function loadPinnedKey(cfg: Pick<SyncConfig, 'serverUrl' | 'serverPublicKey' | 'serverPublicKeyFile'>): KeyObject | null {
  if (cfg.serverUrl === null) return null;
  let text = cfg.serverPublicKey;
  if (text === null && cfg.serverPublicKeyFile !== null) {
    try {
      text = readFileSync(cfg.serverPublicKeyFile, 'utf8');
    } catch (e) {
      throw new Error(`sync.serverPublicKeyFile ${cfg.serverPublicKeyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (text === null) throw new Error('sync.serverPublicKey is required with sync.serverUrl: the endpoint refuses unsigned baselines');
  const k = parsePublicKey(text);
  if (!k.ok) throw new Error(`sync.serverPublicKey: ${k.error}`);
  return k.key;
}

/** The verified header of a signed download of `kind`; every failure is a refusal. */
export function verifySigned(key: KeyObject, signed: SignedDownload, kind: SignedHeader['kind']): Step<SignedHeader> {
  const env = verifyEnvelope(signed.envelope, key);
  if (!env.ok) return fail(env.code, `refused: ${env.error}`, { refused: true });
  const c = checkContent(env.header, signed.sha256, signed.bytes);
  if (!c.ok) return fail(c.code, `refused: ${c.error}`, { refused: true });
  if (env.header.kind !== kind) return fail('wrong-kind', `refused: expected a ${kind}, got a ${env.header.kind}`, { refused: true });
  const p = policyProblem(env.header.meta.policy);
  if (p !== null) return fail('policy', `refused: ${p}`, { refused: true });
  return { ok: true, value: env.header };
}
