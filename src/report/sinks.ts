// Builds the sink a config entry names. Throws on start-up failures (an
// unreadable certificate, a token that is not there).
import type { Writable } from 'node:stream';
import type { SinkConfig } from './config.js';
import { FileSink } from './file-sink.js';
import { HttpSink } from './http-sink.js';
import type { AlertSink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';
import { SyslogSink } from './syslog-sink.js';

export interface SinkEnvironment {
  env?: NodeJS.ProcessEnv;
  stdout?: Writable;
}

export function createSink(cfg: SinkConfig, envt: SinkEnvironment = {}): AlertSink {
  switch (cfg.type) {
    case 'http':
      return new HttpSink(cfg, envt.env === undefined ? {} : { env: envt.env });
    case 'syslog':
      return new SyslogSink(cfg);
    case 'file':
      return new FileSink(cfg);
    case 'stdout':
      return new StdoutSink(cfg, envt.stdout);
  }
}
