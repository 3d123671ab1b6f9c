// A bearer token from an environment variable or a file. The file is read
// again when its mtime changes, so a rotated token is picked up without a
// restart. The value is never logged; errors name the source, not the secret.
import { readFileSync, statSync } from 'node:fs';

export type SecretResult = { ok: true; value: string } | { ok: false; error: string };

export class TokenSource {
  private cached: { mtimeMs: number; value: string } | null = null;

  constructor(
    private readonly tokenEnv: string | null,
    private readonly tokenFile: string | null,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get configured(): boolean {
    return this.tokenEnv !== null || this.tokenFile !== null;
  }

  /** null when no token is configured. */
  get(): SecretResult | null {
    if (this.tokenEnv !== null) {
      const v = this.env[this.tokenEnv]?.trim();
      return v === undefined || v === ''
        ? { ok: false, error: `the environment variable ${this.tokenEnv} is not set or empty` }
        : { ok: true, value: v };
    }
    if (this.tokenFile === null) return null;
    try {
      const { mtimeMs } = statSync(this.tokenFile);
      if (this.cached === null || this.cached.mtimeMs !== mtimeMs) {
        const value = readFileSync(this.tokenFile, 'utf8').trim();
        if (value === '') return { ok: false, error: `the token file ${this.tokenFile} is empty` };
        this.cached = { mtimeMs, value };
      }
      return { ok: true, value: this.cached.value };
    } catch (err) {
      return {
        ok: false,
        error: `cannot read the token file ${this.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      };
    }
  }
}
