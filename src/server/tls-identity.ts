// The server's TLS certificate: the configured one (server.tlsCertFile and
// tlsKeyFile), or its own, made at first start in the state folder
// (tls-cert.pem, tls-key.pem 0600): a self-signed ECDSA P-256 certificate.
// Endpoints pin its sha256 (`rarecon server enroll` prints it), so it needs no
// CA. Node makes keys and signatures but not certificates, so the few DER
// structures of one are written here (RFC 5280), and the result is read back
// with Node's own X509Certificate before it is used.
import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeSecretFile } from '../common/secrets.js';

export const TLS_CERT_FILE = 'tls-cert.pem';
export const TLS_KEY_FILE = 'tls-key.pem';
/** The server's own certificate is good for ten years: endpoints pin it, so its dates matter to no one. */
const OWN_CERT_DAYS = 3650;

export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
  /** What endpoints pin: `sha256:<hex of the DER certificate>`. */
  certSha256: string;
  /** `own`: made by the server (in the state folder); `configured`: server.tlsCertFile. */
  source: 'own' | 'configured';
  created: boolean;
  notAfter: string;
}

/** The pin form of a certificate: `sha256:` and the lower-case hex of the sha256 of its DER bytes. */
export function certPin(cert: X509Certificate): string {
  return `sha256:${createHash('sha256').update(cert.raw).digest('hex')}`;
}

/**
 * The configured certificate, or the server's own (made when missing). Throws
 * with a message naming the file when one cannot be read or is not a usable
 * certificate and key.
 */
export function loadTlsIdentity(
  c: { stateDir: string; tlsCertFile: string | null; tlsKeyFile: string | null; listenHost: string },
  nowMs = Date.now(),
): TlsIdentity {
  if (c.tlsCertFile !== null && c.tlsKeyFile !== null) return readIdentity(c.tlsCertFile, c.tlsKeyFile, 'configured', false);
  const certPath = join(c.stateDir, TLS_CERT_FILE);
  const keyPath = join(c.stateDir, TLS_KEY_FILE);
  if (existsSync(certPath) && existsSync(keyPath)) return readIdentity(certPath, keyPath, 'own', false);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = selfSignedCertificate(privateKey, serverNames(c.listenHost), nowMs);
  writeSecretFile(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  writeSecretFile(certPath, pem('CERTIFICATE', der));
  return readIdentity(certPath, keyPath, 'own', true);
}

function readIdentity(certPath: string, keyPath: string, source: TlsIdentity['source'], created: boolean): TlsIdentity {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certPath);
  } catch (e) {
    throw new Error(`cannot read the TLS certificate ${certPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    key = readFileSync(keyPath);
  } catch (e) {
    throw new Error(`cannot read the TLS key ${keyPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`the TLS certificate ${certPath} is not a PEM certificate: ${(e as Error).message}`);
  }
  let k: KeyObject;
  try {
    k = createPrivateKey(key);
  } catch (e) {
    throw new Error(`the TLS key ${keyPath} is not a PEM private key: ${(e as Error).message}`);
  }
  if (!x.checkPrivateKey(k)) throw new Error(`the TLS key ${keyPath} does not belong to the certificate ${certPath}`);
  return { cert, key, certSha256: certPin(x), source, created, notAfter: x.validTo };
}

/** Names the own certificate covers: this host's name, localhost, loopback and every address of this host (or the one listened on). */
function serverNames(listenHost: string): { dns: string[]; ips: string[] } {
  const dns = new Set<string>(['localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const h = hostname();
  if (h !== '' && isIP(h) === 0) dns.add(h);
  if (isIP(listenHost) !== 0 && listenHost !== '0.0.0.0' && listenHost !== '::') ips.add(listenHost);
  else if (isIP(listenHost) === 0 && listenHost !== '') dns.add(listenHost);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.address.includes('%')) ips.add(a.address);
  return { dns: [...dns], ips: [...ips] };
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

// ---------------------------------------------------------------------------
// DER, just what a certificate needs

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, b: Buffer): Buffer => tlv(0xa0 + n, b);

function int(b: Buffer): Buffer {
  // Positive: a leading 0 when the top bit is set.
  return tlv(0x02, (b[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const enc: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) enc.unshift((v & 0x7f) | 0x80);
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString();
  const y = Number(iso.slice(0, 4));
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  return y < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

export function selfSignedCertificate(key: KeyObject, names: { dns: string[]; ips: string[] }, nowMs: number): Buffer {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const name = seq(set(seq(oid('2.5.4.3'), utf8('rarecon baseline server'))));
  const alg = seq(oid(ECDSA_SHA256));
  const san = seq(
    ...names.dns.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))),
    ...names.ips.filter((i) => isIP(i) !== 0).map((i) => tlv(0x87, ipBytes(i))),
  );
  const extensions = seq(
    seq(oid('2.5.29.19'), bool(true), octets(seq())), // basicConstraints: not a CA
    seq(oid('2.5.29.15'), bool(true), octets(tlv(0x03, Buffer.from([0x07, 0x80])))), // keyUsage: digitalSignature
    seq(oid('2.5.29.37'), octets(seq(oid('1.3.6.1.5.5.7.3.1')))), // extKeyUsage: serverAuth
    seq(oid('2.5.29.17'), octets(san)),
  );
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f || 0x01;
  const tbs = seq(
    explicit(0, int(Buffer.from([2]))),
    int(serial),
    alg,
    name,
    seq(time(nowMs - 60 * 60_000), time(nowMs + OWN_CERT_DAYS * 86_400_000)),
    name,
    spki,
    explicit(3, extensions),
  );
  const signature = sign('sha256', tbs, key);
  return seq(tbs, alg, bits(signature));
}
