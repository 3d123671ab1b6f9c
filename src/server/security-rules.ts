// The server's security rules, apart from any storage: who may enrol, which
// credential is still good, which host counts as an observer, where an alert
// is filed. A store (SQLite today, server.db) loads the rows a decision needs
// inside one transaction, asks these functions, and writes what they decide,
// so every store applies exactly the same rules (docs/security.md).
import { DAY_MS } from '../model/baseline.js';

/** The rows an enrolment decision reads: the token presented and the host id's current row in the token's org. */
export interface EnrolFacts {
  token: { revokedMs: number | null; maxHosts: number; hostsAdmitted: number } | null;
  host: {
    revokedMs: number | null;
    /** Whether the credential sent as proof is this host's current one (expired or not), or its previous one within the grace. */
    proofMatches: boolean;
    /** Until when an operator allowed this host id to enrol again without proof (`rarecon server allow-reenrol`). */
    reenrolAllowedUntilMs: number | null;
  } | null;
  nowMs: number;
}

export type EnrolDecision =
  | { ok: true; action: 'admit' }
  | { ok: true; action: 'rotate'; by: 'proof' | 'operator' }
  | { ok: false; status: 401 | 403 | 409; code: string; error: string };

/**
 * A new host id is admitted while the token has room; a host id already
 * enrolled gets a new credential only with its current credential as proof or
 * an operator's grant, never with the org token alone (no takeover).
 */
export function decideEnrolment(f: EnrolFacts, hostId: string, org: string): EnrolDecision {
  if (f.token === null) return { ok: false, status: 401, code: 'unauthenticated', error: 'unknown enrolment token' };
  if (f.token.revokedMs !== null) return { ok: false, status: 403, code: 'revoked', error: 'this enrolment token was revoked' };
  const h = f.host;
  if (h !== null) {
    if (h.revokedMs !== null)
      return { ok: false, status: 403, code: 'revoked', error: `host ${hostId} was revoked; an operator must enrol it under a new id` };
    if (h.proofMatches) return { ok: true, action: 'rotate', by: 'proof' };
    if (h.reenrolAllowedUntilMs !== null && f.nowMs < h.reenrolAllowedUntilMs) return { ok: true, action: 'rotate', by: 'operator' };
    return {
      ok: false,
      status: 409,
      code: 'host-enrolled',
      error: `host ${hostId} is already enrolled in org ${org}; enrolling it again needs its current credential (server-credential.json in its state folder) or an operator's "rarecon server allow-reenrol ${hostId} --org ${org}"`,
    };
  }
  if (f.token.hostsAdmitted >= f.token.maxHosts)
    return {
      ok: false,
      status: 403,
      code: 'token-full',
      error: `this enrolment token has admitted the ${f.token.maxHosts} hosts it was made for; make another with "rarecon server enroll --org ${org} --max-hosts N"`,
    };
  return { ok: true, action: 'admit' };
}

export interface CredentialTimes {
  /** When the credential in use was issued. */
  issuedMs: number;
  /** A rotation leaves the previous credential usable until then (requests in flight, the alert sink's next batch). */
  previousUntilMs: number | null;
}

export interface CredentialPolicy {
  /** 0 = credentials never expire. */
  lifetimeMs: number;
  /** How long the previous credential stays good after a rotation. */
  graceMs: number;
}

export function credentialExpiresMs(issuedMs: number, p: CredentialPolicy): number | null {
  return p.lifetimeMs === 0 ? null : issuedMs + p.lifetimeMs;
}

/** When the client should rotate: half way through the lifetime, so a host that syncs every few hours never meets the expiry. */
export function credentialRotateAfterMs(issuedMs: number, p: CredentialPolicy): number | null {
  return p.lifetimeMs === 0 ? null : issuedMs + Math.floor(p.lifetimeMs / 2);
}

export type CredentialCheck = { ok: true } | { ok: false; status: 401; code: 'credential-expired'; error: string };

/** The credential presented was the current one (`current`) or the previous one (`previous`) of a host with these times. */
export function checkCredential(which: 'current' | 'previous', t: CredentialTimes, p: CredentialPolicy, nowMs: number): CredentialCheck {
  if (which === 'previous') {
    if (t.previousUntilMs !== null && nowMs < t.previousUntilMs) return { ok: true };
    return { ok: false, status: 401, code: 'credential-expired', error: 'this credential was rotated: use the one the rotation gave' };
  }
  const expires = credentialExpiresMs(t.issuedMs, p);
  if (expires !== null && nowMs >= expires)
    return {
      ok: false,
      status: 401,
      code: 'credential-expired',
      error: `this host credential expired at ${new Date(expires).toISOString()}; enrol again with the org token and this credential as proof`,
    };
  return { ok: true };
}

/** The UTC day of a time (epoch days), as uploads are counted by. */
export function uploadDay(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS);
}

/** A host's upload-day count after an upload at `nowMs`. */
export function afterUpload(
  h: { uploadDays: number; lastUploadDay: number | null },
  nowMs: number,
): { uploadDays: number; lastUploadDay: number } {
  const day = uploadDay(nowMs);
  return h.lastUploadDay === day ? { uploadDays: h.uploadDays, lastUploadDay: day } : { uploadDays: h.uploadDays + 1, lastUploadDay: day };
}

/**
 * With observer unit `host`, a host counts toward prevalence from its Nth
 * distinct day of uploads (DETECTION.md section 9: the third), so a batch of
 * freshly enrolled hosts cannot make a combo common at once. Orgs are made by
 * an operator (`server enroll`), so the org unit counts every org.
 */
export function countsAsObserver(unit: 'org' | 'host', uploadDays: number, minUploadDays: number): boolean {
  return unit === 'org' || uploadDays >= minUploadDays;
}

/**
 * Alerts are filed by the host that sent them: the same uid from another host
 * (or another org) is another alert, and never touches this one's row.
 */
export function alertScope(host: { ref: number; orgId: number }, uid: string): { hostRef: number; orgId: number; uid: string } {
  return { hostRef: host.ref, orgId: host.orgId, uid };
}

/** A redelivery carries the very body already stored; anything else for the same (host, uid) is an update (a later count). */
export function alertChange(storedBody: string | null, body: string): 'new' | 'duplicate' | 'update' {
  if (storedBody === null) return 'new';
  return storedBody === body ? 'duplicate' : 'update';
}
