// The config `rarecon run` and `rarecon validate` use: --config FILE (with the
// config.d folder beside it), else /etc/rarecon/config.yaml when present, else
// the embedded default, with /etc/rarecon/config.d laid over either.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { loadConfig, type ConfigResult } from './config-file.js';

export interface RunConfig {
  /** The main file read, or null for the embedded default. */
  file: string | null;
  dropInDir: string;
  result: ConfigResult;
}

export function runConfigSource(given: string | null): { file: string | null; dropInDir: string } {
  const file = given ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null);
  return { file, dropInDir: join(dirname(file ?? DEFAULT_CONFIG_PATH), 'config.d') };
}

export function loadRunConfig(given: string | null, env: NodeJS.ProcessEnv = process.env): RunConfig {
  const { file, dropInDir } = runConfigSource(given);
  return { file, dropInDir, result: loadConfig(file, dropInDir, env) };
}
