// The boundary between the server's HTTP side and its storage: what the routes
// and the operator commands ask of a store. server.db (intake-store.ts,
// SQLite) for one machine; PostgreSQL (pg-store.ts) for any number of nodes.
// Both decide with the same rules (security-rules.ts).
import type { CredentialPolicy } from './security-rules.js';
import type { DayBatch } from './sightings-batch.js';

export interface HostRow {
  ref: number;
  orgId: number;
  org: string;
  hostId: string;
  name: string | null;
  enrolledMs: number;
  revokedMs: number | null;
  lastSeenMs: number | null;
  /** When the credential in use was issued (its expiry follows from the server's policy). */
  credentialIssuedMs: number;
  /** Distinct UTC days on which this host uploaded sightings (the observer rule counts them). */
  uploadDays: number;
  lastUploadDay: number | null;
  /** The enrolment token that admitted it (its id, see TokenRow); null for hosts from before tokens had ids. */
  tokenId: string | null;
}

export interface TokenRow {
  /** The first 12 hex digits of the token's sha256: lists and revokes it, cannot enrol. */
  id: string;
  org: string;
  createdMs: number;
  revokedMs: number | null;
  maxHosts: number;
  hostsAdmitted: number;
}

export interface EnrolRequest {
  token: string;
  hostId: string;
  hostName: string | null;
  /** The host's current (or expired) credential, which proves it is the same host enrolling again. */
  proof: string | null;
}

export interface IssuedCredential {
  credential: string;
  expiresMs: number | null;
  rotateAfterMs: number | null;
}

export type EnrolResult =
  | ({ ok: true; host: HostRow; reEnrolled: boolean; by: 'token' | 'proof' | 'operator' } & IssuedCredential)
  | { ok: false; status: 401 | 403 | 409; code: string; error: string };

export type AuthResult =
  { ok: true; host: HostRow; which: 'current' | 'previous' } | { ok: false; status: 401 | 403; code: string; error: string };

export interface IntakeResult {
  days: number;
  processes: number;
  combos: number;
  /** Host-days that replaced an earlier upload. */
  replaced: number;
}

export interface AlertsStored {
  stored: number;
  /** Same (host, uid), another body: a later count or last-seen replaced the stored one. */
  updated: number;
  /** Same (host, uid) and the very body stored: a redelivery, nothing written. */
  duplicates: number;
}

export interface StoredAlert {
  seq: number;
  uid: string;
  org: string;
  hostId: string;
  timeMs: number | null;
  severityId: number | null;
  receivedMs: number;
  alert: unknown;
}

export interface AlertIn {
  uid: string;
  timeMs: number | null;
  severityId: number | null;
  body: string;
}

export interface AlertQuery {
  org: string | null;
  hostId: string | null;
  afterSeq: number;
  sinceMs: number | null;
  limit: number;
}

export interface IntakeStats {
  orgs: number;
  hosts: number;
  revokedHosts: number;
  hostDays: number;
  shas: number;
  roots: number;
  alerts: number;
}

/** The SQLite store answers at once; the PostgreSQL one over the network. Callers await either. */
export type Awaitable<T> = T | Promise<T>;

export interface ServerStore {
  createEnrolToken(
    org: string,
    maxHosts: number,
    nowMs: number,
  ): Awaitable<{ token: string; tokenId: string; org: string; orgCreated: boolean }>;
  tokens(org: string | null): Awaitable<TokenRow[]>;
  /** Revokes the token whose id starts with `idPrefix` (at least 8 hex digits, one token only). */
  revokeToken(idPrefix: string, nowMs: number): Awaitable<{ ok: true; token: TokenRow } | { ok: false; error: string }>;
  enrol(req: EnrolRequest, policy: CredentialPolicy, nowMs: number): Awaitable<EnrolResult>;
  authenticate(credential: string, policy: CredentialPolicy, nowMs: number): Awaitable<AuthResult>;
  /** A fresh credential for a host that authenticated with its current one; the old one stays good for the grace. */
  rotateCredential(host: HostRow, policy: CredentialPolicy, nowMs: number): Awaitable<IssuedCredential>;
  touch(host: HostRow, nowMs: number): Awaitable<void>;
  revokeHost(hostId: string, org: string | null, nowMs: number): Awaitable<HostRow[]>;
  /** Lets the host id enrol once more with the org token alone, until `untilMs` (a reinstall that lost its credential). */
  allowReenrol(hostId: string, org: string, untilMs: number): Awaitable<HostRow | null>;
  hosts(): Awaitable<HostRow[]>;
  storeSightings(host: HostRow, days: readonly DayBatch[], nowMs: number): Awaitable<IntakeResult>;
  pruneBefore(beforeDay: number): Awaitable<number>;
  storeAlerts(host: HostRow, alerts: readonly AlertIn[], nowMs: number): Awaitable<AlertsStored>;
  queryAlerts(q: AlertQuery): Awaitable<StoredAlert[]>;
  stats(): Awaitable<IntakeStats>;
  close(): Awaitable<void>;
}
