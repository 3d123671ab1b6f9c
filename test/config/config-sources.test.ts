/* eslint-disable @typescript-eslint/no-explicit-any -- the generated JSON Schema, walked field by field */
// ${VAR} interpolation, the config.d folder and the JSON Schema, as `rarecon` reads them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatProblems, interpolate, loadConfig, parseConfigText } from '../../src/cli/config-file.js';
import { commentedDefaultConfig, configJsonSchema } from '../../src/cli/config-schema.js';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { rarecon } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('${VAR} interpolation', () => {
  const env = { PORT: '9999', ORG: 'acme', EMPTY: '', LEVEL: 'debug' };

  it('takes values from the environment, with defaults, typed as the plain value reads', () => {
    const r = parseConfigText(
      [
        'metrics:',
        '  port: ${PORT}',
        'host: {org: "${ORG}-${REGION:-eu}"}',
        'logLevel: ${LEVEL}',
        'alertsPath: ${EMPTY:-/var/log/rarecon/alerts.jsonl}',
        "baselinePath: '$${HOME}/b.db'",
        '# a comment is never read: ${NOT_SET}',
      ].join('\n'),
      'c.yaml',
      env,
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.metrics.port).toBe(9999);
    expect(r.config.host.org).toBe('acme-eu');
    expect(r.config.logLevel).toBe('debug');
    expect(r.config.alertsPath).toBe('/var/log/rarecon/alerts.jsonl');
    expect(r.config.baselinePath).toBe('${HOME}/b.db');
  });

  it('names an unset variable with its file and line, and a malformed reference', () => {
    const r = parseConfigText(
      'detect:\n  activationDays: 3\nhost: {org: "${ORG_NAME}"}\nlogFile: ${oops\n',
      '/etc/rarecon/config.yaml',
      {},
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatProblems(r).split('\n')).toEqual([
      '/etc/rarecon/config.yaml:3: (environment): environment variable ORG_NAME is not set (${ORG_NAME:-default} gives a default)',
      '/etc/rarecon/config.yaml:4: (environment): "${oops" is not ${NAME} or ${NAME:-default} (write $$ for a literal $)',
    ]);
  });

  it('a quoted value stays a string, so a number there is a type problem at its line; in {...} a reference is quoted', () => {
    const r = parseConfigText('metrics:\n  port: "${PORT}"\n', 'c.yaml', env);
    expect(!r.ok && formatProblems(r)).toBe(
      'c.yaml:2: metrics.port: expected a number, got string "9999" (a quoted ${VAR} stays a string: write it unquoted)',
    );
    const flow = parseConfigText('host: {org: ${ORG}}\n', 'c.yaml', env);
    expect(!flow.ok && flow.problems[0]!.message).toMatch(/\(inside \{\.\.\.\} or \[\.\.\.\] write a reference in quotes: "\$\{VAR\}"\)$/);
    const quotedFlow = parseConfigText('host: {org: "${ORG}"}\n', 'c.yaml', env);
    expect(quotedFlow.ok && quotedFlow.config.host.org).toBe('acme');
    expect(interpolate('a$$b${X:-}c', {})).toEqual({ ok: true, value: 'a$bc' });
  });
});

describe('the config.d folder', () => {
  it('lays its files over the main file in name order, and names the file of a problem', () => {
    const dir = join(tmp, 'etc');
    mkdirSync(join(dir, 'config.d'), { recursive: true });
    const main = join(dir, 'config.yaml');
    writeFileSync(main, 'detect: {activationDays: 7, trainingDays: 20}\nlogLevel: warn\n');
    writeFileSync(join(dir, 'config.d', '20-later.yaml'), 'detect: {activationDays: 2}\n');
    writeFileSync(join(dir, 'config.d', '10-first.yaml'), 'detect: {activationDays: 5}\nlogLevel: debug\n');
    writeFileSync(join(dir, 'config.d', 'README'), 'not a config file');
    const r = loadConfig(main);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.files).toEqual([main, join(dir, 'config.d', '10-first.yaml'), join(dir, 'config.d', '20-later.yaml')]);
    expect(r.config.detect).toMatchObject({ activationDays: 2, trainingDays: 20 });
    expect(r.config.logLevel).toBe('debug');

    writeFileSync(join(dir, 'config.d', '30-bad.yaml'), 'detect:\n  trainingDays: -3\n');
    const bad = loadConfig(main);
    expect(!bad.ok && formatProblems(bad)).toBe(
      `${join(dir, 'config.d', '30-bad.yaml')}:2: detect.trainingDays: must be at least 1, got -3`,
    );
  });

  it('rarecon validate says what it read, and refuses --config twice', async () => {
    const dir = join(tmp, 'v');
    mkdirSync(join(dir, 'config.d'), { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), '{}\n');
    writeFileSync(join(dir, 'config.d', 'sinks.yaml'), 'report: {sinks: [{type: stdout, format: ecs}]}\n');
    const ok = await rarecon(['validate', '--config', join(dir, 'config.yaml')]);
    expect(ok.stdout).toBe(`${join(dir, 'config.yaml')} with ${join(dir, 'config.d', 'sinks.yaml')}: valid\n`);
    expect(ok.code).toBe(0);
    const twice = await rarecon(['validate', '--config', join(dir, 'config.yaml'), '--config', join(dir, 'other.yaml')]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(
      /^rarecon: --config given more than once: give it once; put further settings in files of the config\.d folder beside it\n/,
    );
    const run = await rarecon(['run', '--config', join(dir, 'config.yaml'), '--config', join(dir, 'config.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--config given more than once');
  });
});

describe('the JSON Schema and the commented default', () => {
  it('describes every setting of the embedded default, with its default', () => {
    const schema = configJsonSchema() as Record<string, any>;
    const walk = (value: unknown, s: Record<string, any>, path: string): string[] => {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        if (s.type !== 'object') return [`${path}: schema type ${s.type}`];
        return Object.entries(value).flatMap(([k, v]) =>
          s.properties[k] === undefined ? [`${path}.${k}: missing`] : walk(v, s.properties[k], `${path}.${k}`),
        );
      }
      return JSON.stringify(s.default) === JSON.stringify(value)
        ? []
        : [`${path}: default ${JSON.stringify(s.default)} vs ${JSON.stringify(value)}`];
    };
    expect(
      walk({ ...DEFAULT_CONFIG, report: { ...DEFAULT_CONFIG.report, sinks: undefined } }, schema, '').filter(
        (p) => !p.startsWith('.report.sinks'),
      ),
    ).toEqual([]);
    expect(schema.properties.detect.additionalProperties).toBe(false);
    expect(schema.properties.logLevel.enum).toEqual(['error', 'warn', 'info', 'debug']);
    expect(schema.properties.report.properties.sinks.items.properties.sdId.type).toEqual(['string', 'null']);
  });

  it('rarecon config schema prints it; config example is the default, commented out, under the schema line', async () => {
    const s = await rarecon(['config', 'schema']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toEqual(configJsonSchema());
    const e = await rarecon(['config', 'example']);
    expect(e.stdout).toBe(commentedDefaultConfig('/usr/share/rarecon/config.schema.json'));
    const lines = e.stdout.split('\n');
    expect(lines[0]).toBe('# yaml-language-server: $schema=/usr/share/rarecon/config.schema.json');
    expect(lines.filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
    // Uncommented, it is the embedded default itself.
    const body = lines.filter((l) => l.startsWith('# ') && !l.startsWith('# yaml-language-server')).map((l) => l.slice(2));
    const start = body.findIndex((l) => l === 'detect:');
    expect(parse(body.slice(start).join('\n'))).toEqual(JSON.parse(JSON.stringify(DEFAULT_CONFIG)));
    const file = join(tmp, 'example.yaml');
    writeFileSync(file, e.stdout);
    expect((await rarecon(['validate', file])).stdout).toBe(`${file}: valid\n`);
  });
});
