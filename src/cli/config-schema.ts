// What the config file may hold, for editors and for a fresh install: the JSON
// Schema generated from the typed spec `rarecon validate` checks with (so the
// two cannot drift), and the embedded default written out as a commented file.
import { stringify } from 'yaml';
import type { Spec } from '../config/spec.js';
import { DEFAULT_CONFIG, SINK_DEFAULTS } from '../config/defaults.js';
import { CONFIG_SPEC } from './config-file.js';

type JsonSchema = Record<string, unknown>;

function schemaOf(spec: Spec, dflt: unknown): JsonSchema {
  const out: JsonSchema = {};
  switch (spec.kind) {
    case 'number':
      out.type = spec.integer === true ? 'integer' : 'number';
      if (spec.min !== undefined) out.minimum = spec.min;
      if (spec.max !== undefined) out.maximum = spec.max;
      break;
    case 'string':
      out.type = spec.nullable === true ? ['string', 'null'] : 'string';
      if (spec.oneOf !== undefined) out.enum = spec.nullable === true ? [...spec.oneOf, null] : [...spec.oneOf];
      if (spec.pattern !== undefined) out.pattern = spec.pattern.source;
      if (spec.patternText !== undefined) out.description = spec.patternText;
      break;
    case 'boolean':
      out.type = 'boolean';
      break;
    case 'cidr':
      out.type = 'string';
      out.description = 'a network in CIDR form, like 10.20.0.0/16 or fd00::/8';
      break;
    case 'array': {
      out.type = 'array';
      const first = Array.isArray(dflt) ? (dflt as unknown[])[0] : undefined;
      out.items = schemaOf(spec.of, spec.of.kind === 'object' ? first : undefined);
      break;
    }
    case 'object': {
      out.type = 'object';
      const d = (dflt !== null && typeof dflt === 'object' ? dflt : {}) as Record<string, unknown>;
      out.properties = Object.fromEntries(Object.entries(spec.fields).map(([k, f]) => [k, schemaOf(f, d[k])]));
      out.additionalProperties = false;
      break;
    }
  }
  // Defaults of scalars and lists; an object's defaults are its properties' own.
  if (dflt !== undefined && spec.kind !== 'object') out.default = dflt;
  return out;
}

/** The JSON Schema (draft 2020-12) of the config file. */
export function configJsonSchema(): JsonSchema {
  const schema = schemaOf(CONFIG_SPEC, DEFAULT_CONFIG);
  const report = (schema.properties as Record<string, JsonSchema>).report as JsonSchema;
  const sinks = (report.properties as Record<string, JsonSchema>).sinks as JsonSchema;
  // Each sink type has its own defaults; the spec holds the union of their settings.
  sinks.description = `a list of sinks; the defaults of each type: ${JSON.stringify(SINK_DEFAULTS)}`;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://rarecon.invalid/config.schema.json',
    title: 'rarecon config file (/etc/rarecon/config.yaml and config.d/*.yaml)',
    description: 'Every setting is optional; a file is laid over the embedded default, objects key by key, lists replaced whole.',
    ...schema,
  };
}

/** The embedded default as a YAML file, every line commented out, under a yaml-language-server schema line. */
export function commentedDefaultConfig(schemaUrl: string): string {
  const body = stringify(DEFAULT_CONFIG, { lineWidth: 0 })
    .trimEnd()
    .split('\n')
    .map((l) => `# ${l}`)
    .join('\n');
  return [
    `# yaml-language-server: $schema=${schemaUrl}`,
    '#',
    '# rarecon config. Every setting is optional: each line below is commented out and',
    '# shows the embedded default. Uncomment and change what you need; files in',
    '# config.d/ beside this one (*.yaml, read in name order) are laid over it.',
    '# ${VAR} and ${VAR:-default} take a value from the environment.',
    '# Check it with: rarecon validate --config /etc/rarecon/config.yaml',
    '# Every section and setting: docs/configuration.md; the schema: rarecon config schema',
    '',
    body,
    '',
  ].join('\n');
}
