// The `report:` section (the outbox, the backoff and the sinks; defaults in
// config/defaults.ts). `REPORT_SPEC` checks the shape like the rest of the
// schema; `resolveReport` fills each sink's defaults by its type and reports
// what a shape check cannot see (a missing url, a setting that does not apply
// to that type, two sinks with one name). Secrets are named here (an
// environment variable or a file), never held, and never logged.
import { count, nullableString, timerMs, type Problem, type Spec } from '../config/spec.js';
import { SINK_DEFAULTS, SYSLOG_FACILITIES, type ReportConfig, type SinkConfig } from '../config/defaults.js';
import { SD_ID_PATTERN } from './syslog-format.js';

const path = nullableString;
const SINK_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export const REPORT_SPEC: Spec = {
  kind: 'object',
  fields: {
    outbox: {
      kind: 'object',
      fields: {
        path,
        maxRows: count(1, 1_000_000_000),
        maxBytes: count(4096, 2 ** 44),
        synchronous: { kind: 'string', oneOf: ['normal', 'full'] },
        deadLetterMaxRows: count(0, 1_000_000_000),
      },
    },
    backoff: {
      kind: 'object',
      fields: { initialMs: timerMs(1), maxMs: timerMs(1), maxRetryAfterMs: timerMs(0), maxAttempts: count(0, 1_000_000_000) },
    },
    pollMs: timerMs(10),
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
          lingerMs: timerMs(0, 60_000, 'a batch waits a minute at most'),
          url: { kind: 'string', pattern: /^https?:\/\/[^\s]+$/, patternText: 'an http:// or https:// URL' },
          body: { kind: 'string', oneOf: ['json', 'ndjson'] },
          tokenEnv: { kind: 'string', nullable: true, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternText: 'an environment variable name' },
          tokenFile: path,
          caFile: path,
          certFile: path,
          keyFile: path,
          serverName: path,
          timeoutMs: timerMs(1),
          gzip: { kind: 'boolean' },
          transport: { kind: 'string', oneOf: ['udp', 'tcp', 'tls'] },
          host: { kind: 'string' },
          port: count(1, 65535),
          facility: { kind: 'string', oneOf: SYSLOG_FACILITIES },
          sdId: {
            kind: 'string',
            nullable: true,
            pattern: SD_ID_PATTERN,
            patternText: 'an SD-ID like name@12345 (your Private Enterprise Number)',
          },
          path: { kind: 'string' },
          maxBytes: count(1024, 2 ** 44),
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
