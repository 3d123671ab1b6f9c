// Builds the sink a config entry names. Throws on start-up failures (an
// unreadable certificate, a token that is not there).
import type { Writable } from 'node:stream';
import { SINK_DEFAULTS, type HttpSinkConfig, type SinkConfig } from '../config/defaults.js';
import type { SecretResult } from '../common/token-source.js';
import type { LogFn } from '../common/log.js';
import { FileSink } from './file-sink.js';
import { HttpSink } from './http-sink.js';
import type { AlertSink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';
import { SyslogSink } from './syslog-sink.js';

export interface SinkEnvironment {
  env?: NodeJS.ProcessEnv;
  stdout?: Writable;
  /** Where a `server` sink sends: the sync's server and this host's credential; absent without sync.serverUrl. */
  server?: ServerEndpoint;
  /** Warnings a sink has for the operator (a syslog sink over UDP). */
  log?: LogFn;
}

export interface ServerEndpoint {
  /** Base URL of the baseline server, without a trailing slash. */
  url: string;
  caFile: string | null;
  serverName: string | null;
  /** The server certificate's pin (sync.serverCertSha256), normalised; null = check against a CA. */
  certSha256: string | null;
  /** This host's credential, read when a batch goes out (the host may enrol after the sink starts). */
  credential: () => SecretResult;
}

export function createSink(cfg: SinkConfig, envt: SinkEnvironment = {}): AlertSink {
  switch (cfg.type) {
    case 'http':
      return new HttpSink(cfg, envt.env === undefined ? {} : { env: envt.env });
    case 'syslog':
      return new SyslogSink(cfg, { log: envt.log });
    case 'file':
      return new FileSink(cfg);
    case 'stdout':
      return new StdoutSink(cfg, envt.stdout);
    case 'server': {
      const s = envt.server;
      if (s === undefined)
        throw new Error(`sink ${cfg.name}: a server sink needs sync.serverUrl, the baseline server this host enrols with`);
      const http: HttpSinkConfig = {
        ...SINK_DEFAULTS.http,
        name: cfg.name,
        format: cfg.format,
        batchMaxAlerts: cfg.batchMaxAlerts,
        lingerMs: cfg.lingerMs,
        timeoutMs: cfg.timeoutMs,
        gzip: cfg.gzip,
        url: `${s.url}/v1/alerts`,
        caFile: s.caFile,
        serverName: s.serverName,
      };
      // 401: the host is enrolling again (an expired or replaced credential); its alerts wait for the new one.
      return new HttpSink(http, {
        ...(envt.env === undefined ? {} : { env: envt.env }),
        token: s.credential,
        pin: s.certSha256,
        retryStatus: [401],
      });
    }
  }
}
