// Writes alerts to standard output as NDJSON (or to another stream, for tests
// and for a pipe the daemon owns). Success once the stream took the bytes.
import type { Writable } from 'node:stream';
import type { Alert } from '../model/alert.js';
import type { StdoutSinkConfig } from '../config/defaults.js';
import { ndjson } from './render.js';
import { errorText, retryable, type AlertSink, type SendResult } from './sink.js';

export class StdoutSink implements AlertSink {
  readonly name: string;
  // A closed pipe (EPIPE) is also emitted as an 'error' event, which would end the process unheard.
  private readonly onError = (): void => undefined;

  constructor(
    private readonly cfg: StdoutSinkConfig,
    private readonly out: Writable = process.stdout,
  ) {
    this.name = cfg.name;
    out.on('error', this.onError);
  }

  send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    if (signal.aborted) return Promise.resolve(retryable('aborted by shutdown'));
    const text = ndjson(batch, this.cfg.format);
    return new Promise<SendResult>((resolve) => {
      try {
        this.out.write(text, (err) =>
          resolve(
            err === null || err === undefined ? { status: 'success' } : retryable(`cannot write to standard output: ${errorText(err)}`),
          ),
        );
      } catch (err) {
        resolve(retryable(`cannot write to standard output: ${errorText(err)}`));
      }
    });
  }

  async close(): Promise<void> {
    this.out.off('error', this.onError);
  }
}
