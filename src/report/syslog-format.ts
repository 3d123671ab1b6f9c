// RFC 5424 rendering of an alert, and the octet-counting frame of RFC 6587
// section 3.4.1 (the framing RFC 5425 requires over TLS).
import { hostname as osHostname } from 'node:os';
import type { Alert, SeverityId } from '../model/alert.js';
import { rfc3339Time } from '../model/time-text.js';
import { SYSLOG_FACILITIES, type SyslogFacility } from '../config/defaults.js';
import { renderAlert } from './render.js';
import { type AlertFormat } from '../config/defaults.js';
import { PRODUCT_VERSION } from '../model/product.js';

export const APP_NAME = 'rarecon';
/**
 * The SD element every message carries: `origin` is registered with IANA (RFC 5424
 * section 7.2), so it needs no enterprise number. rarecon has no Private Enterprise
 * Number of its own; the alert's own fields go in a second element only under the
 * SD-ID the operator names (`sdId: name@<their PEN>`), never under a number that is
 * not theirs (32473 is reserved for documentation, RFC 5612).
 */
export const ORIGIN_SD = `[origin software="${APP_NAME}" swVersion="${PRODUCT_VERSION}"]`;
/** An SD-ID of the form name@number: printable ASCII without '=', ']', '"' or space, 32 at most (RFC 5424 section 6.3.2). */
export const SD_ID_PATTERN = /^(?=.{1,32}$)[!#-<>-\\^-~]+@\d+(\.\d+)*$/;
/** RFC 5426 section 3.2: a receiver should take 2048 octets; larger datagrams may be cut or dropped. */
export const UDP_SAFE_BYTES = 2048;

/** Alert severity to syslog severity: High crit(2), Medium err(3), Low warning(4), Informational info(6). */
const SYSLOG_SEVERITY: Record<SeverityId, number> = { 4: 2, 3: 3, 2: 4, 1: 6 };

export function facilityCode(f: SyslogFacility): number {
  return SYSLOG_FACILITIES.indexOf(f);
}

export function priority(facility: SyslogFacility, severityId: SeverityId): number {
  return facilityCode(facility) * 8 + SYSLOG_SEVERITY[severityId];
}

/** Header fields are PRINTUSASCII (33-126) with a maximum length; empty is the NILVALUE "-". */
function headerField(value: string | null | undefined, max: number): string {
  if (value === null || value === undefined) return '-';
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

function paramValue(v: string | number): string {
  return String(v).replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** Parameter names are lowercase: rsyslog lowercases them (`rootDomain` arrives as `rootdomain`). */
export function structuredData(a: Alert, sdId: string | null): string {
  if (sdId === null) return ORIGIN_SD;
  const params: Array<[string, string | number]> = [
    ['uid', a.uid],
    ['kind', a.kind],
    ['severity', a.severity],
    ['host', a.host.id],
    ['org', a.host.org],
    ['count', a.count],
  ];
  if (a.kind === 'detection') {
    params.push(['variation', a.variation]);
    if (a.process.sha256 !== null) params.push(['sha256', a.process.sha256]);
    params.push(['root_domain', a.connection.rootDomain], ['port', a.connection.port], ['tier', a.prevalence.tier]);
  }
  return `${ORIGIN_SD}[${sdId} ${params.map(([k, v]) => `${k}="${paramValue(v)}"`).join(' ')}]`;
}

export interface SyslogFormatOptions {
  facility: SyslogFacility;
  format: AlertFormat;
  /** The operator's SD-ID for the alert's fields (name@PEN); null: only the registered `origin` element. */
  sdId?: string | null;
  procId?: number;
  /** Used when an alert does not name its host. */
  fallbackHostname?: string;
}

/** `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`, MSG being the JSON alert. */
export function formatRfc5424(a: Alert, opts: SyslogFormatOptions): string {
  const pri = priority(opts.facility, a.severityId);
  // A time RFC 3339 cannot write is the NILVALUE (the JSON in MSG still carries what it can).
  const timestamp = rfc3339Time(a.firstSeenMs) ?? '-';
  const host = headerField(a.host.name ?? a.host.id ?? opts.fallbackHostname ?? osHostname(), 255);
  const msgId = headerField(a.kind === 'health' ? 'health' : a.variation, 32);
  const procId = headerField(String(opts.procId ?? process.pid), 128);
  // MSG is sent without a BOM (MSG-ANY): JSON parsers in SIEMs stumble on one.
  return `<${pri}>1 ${timestamp} ${host} ${APP_NAME} ${procId} ${msgId} ${structuredData(a, opts.sdId ?? null)} ${JSON.stringify(renderAlert(a, opts.format))}`;
}

/** RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
