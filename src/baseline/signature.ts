// Ed25519 signatures over baseline snapshots, deltas and buckets (DETECTION.md
// section 9). What is signed is a small canonical JSON header that names the
// content by its sha256 and byte count, so a body of any size is verified by
// hashing it as it streams, and the signature never depends on how a JSON body
// happens to be serialised.
//
// Wire framing of every signed response ("application/x-rarecon-signed"):
//   line 1: {"header":"<base64url of the header bytes>","signature":"<base64url>"}\n
//   then:   the content bytes, exactly contentBytes long, hashing to contentSha256.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { BaselineMeta, ObserverUnit } from '../model/baseline.js';

export const SIGNED_FORMAT = 'rarecon-baseline/1';
export const SIGNED_MEDIA_TYPE = 'application/x-rarecon-signed';
/** Prefixed to the header bytes before signing, so a signature made for anything else never verifies here. */
const DOMAIN = Buffer.from('rarecon baseline signature v1\0', 'utf8');
/** The envelope line is small; a longer first line is not an envelope. */
export const MAX_ENVELOPE_LINE_BYTES = 1024 * 1024;

export type SignedKind = 'snapshot' | 'delta' | 'buckets';

export interface SignedHeader {
  format: typeof SIGNED_FORMAT;
  kind: SignedKind;
  /** The baseline the holder has once the content is applied. */
  meta: BaselineMeta;
  /** delta, and buckets fetched `since` a version: the version the changes start from; null = complete content. */
  fromVersion: number | null;
  /** buckets: the bucket prefixes and cell keys covered (bucket-cache.ts); null for snapshot and delta. */
  prefixes: string[] | null;
  /** Hex digits of a bucket prefix on this server. */
  bucketHexChars: number;
  contentSha256: string;
  contentBytes: number;
  /** First 16 hex digits of the sha256 of the raw public key. */
  keyId: string;
}

export interface Envelope {
  header: string;
  signature: string;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  /** `ed25519:<base64url raw key>`: what an endpoint pins. */
  publicKeyText: string;
}

// ---------------------------------------------------------------------------
// Canonical JSON: keys sorted, no whitespace, integers only where numbers are.

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonicalJson: numbers must be finite');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
}

// ---------------------------------------------------------------------------
// Keys

function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' }) as { x?: string };
  if (jwk.x === undefined) throw new Error('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

export function publicKeyText(publicKey: KeyObject): string {
  return `ed25519:${rawPublicKey(publicKey).toString('base64url')}`;
}

export function signingKeyFrom(privateKey: KeyObject): SigningKey {
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error(`the signing key is ${privateKey.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicKeyText: publicKeyText(publicKey) };
}

export function generateSigningKey(): SigningKey {
  return signingKeyFrom(generateKeyPairSync('ed25519').privateKey);
}

export function signingKeyFromPem(pem: string | Buffer): SigningKey {
  return signingKeyFrom(createPrivateKey(pem));
}

export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

export type PublicKeyResult = { ok: true; key: KeyObject; keyId: string } | { ok: false; error: string };

/** Accepts `ed25519:<base64url or base64 raw 32-byte key>` or an SPKI PEM. */
export function parsePublicKey(text: string): PublicKeyResult {
  const t = text.trim();
  try {
    let key: KeyObject;
    if (t.startsWith('ed25519:')) {
      const raw = Buffer.from(t.slice('ed25519:'.length).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
      if (raw.length !== 32) return { ok: false, error: `an Ed25519 public key is 32 bytes, this one decodes to ${raw.length}` };
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    } else if (t.includes('-----BEGIN PUBLIC KEY-----')) {
      key = createPublicKey(t);
    } else {
      return { ok: false, error: 'expected "ed25519:<base64url key>" (as printed by "rarecon server") or a PEM public key' };
    }
    if (key.asymmetricKeyType !== 'ed25519')
      return { ok: false, error: `the public key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519` };
    return { ok: true, key, keyId: keyIdOf(key) };
  } catch (e) {
    return { ok: false, error: `not a usable public key: ${(e as Error).message}` };
  }
}

// ---------------------------------------------------------------------------
// Signing and verifying

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Signs a header for content already hashed; returns the envelope line (with its newline). */
export function signHeader(header: Omit<SignedHeader, 'format' | 'keyId'>, key: SigningKey): { header: SignedHeader; line: Buffer } {
  const full: SignedHeader = { format: SIGNED_FORMAT, ...header, keyId: key.keyId };
  const bytes = Buffer.from(canonicalJson(full), 'utf8');
  const signature = sign(null, Buffer.concat([DOMAIN, bytes]), key.privateKey);
  const env: Envelope = { header: bytes.toString('base64url'), signature: signature.toString('base64url') };
  return { header: full, line: Buffer.from(`${JSON.stringify(env)}\n`, 'utf8') };
}

/** Envelope line + content, for content held in memory. */
export function signContent(
  header: Omit<SignedHeader, 'format' | 'keyId' | 'contentSha256' | 'contentBytes'>,
  content: Buffer,
  key: SigningKey,
): Buffer {
  const { line } = signHeader({ ...header, contentSha256: sha256Hex(content), contentBytes: content.length }, key);
  return Buffer.concat([line, content]);
}

export type VerifyCode = 'unsigned' | 'bad-envelope' | 'bad-signature' | 'wrong-key' | 'bad-header' | 'digest-mismatch' | 'truncated';
export type VerifyResult = { ok: true; header: SignedHeader } | { ok: false; code: VerifyCode; error: string };

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const UNITS: readonly ObserverUnit[] = ['org', 'host', 'day'];

function metaProblem(m: unknown): string | null {
  if (m === null || typeof m !== 'object') return 'meta is missing';
  const x = m as Record<string, unknown>;
  for (const k of ['version', 'builtAtMs', 'windowStartMs', 'windowEndMs', 'populationSize', 'processCount', 'comboCount']) {
    if (!isCount(x[k])) return `meta.${k} is not a count`;
  }
  if (!UNITS.includes(x.observerUnit as ObserverUnit)) return 'meta.observerUnit is not org, host or day';
  if (x.observerMinUploadDays !== undefined && !(isCount(x.observerMinUploadDays) && x.observerMinUploadDays >= 1))
    return 'meta.observerMinUploadDays is not a count of at least 1';
  if (x.nextBuildByMs !== undefined && !isCount(x.nextBuildByMs)) return 'meta.nextBuildByMs is not a time in epoch ms';
  if (typeof x.omitsSingleObserverCombos !== 'boolean') return 'meta.omitsSingleObserverCombos is not a boolean';
  const p = x.policy as Record<string, unknown> | null;
  if (p === null || typeof p !== 'object' || typeof p.allowPrivateDomains !== 'boolean' || typeof p.pslVersion !== 'string')
    return 'meta.policy is incomplete';
  const t = x.thresholds as Record<string, unknown> | null;
  if (t === null || typeof t !== 'object') return 'meta.thresholds is missing';
  for (const k of ['uncommonBelowObservers', 'rareMaxObservers', 'veryRareMaxObservers', 'commonProcessMinObservers']) {
    if (!isCount(t[k])) return `meta.thresholds.${k} is not a count`;
  }
  return null;
}

function headerProblem(h: Record<string, unknown>): string | null {
  if (h.format !== SIGNED_FORMAT) return `format is ${JSON.stringify(h.format)}, expected ${SIGNED_FORMAT}`;
  if (h.kind !== 'snapshot' && h.kind !== 'delta' && h.kind !== 'buckets') return `kind ${JSON.stringify(h.kind)} is unknown`;
  const mp = metaProblem(h.meta);
  if (mp !== null) return mp;
  if (h.fromVersion !== null && !isCount(h.fromVersion)) return 'fromVersion is not a count';
  if (
    h.prefixes !== null &&
    !(Array.isArray(h.prefixes) && h.prefixes.every((p) => typeof p === 'string' && /^[0-9a-f]{1,64}(-\d{1,2}-[0-9a-f]{1,4})?$/.test(p)))
  )
    return 'prefixes is not a list of hex prefixes';
  if (!isCount(h.bucketHexChars) || h.bucketHexChars < 1 || h.bucketHexChars > 64) return 'bucketHexChars is out of range';
  if (typeof h.contentSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(h.contentSha256)) return 'contentSha256 is not a sha256';
  if (!isCount(h.contentBytes)) return 'contentBytes is not a count';
  if (typeof h.keyId !== 'string') return 'keyId is missing';
  return null;
}

/** Parses and verifies an envelope line against the pinned key; the content digest is checked by `checkContent`. */
export function verifyEnvelope(line: Buffer | string, publicKey: KeyObject): VerifyResult {
  const text = (typeof line === 'string' ? line : line.toString('utf8')).trim();
  if (text === '') return { ok: false, code: 'unsigned', error: 'the response carries no signature envelope' };
  let env: Partial<Envelope>;
  try {
    env = JSON.parse(text) as Partial<Envelope>;
  } catch {
    return { ok: false, code: 'unsigned', error: 'the response does not start with a signature envelope' };
  }
  if (env === null || typeof env !== 'object' || typeof env.header !== 'string')
    return { ok: false, code: 'bad-envelope', error: 'the envelope has no header' };
  if (typeof env.signature !== 'string' || env.signature === '')
    return { ok: false, code: 'unsigned', error: 'the envelope has no signature' };
  const headerBytes = Buffer.from(env.header, 'base64url');
  const signature = Buffer.from(env.signature, 'base64url');
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(headerBytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return { ok: false, code: 'bad-envelope', error: 'the signed header is not JSON' };
  }
  const expectedKeyId = keyIdOf(publicKey);
  let good = false;
  try {
    good = signature.length === 64 && verify(null, Buffer.concat([DOMAIN, headerBytes]), publicKey, signature);
  } catch {
    good = false;
  }
  if (!good) {
    if (typeof parsed.keyId === 'string' && parsed.keyId !== expectedKeyId) {
      return { ok: false, code: 'wrong-key', error: `signed by key ${parsed.keyId}, but this endpoint pins key ${expectedKeyId}` };
    }
    return { ok: false, code: 'bad-signature', error: `the signature does not verify with the pinned key ${expectedKeyId}` };
  }
  const problem = headerProblem(parsed);
  if (problem !== null) return { ok: false, code: 'bad-header', error: `signed header: ${problem}` };
  return { ok: true, header: parsed as unknown as SignedHeader };
}

/** The content as received against what the header says it is. */
export function checkContent(header: SignedHeader, actualSha256: string, actualBytes: number): VerifyResult {
  if (actualBytes < header.contentBytes)
    return { ok: false, code: 'truncated', error: `content truncated: ${actualBytes} of ${header.contentBytes} bytes` };
  if (actualBytes !== header.contentBytes || actualSha256 !== header.contentSha256) {
    return {
      ok: false,
      code: 'digest-mismatch',
      error: `content does not match its signed digest (${actualBytes} bytes, sha256 ${actualSha256.slice(0, 16)}...)`,
    };
  }
  return { ok: true, header };
}

/** Splits an in-memory signed body and verifies both parts. */
export function verifySigned(
  body: Buffer,
  publicKey: KeyObject,
): { ok: true; header: SignedHeader; content: Buffer } | { ok: false; code: VerifyCode; error: string } {
  const nl = body.indexOf(0x0a);
  if (nl < 0 || nl > MAX_ENVELOPE_LINE_BYTES) return { ok: false, code: 'unsigned', error: 'the response carries no signature envelope' };
  const env = verifyEnvelope(body.subarray(0, nl), publicKey);
  if (!env.ok) return env;
  const content = body.subarray(nl + 1);
  const c = checkContent(env.header, sha256Hex(content), content.length);
  if (!c.ok) return c;
  return { ok: true, header: env.header, content };
}
