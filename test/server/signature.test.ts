// The signature envelope on its own: what verifies and what does not.
import { describe, expect, it } from 'vitest';
import { canonicalJson, generateSigningKey, parsePublicKey, signContent, verifySigned } from '../../src/baseline/signature.js';
import { DEFAULT_THRESHOLDS } from '../../src/config/defaults.js';
import { DEFAULT_POLICY } from '../../src/model/root-domain.js';
import type { BaselineMeta } from '../../src/model/baseline.js';

const meta: BaselineMeta = {
  version: 7,
  builtAtMs: 1,
  windowStartMs: 0,
  windowEndMs: 86_400_000,
  observerUnit: 'org',
  populationSize: 3,
  policy: DEFAULT_POLICY,
  thresholds: DEFAULT_THRESHOLDS,
  omitsSingleObserverCombos: true,
  processCount: 1,
  comboCount: 1,
};

describe('signature envelope', () => {
  const key = generateSigningKey();
  const body = signContent(
    { kind: 'delta', meta, fromVersion: 6, prefixes: null, bucketHexChars: 4 },
    Buffer.from('{"processes":[],"combos":[]}'),
    key,
  );

  it('is canonical JSON whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: 2 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}');
  });

  it('verifies with the signing key, also when pinned as text', () => {
    const pinned = parsePublicKey(key.publicKeyText);
    expect(pinned.ok).toBe(true);
    if (!pinned.ok) return;
    const v = verifySigned(body, pinned.key);
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.header).toMatchObject({ kind: 'delta', fromVersion: 6, meta: { version: 7 } });
  });

  it('refuses another key, a changed header, changed or cut content, and no envelope', () => {
    const other = generateSigningKey();
    expect(verifySigned(body, other.publicKey)).toMatchObject({ ok: false, code: 'wrong-key' });
    const nl = body.indexOf(0x0a);
    const env = JSON.parse(body.subarray(0, nl).toString()) as { header: string; signature: string };
    const header = JSON.parse(Buffer.from(env.header, 'base64url').toString()) as Record<string, unknown>;
    header.fromVersion = 1;
    const forged = Buffer.concat([
      Buffer.from(JSON.stringify({ ...env, header: Buffer.from(canonicalJson(header)).toString('base64url') })),
      body.subarray(nl),
    ]);
    expect(verifySigned(forged, key.publicKey)).toMatchObject({ ok: false, code: 'bad-signature' });
    const flipped = Buffer.from(body);
    flipped[flipped.length - 2]! ^= 1;
    expect(verifySigned(flipped, key.publicKey)).toMatchObject({ ok: false, code: 'digest-mismatch' });
    expect(verifySigned(body.subarray(0, body.length - 3), key.publicKey)).toMatchObject({ ok: false, code: 'truncated' });
    expect(verifySigned(Buffer.from('{"processes":[]}'), key.publicKey)).toMatchObject({ ok: false, code: 'unsigned' });
  });

  it('rejects public keys that are not Ed25519 keys', () => {
    expect(parsePublicKey('ed25519:AAAA').ok).toBe(false);
    expect(parsePublicKey('hello').ok).toBe(false);
  });
});
