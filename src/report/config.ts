// The `report:` section of the config file: the outbox, the backoff and the
// sinks. Every default is here. `REPORT_SPEC` checks the shape like the rest
// of the schema; `resolveReport` fills each sink's defaults by its type and
// reports what a shape check cannot see (a missing url, a setting that does
// not apply to that type, two sinks with one name). Secrets are named here
// (an environment variable or a file), never held, and never logged.
import type { Problem, Spec } from '../config/schema.js';
import type { AlertFormat } from './render.js';

export type SinkType = 'http' | 'syslog' | 'file' | 'stdout' | 'server';

// In code order: a facility's index is its number (RFC 5424 section 6.2.1).
export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;
export type SyslogFacility = (typeof SYSLOG_FACILITIES)[number];

interface SinkCommon {
  name: string;
  format: AlertFormat;
  batchMaxAlerts: number;
  /** Wait this long for a batch to fill once alerts are waiting. */
  lingerMs: number;
}

export interface TlsFiles {
  /** PEM CA bundle to verify the server with; null = the system's. */
  caFile: string | null;
  /** PEM client certificate and key for mutual TLS. */
  certFile: string | null;
  keyFile: string | null;
  /** Name to verify the server certificate against, when not the host. */
  serverName: string | null;
}

export interface HttpSinkConfig extends SinkCommon, TlsFiles {
  type: 'http';
  url: string;
  /** `json`: one JSON array a request; `ndjson`: one document a line. */
  body: 'json' | 'ndjson';
  /** Bearer token from this environment variable ... */
  tokenEnv: string | null;
  /** ... or from this file (read again when it changes). */
  tokenFile: string | null;
  timeoutMs: number;
  gzip: boolean;
}

export interface SyslogSinkConfig extends SinkCommon, TlsFiles {
  type: 'syslog';
  transport: 'udp' | 'tcp' | 'tls';
  host: string;
  port: number;
  facility: SyslogFacility;
  timeoutMs: number;
}

export interface FileSinkConfig extends SinkCommon {
  type: 'file';
  path: string;
  /** Rotate when the file would grow past this. */
  maxBytes: number;
  /** Rotated files kept beside the current one (path.1 ... path.N). */
  maxFiles: number;
  /** fsync after each batch, so an acknowledged alert survives a power loss. */
  fsync: boolean;
}

export interface StdoutSinkConfig extends SinkCommon {
  type: 'stdout';
}

/**
 * The baseline server's alert intake (`POST /v1/alerts`): the address, CA and
 * credential are the sync's (`sync.serverUrl`, `sync.caFile`, the host
 * credential the enrolment got), so nothing is configured twice.
 */
export interface ServerSinkConfig extends SinkCommon {
  type: 'server';
  timeoutMs: number;
  gzip: boolean;
}

export type SinkConfig = HttpSinkConfig | SyslogSinkConfig | FileSinkConfig | StdoutSinkConfig | ServerSinkConfig;

export interface OutboxConfig {
  /** null = `<stateDir>/outbox.db`. */
  path: string | null;
  maxRows: number;
  maxBytes: number;
  /** `normal`: survives a crash of rarecon; `full`: also a power loss, at some cost in enqueue speed. */
  synchronous: 'normal' | 'full';
  deadLetterMaxRows: number;
}

export interface ReportBackoffConfig {
  initialMs: number;
  maxMs: number;
  maxRetryAfterMs: number;
  /** Retryable failures before an alert is dead-lettered; 0 = retry for ever (the size bound still applies). */
  maxAttempts: number;
}

export interface ReportConfig {
  outbox: OutboxConfig;
  backoff: ReportBackoffConfig;
  /** Idle delivery loops look at the outbox this often even without a new alert. */
  pollMs: number;
  sinks: SinkConfig[];
}

const COMMON = { format: 'ocsf' as AlertFormat, batchMaxAlerts: 500, lingerMs: 200 };
const NO_TLS: TlsFiles = { caFile: null, certFile: null, keyFile: null, serverName: null };

/** Defaults of each sink type (all but `name`, which defaults to the type). */
export const SINK_DEFAULTS: { [T in SinkType]: Omit<Extract<SinkConfig, { type: T }>, 'name'> } = {
  http: { type: 'http', ...COMMON, ...NO_TLS, url: '', body: 'json', tokenEnv: null, tokenFile: null, timeoutMs: 10_000, gzip: false },
  syslog: {
    type: 'syslog',
    ...COMMON,
    ...NO_TLS,
    transport: 'tcp',
    host: '',
    port: 0,
    facility: 'local0',
    timeoutMs: 10_000,
    batchMaxAlerts: 100,
  },
  file: { type: 'file', ...COMMON, path: '', maxBytes: 50 * 1024 * 1024, maxFiles: 5, fsync: true },
  stdout: { type: 'stdout', ...COMMON, lingerMs: 0 },
  server: { type: 'server', ...COMMON, timeoutMs: 10_000, gzip: false },
};

export const DEFAULT_REPORT: ReportConfig = {
  outbox: { path: null, maxRows: 100_000, maxBytes: 256 * 1024 * 1024, synchronous: 'normal', deadLetterMaxRows: 10_000 },
  backoff: { initialMs: 1_000, maxMs: 5 * 60_000, maxRetryAfterMs: 60 * 60_000, maxAttempts: 0 },
  pollMs: 1_000,
  sinks: [{ ...SINK_DEFAULTS.stdout, name: 'stdout' }],
};

const count = (min = 0, max?: number): Spec =>
  max === undefined ? { kind: 'number', integer: true, min } : { kind: 'number', integer: true, min, max };
const path: Spec = { kind: 'string', nullable: true };
const SINK_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export const REPORT_SPEC: Spec = {
  kind: 'object',
  fields: {
    outbox: {
      kind: 'object',
      fields: {
        path,
        maxRows: count(1),
        maxBytes: count(4096),
        synchronous: { kind: 'string', oneOf: ['normal', 'full'] },
        deadLetterMaxRows: count(0),
      },
    },
    backoff: {
      kind: 'object',
      fields: { initialMs: count(1), maxMs: count(1), maxRetryAfterMs: count(0), maxAttempts: count(0) },
    },
    pollMs: count(10),
    sinks: {
      kind: 'array',
      of: {
        kind: 'object',
        partial: true,
        fields: {
          type: { kind: 'string', oneOf: ['http', 'syslog', 'file', 'stdout', 'server'] },
          name: { kind: 'string', pattern: SINK_NAME, patternText: '1 to 64 letters, digits, dots, dashes or underscores' },
          format: { kind: 'string', oneOf: ['ocsf', 'ecs'] },
          batchMaxAlerts: count(1, 100_000),
          lingerMs: count(0, 60_000),
          url: { kind: 'string', pattern: /^https?:\/\/[^\s]+$/, patternText: 'an http:// or https:// URL' },
          body: { kind: 'string', oneOf: ['json', 'ndjson'] },
          tokenEnv: { kind: 'string', nullable: true, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternText: 'an environment variable name' },
          tokenFile: path,
          caFile: path,
          certFile: path,
          keyFile: path,
          serverName: path,
          timeoutMs: count(1),
          gzip: { kind: 'boolean' },
          transport: { kind: 'string', oneOf: ['udp', 'tcp', 'tls'] },
          host: { kind: 'string' },
          port: count(1, 65535),
          facility: { kind: 'string', oneOf: SYSLOG_FACILITIES },
          path: { kind: 'string' },
          maxBytes: count(1024),
          maxFiles: count(0, 1000),
          fsync: { kind: 'boolean' },
        },
      },
    },
  },
};

export type ReportResult = { ok: true; config: ReportConfig } | { ok: false; problems: Problem[] };

/**
 * Fills each sink's defaults by its type and checks what the shape cannot.
 * Takes the `report` section after `validate` and the merge with DEFAULT_REPORT.
 */
export function resolveReport(report: ReportConfig, at = 'report'): ReportResult {
  const problems: Problem[] = [];
  const sinks: SinkConfig[] = [];
  if (report.sinks.length === 0)
    problems.push({ path: `${at}.sinks`, message: 'needs at least one sink (http, syslog, file, stdout or server)' });
  const names = new Map<string, number>();
  report.sinks.forEach((raw, i) => {
    const p = `${at}.sinks[${i}]`;
    const given = raw as unknown as Record<string, unknown>;
    const type = given['type'];
    if (type !== 'http' && type !== 'syslog' && type !== 'file' && type !== 'stdout' && type !== 'server') {
      problems.push({ path: `${p}.type`, message: 'is required: one of http, syslog, file, stdout, server' });
      return;
    }
    const defaults = SINK_DEFAULTS[type] as unknown as Record<string, unknown>;
    for (const k of Object.keys(given)) {
      if (k !== 'name' && !(k in defaults)) problems.push({ path: `${p}.${k}`, message: `does not apply to a ${type} sink` });
    }
    const sink = { ...defaults, name: type, ...given } as SinkConfig;
    const earlier = names.get(sink.name);
    if (earlier !== undefined)
      problems.push({ path: `${p}.name`, message: `"${sink.name}" is already the name of sink ${earlier}; give each sink its own name` });
    names.set(sink.name, i);
    const need = (field: string, ok: boolean, message: string): void => {
      if (!ok) problems.push({ path: `${p}.${field}`, message });
    };
    switch (sink.type) {
      case 'http':
        need('url', /^https?:\/\//.test(sink.url), 'is required: the http:// or https:// address alerts are POSTed to');
        need('tokenFile', sink.tokenEnv === null || sink.tokenFile === null, 'set tokenEnv or tokenFile, not both');
        need('certFile', (sink.certFile === null) === (sink.keyFile === null), 'certFile and keyFile go together (mutual TLS)');
        need('caFile', sink.url.startsWith('https:') || (sink.caFile === null && sink.certFile === null), 'TLS files need an https:// url');
        break;
      case 'syslog':
        need('host', sink.host !== '', 'is required: the syslog server to send to');
        need('port', sink.port > 0, 'is required: the syslog server port (514 for udp/tcp, 6514 for tls)');
        need('certFile', (sink.certFile === null) === (sink.keyFile === null), 'certFile and keyFile go together (mutual TLS)');
        need(
          'transport',
          sink.transport === 'tls' || (sink.caFile === null && sink.certFile === null && sink.serverName === null),
          'TLS files need transport: tls',
        );
        break;
      case 'file':
        need('path', sink.path !== '', 'is required: the NDJSON file alerts are appended to');
        break;
      case 'stdout':
      case 'server':
        break;
    }
    sinks.push(sink);
  });
  if (report.backoff.maxMs < report.backoff.initialMs) {
    problems.push({ path: `${at}.backoff.maxMs`, message: `must be at least backoff.initialMs (${report.backoff.initialMs})` });
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: { ...report, sinks } };
}

/** A sink as it may be logged: where it sends, never a token or a password in a URL. */
export function describeSink(s: SinkConfig): Record<string, unknown> {
  switch (s.type) {
    case 'http': {
      let url = s.url;
      try {
        const u = new URL(s.url);
        u.username = '';
        u.password = '';
        u.search = u.search === '' ? '' : '?…';
        url = u.toString();
      } catch {
        url = '(unparsable url)';
      }
      return {
        sink: s.name,
        type: s.type,
        url,
        format: s.format,
        body: s.body,
        auth: s.tokenEnv !== null || s.tokenFile !== null ? 'bearer' : 'none',
        mtls: s.certFile !== null,
      };
    }
    case 'syslog':
      return { sink: s.name, type: s.type, transport: s.transport, host: s.host, port: s.port, format: s.format };
    case 'file':
      return { sink: s.name, type: s.type, path: s.path, format: s.format };
    case 'stdout':
      return { sink: s.name, type: s.type, format: s.format };
    case 'server':
      return { sink: s.name, type: s.type, format: s.format, auth: 'host credential' };
  }
}
