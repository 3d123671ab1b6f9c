// The contract every upstream sink keeps (ARCHITECTURE.md): expected failures
// are values. `retryable` keeps the batch in the outbox for a later attempt;
// `failure` means sending the same batch again cannot succeed.
import type { Alert } from '../model/alert.js';

export type SendResult =
  { status: 'success' } | { status: 'retryable'; error: Error; retryAfterMs?: number } | { status: 'failure'; error: Error };

export interface AlertSink {
  readonly name: string;
  send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult>;
  /** Releases sockets and files; safe to call twice. */
  close(): Promise<void>;
}

export function retryable(message: string, retryAfterMs?: number): SendResult {
  return retryAfterMs === undefined
    ? { status: 'retryable', error: new Error(message) }
    : { status: 'retryable', error: new Error(message), retryAfterMs };
}

export function failure(message: string): SendResult {
  return { status: 'failure', error: new Error(message) };
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
