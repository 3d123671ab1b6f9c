// A validator of OCSF events against a compiled schema (test/fixtures/ocsf-1.3.0/schema.json),
// written from the rules the OCSF server applies on /api/v2/validate: class and profiles
// known, no attribute outside its class or object (profile attributes only when the
// profile is declared), required ones present, recommended ones reported when asked,
// each value of its dictionary type (range, length, listed values; a regex miss is a
// warning), enum ids known with the caption as their sibling, object constraints,
// type_uid, metadata.version, and observables naming an attribute of the class.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './cli.js';

interface SchemaAttribute {
  type: string;
  requirement: 'required' | 'recommended' | 'optional';
  object_type?: string;
  is_array?: boolean;
  profiles?: string[];
  sibling?: string;
  enum?: Record<string, { caption: string; '@deprecated'?: unknown }>;
  '@deprecated'?: unknown;
}

interface SchemaItem {
  name: string;
  uid?: number;
  constraints?: { at_least_one?: string[]; just_one?: string[] };
  attributes: Record<string, SchemaAttribute>;
  '@deprecated'?: unknown;
}

interface SchemaType {
  type?: string;
  max_len?: number;
  range?: [number, number];
  regex?: string;
  values?: unknown[];
}

export interface CompiledSchema {
  version: string;
  profiles: string[];
  types: Record<string, SchemaType>;
  classes: Record<string, SchemaItem>;
  objects: Record<string, SchemaItem>;
}

export interface Finding {
  type: string;
  path: string;
  message: string;
}

export interface ValidationResult {
  errors: Finding[];
  warnings: Finding[];
}

export function loadOcsfSchema(): CompiledSchema {
  return JSON.parse(readFileSync(join(REPO, 'test', 'fixtures', 'ocsf-1.3.0', 'schema.json'), 'utf8')) as CompiledSchema;
}

const INT32 = [-(2 ** 31), 2 ** 31 - 1];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  return typeof v;
}

export function validateOcsf(schema: CompiledSchema, event: unknown, opts: { warnRecommended?: boolean } = {}): ValidationResult {
  const result: ValidationResult = { errors: [], warnings: [] };
  const error = (type: string, path: string, message: string): void => void result.errors.push({ type, path, message });
  const warning = (type: string, path: string, message: string): void => void result.warnings.push({ type, path, message });
  if (!isPlainObject(event)) {
    error('event_wrong_type', '', `event is ${jsonType(event)}, not an object`);
    return result;
  }
  const cls = Object.values(schema.classes).find((c) => c.uid === event.class_uid);
  if (cls === undefined) {
    error('class_uid_unknown', 'class_uid', `no class ${JSON.stringify(event.class_uid)} in the vendored schema`);
    return result;
  }
  const meta = event.metadata;
  const declared =
    isPlainObject(meta) && Array.isArray(meta.profiles) ? meta.profiles.filter((p): p is string => typeof p === 'string') : [];
  declared.forEach((p, i) => {
    if (!schema.profiles.includes(p)) error('profile_unknown', `metadata.profiles[${i}]`, `unknown profile "${p}"`);
  });
  const profileSet = new Set(declared);
  const inForce = (attrs: Record<string, SchemaAttribute>): Record<string, SchemaAttribute> =>
    Object.fromEntries(Object.entries(attrs).filter(([, a]) => a.profiles === undefined || a.profiles.some((p) => profileSet.has(p))));

  const at = (parent: string, name: string): string => (parent === '' ? name : `${parent}.${name}`);

  function checkPrimitive(value: unknown, path: string, typeName: string): void {
    const t = schema.types[typeName];
    if (t === undefined) {
      error('schema_type_missing', path, `type ${typeName} is not in the dictionary`);
      return;
    }
    const base = t.type ?? typeName;
    const wrong = (): void =>
      error('attribute_wrong_type', path, `expected ${typeName}${base !== typeName ? ` (${base})` : ''}, got ${jsonType(value)}`);
    switch (base) {
      case 'boolean_t':
        if (typeof value !== 'boolean') return wrong();
        break;
      case 'integer_t':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32[0]! || value > INT32[1]!) return wrong();
        break;
      case 'long_t':
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) return wrong();
        break;
      case 'float_t':
        // The server's JSON decoder reads 3 as an integer, not a float.
        if (typeof value !== 'number' || Number.isInteger(value)) return wrong();
        break;
      case 'string_t':
        if (typeof value !== 'string') return wrong();
        break;
      case 'json_t':
        return;
      default:
        error('schema_type_missing', path, `type ${typeName} has no primitive base`);
        return;
    }
    // Constraints of the type itself, then of its base type.
    for (const ty of [t, base !== typeName ? schema.types[base] : undefined]) {
      if (ty === undefined) continue;
      if (ty.range !== undefined && typeof value === 'number' && (value < ty.range[0] || value > ty.range[1])) {
        error('attribute_value_exceeds_range', path, `${value} is outside ${ty.range[0]}..${ty.range[1]}`);
      }
      if (ty.max_len !== undefined && typeof value === 'string' && value.length > ty.max_len) {
        error('attribute_value_exceeds_max_len', path, `length ${value.length} is over ${ty.max_len}`);
      }
      if (ty.values !== undefined && !ty.values.includes(value)) {
        error('attribute_value_not_in_type_values', path, `${JSON.stringify(value)} is not one of ${JSON.stringify(ty.values)}`);
      }
      if (ty.regex !== undefined && typeof value === 'string' && !new RegExp(ty.regex).test(value)) {
        warning('attribute_value_regex_not_matched', path, `${JSON.stringify(value)} does not match the ${typeName} pattern`);
      }
    }
  }

  function checkValue(value: unknown, path: string, a: SchemaAttribute): void {
    if (a.type === 'object_t') {
      const obj = a.object_type === undefined ? undefined : schema.objects[a.object_type];
      if (obj === undefined) {
        error(
          'object_not_vendored',
          path,
          `object ${a.object_type ?? '?'} is not in the vendored schema: add it to test/fixtures/ocsf-1.3.0`,
        );
        return;
      }
      if (!isPlainObject(value)) {
        error('attribute_wrong_type', path, `expected ${obj.name} (object), got ${jsonType(value)}`);
        return;
      }
      if (obj['@deprecated'] !== undefined) warning('object_deprecated', path, `object ${obj.name} is deprecated`);
      checkItem(value, path, obj);
      return;
    }
    checkPrimitive(value, path, a.type);
  }

  function checkEnum(item: Record<string, unknown>, parent: string, name: string, a: SchemaAttribute): void {
    const e = a.enum;
    if (e === undefined || !(name in item)) return;
    const path = at(parent, name);
    const values = a.is_array === true && Array.isArray(item[name]) ? (item[name] as unknown[]) : [item[name]];
    values.forEach((v, i) => {
      const p = a.is_array === true ? `${path}[${i}]` : path;
      const entry = e[String(v)];
      if (entry === undefined) {
        error(
          a.is_array === true ? 'attribute_enum_array_value_unknown' : 'attribute_enum_value_unknown',
          p,
          `${JSON.stringify(v)} is not in the enum`,
        );
        return;
      }
      if (entry['@deprecated'] !== undefined)
        warning('attribute_enum_value_deprecated', p, `enum value ${JSON.stringify(v)} is deprecated`);
      const sib = a.sibling;
      if (sib === undefined || !(sib in item)) return;
      const sibValue = a.is_array === true ? (item[sib] as unknown[] | undefined)?.[i] : item[sib];
      const sibPath = a.is_array === true ? `${at(parent, sib)}[${i}]` : at(parent, sib);
      if (v === 99) {
        if (sibValue === entry.caption)
          warning('attribute_enum_sibling_suspicious_other', sibPath, `"${entry.caption}" for 99: give the source's own value`);
      } else if (sibValue !== entry.caption) {
        // For a single value the server warns; for arrays it is an error.
        (a.is_array === true ? error : warning)(
          'attribute_enum_sibling_incorrect',
          sibPath,
          `expected "${entry.caption}" for ${JSON.stringify(v)}, got ${JSON.stringify(sibValue)}`,
        );
      }
    });
  }

  function checkItem(item: Record<string, unknown>, parent: string, spec: SchemaItem): void {
    const attrs = inForce(spec.attributes);
    for (const [name, a] of Object.entries(attrs)) {
      const path = at(parent, name);
      const value = item[name];
      if (value === undefined || value === null) {
        if (a.requirement === 'required') error('attribute_required_missing', path, 'required attribute missing');
        else if (a.requirement === 'recommended' && opts.warnRecommended === true) {
          warning('attribute_recommended_missing', path, 'recommended attribute missing');
        }
        continue;
      }
      if (a['@deprecated'] !== undefined) warning('attribute_deprecated', path, 'attribute is deprecated');
      if (a.is_array === true) {
        if (!Array.isArray(value))
          error('attribute_wrong_type', path, `expected an array of ${a.object_type ?? a.type}, got ${jsonType(value)}`);
        else value.forEach((v, i) => checkValue(v, `${path}[${i}]`, a));
      } else {
        checkValue(value, path, a);
      }
    }
    // An object with no attributes (`object`, used by `unmapped`) takes anything.
    if (Object.keys(spec.attributes).length > 0) {
      for (const key of Object.keys(item)) {
        if (!(key in attrs)) {
          const why = key in spec.attributes ? ` (it belongs to profile ${spec.attributes[key]?.profiles?.join(', ')}, not declared)` : '';
          error('attribute_unknown', at(parent, key), `not an attribute of ${spec.name}${why}`);
        }
      }
    }
    for (const [name, a] of Object.entries(attrs)) checkEnum(item, parent, name, a);
    const c = spec.constraints;
    if (c?.at_least_one !== undefined && !c.at_least_one.some((k) => k in item)) {
      error('constraint_failed', parent, `${spec.name} needs at least one of ${c.at_least_one.join(', ')}`);
    }
    if (c?.just_one !== undefined && c.just_one.filter((k) => k in item).length !== 1) {
      error('constraint_failed', parent, `${spec.name} needs exactly one of ${c.just_one.join(', ')}`);
    }
  }

  checkItem(event, '', cls);

  if (
    typeof event.activity_id === 'number' &&
    typeof event.type_uid === 'number' &&
    event.type_uid !== cls.uid! * 100 + event.activity_id
  ) {
    error(
      'type_uid_incorrect',
      'type_uid',
      `${event.type_uid} is not class_uid * 100 + activity_id (${cls.uid! * 100 + event.activity_id})`,
    );
  }
  if (isPlainObject(meta) && typeof meta.version === 'string' && meta.version !== schema.version) {
    (meta.version < schema.version ? warning : error)('version_mismatch', 'metadata.version', `${meta.version} is not ${schema.version}`);
  }
  if (Array.isArray(event.observables)) {
    event.observables.forEach((o, i) => {
      if (!isPlainObject(o) || typeof o.name !== 'string') return;
      if (!refersToAttribute(o.name, cls)) {
        error('observable_name_invalid_reference', `observables[${i}].name`, `"${o.name}" names no attribute of ${cls.name}`);
      }
    });
  }

  /** Whether a dotted name (`evidences[0].dst_endpoint.ip`) names an attribute, walking objects with the profiles in force. */
  function refersToAttribute(name: string, root: SchemaItem): boolean {
    let item: SchemaItem | undefined = root;
    const parts = name.split(/\.(?![^[]*\])/);
    for (let i = 0; i < parts.length; i++) {
      const m = /^([^[]+)(\[.*\])?$/.exec(parts[i]!);
      if (m === null || item === undefined) return false;
      const a: SchemaAttribute | undefined = inForce(item.attributes)[m[1]!];
      if (a === undefined) return false;
      if (m[2] !== undefined && a.is_array !== true) return false;
      if (i === parts.length - 1) return true;
      if (a.type !== 'object_t' || a.object_type === undefined) return false;
      item = schema.objects[a.object_type];
    }
    return false;
  }

  return result;
}
