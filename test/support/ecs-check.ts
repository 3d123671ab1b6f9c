// Checks an ECS document against ECS's own field list (test/fixtures/ecs-8.11/fields.json):
// every leaf is an ECS field or sits under `rarecon.*` with snake_case names; each value
// has the type ECS gives the field (keyword a string, long a whole number, date an ISO
// time, ip an address...), a list where ECS normalizes the field to an array, an allowed
// value where ECS lists them, event.type values that every event.category expects, and
// `labels.*` values that are keywords.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { REPO } from './cli.js';

interface EcsField {
  type: string;
  normalize?: string[];
  allowed?: Array<{ name: string; expected_event_types?: string[] }>;
}

export interface EcsFieldList {
  version: string;
  fields: Record<string, EcsField>;
}

export function loadEcsFields(): EcsFieldList {
  return JSON.parse(readFileSync(join(REPO, 'test', 'fixtures', 'ecs-8.11', 'fields.json'), 'utf8')) as EcsFieldList;
}

const SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeProblem(type: string, v: unknown): string | null {
  switch (type) {
    case 'keyword':
    case 'constant_keyword':
    case 'wildcard':
    case 'match_only_text':
    case 'text':
      return typeof v === 'string' ? null : `a ${type} is a string, got ${JSON.stringify(v)}`;
    case 'long':
      return typeof v === 'number' && Number.isSafeInteger(v) ? null : `a long is a whole number, got ${JSON.stringify(v)}`;
    case 'float':
    case 'scaled_float':
      return typeof v === 'number' && Number.isFinite(v) ? null : `a ${type} is a number, got ${JSON.stringify(v)}`;
    case 'boolean':
      return typeof v === 'boolean' ? null : `a boolean is true or false, got ${JSON.stringify(v)}`;
    case 'date':
      return typeof v === 'string' && ISO_TIME.test(v) && !Number.isNaN(Date.parse(v))
        ? null
        : `a date is an ISO 8601 time, got ${JSON.stringify(v)}`;
    case 'ip':
      return typeof v === 'string' && isIP(v) !== 0 ? null : `an ip is an IPv4 or IPv6 address, got ${JSON.stringify(v)}`;
    case 'flattened':
    case 'object':
    case 'nested':
      return isObject(v) || Array.isArray(v) ? null : `an ${type} is an object, got ${JSON.stringify(v)}`;
    default:
      return `type ${type} is not checked here`;
  }
}

/** Every problem of `doc`, as "path: what is wrong". */
export function checkEcs(list: EcsFieldList, doc: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const fields = list.fields;
  const prefixes = new Set<string>();
  for (const name of Object.keys(fields)) {
    const parts = name.split('.');
    for (let i = 1; i < parts.length; i++) prefixes.add(parts.slice(0, i).join('.'));
  }

  function walkRarecon(v: unknown, path: string): void {
    if (isObject(v)) {
      for (const [k, child] of Object.entries(v)) {
        if (!SNAKE.test(k)) problems.push(`${path}.${k}: rarecon's own field names are snake_case`);
        walkRarecon(child, `${path}.${k}`);
      }
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walkRarecon(x, `${path}[${i}]`));
    } else if (v === null) {
      problems.push(`${path}: null (leave the field out)`);
    }
  }

  function leaf(path: string, f: EcsField, v: unknown): void {
    const many = f.normalize?.includes('array') === true;
    if (many && !Array.isArray(v)) problems.push(`${path}: ECS normalizes this field to an array`);
    const values = Array.isArray(v) ? v : [v];
    if (Array.isArray(v) && f.type !== 'nested' && values.some((x) => isObject(x))) {
      problems.push(`${path}: an array of objects needs a nested field`);
      return;
    }
    for (const x of values) {
      const p = typeProblem(f.type, x);
      if (p !== null) problems.push(`${path}: ${p}`);
      if (f.allowed !== undefined && !f.allowed.some((a) => a.name === x)) {
        problems.push(`${path}: ${JSON.stringify(x)} is not one of ECS's values (${f.allowed.map((a) => a.name).join(', ')})`);
      }
    }
    if (f.type === 'object' && path === 'labels' && isObject(v)) {
      for (const [k, lv] of Object.entries(v)) if (typeof lv !== 'string') problems.push(`labels.${k}: labels are keywords (strings)`);
    }
  }

  function walk(v: unknown, path: string): void {
    if (path === 'rarecon') {
      if (!isObject(v)) problems.push('rarecon: expected an object');
      walkRarecon(v, path);
      return;
    }
    const f = fields[path];
    if (f !== undefined && !(isObject(v) && prefixes.has(path) && f.type === 'object' && path !== 'labels')) {
      leaf(path, f, v);
      return;
    }
    if (isObject(v) && (prefixes.has(path) || path === '')) {
      for (const [k, child] of Object.entries(v)) walk(child, path === '' ? k : `${path}.${k}`);
      return;
    }
    problems.push(`${path}: not an ECS ${list.version} field`);
  }

  walk(doc, '');
  for (const required of ['@timestamp', 'ecs.version']) {
    const has = required.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), doc);
    if (has === undefined) problems.push(`${required}: required by ECS`);
  }
  // Each event.type must be one the categories expect.
  const ev = isObject(doc.event) ? doc.event : {};
  const cats = Array.isArray(ev.category) ? ev.category : [];
  const types = Array.isArray(ev.type) ? ev.type : [];
  for (const c of cats) {
    const expected = fields['event.category']?.allowed?.find((a) => a.name === c)?.expected_event_types ?? [];
    for (const t of types)
      if (!expected.includes(t as string)) problems.push(`event.type: ${JSON.stringify(t)} is not expected for event.category ${c}`);
  }
  return problems;
}
