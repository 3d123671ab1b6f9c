import { describe, expect, it } from 'vitest';
import { parseConfigText, loadConfig } from '../../src/cli/config-file.js';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { generateSigningKey } from '../../src/baseline/signature.js';

describe('config', () => {
  it('gives every default when there is no file', () => {
    const r = loadConfig(null);
    expect(r.ok && r.config).toEqual(DEFAULT_CONFIG);
  });

  it('merges a partial file over the defaults', () => {
    const r = parseConfigText('detect:\n  activationDays: 7\n  exclusions:\n    ports: [8080]\n', 'c.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.detect.activationDays).toBe(7);
    expect(r.config.detect.exclusions.ports).toEqual([8080]);
    expect(r.config.detect.trainingDays).toBe(30);
    expect(r.config.detect.knownVendors).toContain('Microsoft');
  });

  it('reports every problem at once with its line', () => {
    const text = [
      'detect:',
      '  activationDays: -1',
      '  internalNetworks: [10.0.0.0/8, 10.0.0.0/99, nonsense]',
      '  exclusions:',
      '    sha256: [abc]',
      '    ports: [70000]',
      '  colour: blue',
      'alertFormat: xml',
    ].join('\n');
    const r = parseConfigText(text, '/etc/rarecon/config.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const got = r.problems.map((p) => `${p.line}: ${p.path}`);
    expect(got).toEqual([
      '2: detect.activationDays',
      '3: detect.internalNetworks[1]',
      '3: detect.internalNetworks[2]',
      '5: detect.exclusions.sha256[0]',
      '6: detect.exclusions.ports[0]',
      '7: detect.colour',
      '8: alertFormat',
    ]);
    expect(r.problems[0]!.message).toBe('must be at least 0, got -1');
    expect(r.problems[5]!.message).toMatch(/^unknown setting/);
  });

  it('reports a syntax error with its line', () => {
    const r = parseConfigText('detect:\n  activationDays: [1,\n', 'bad.yaml');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]!.line).not.toBeNull();
  });

  it('names a file it cannot read', () => {
    const r = loadConfig('/nonexistent/rarecon.yaml');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]!.message).toMatch(/cannot read/);
  });

  it('checks the watchdog budgets and where logs go, with their lines', () => {
    const r = parseConfigText(
      [
        'logStream: stdout',
        'watchdog:',
        '  cpuPercent: 0',
        '  memoryBytes: 209715200',
        '  hardMemoryBytes: 104857600',
        '  colour: red',
      ].join('\n'),
      'c.yaml',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)).toEqual([
      '3: watchdog.cpuPercent: must be at least 0.1, got 0',
      expect.stringMatching(/^6: watchdog.colour: unknown setting \(known here: enabled, intervalMs, cpuPercent/),
    ]);
    // The cross-field rules, once the shape is right.
    const c = parseConfigText(['logStream: stdout', 'watchdog: {memoryBytes: 209715200, hardMemoryBytes: 104857600}'].join('\n'), 'c.yaml');
    expect(c.ok).toBe(false);
    if (c.ok) return;
    expect(c.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)).toEqual([
      '1: logStream: stdout carries alerts (a stdout sink is configured): keep logs on stderr, or set logFile',
      '2: watchdog.hardMemoryBytes: must be above watchdog.memoryBytes (209715200), or 0 for no hard limit',
    ]);
    // Logs on stdout are fine once no sink writes alerts there.
    const ok = parseConfigText(
      'logStream: stdout\nreport: {sinks: [{type: file, name: a, path: /tmp/a.jsonl}]}\nwatchdog: {hardMemoryBytes: 0}\n',
      'c.yaml',
    );
    expect(ok.ok && ok.config.logStream).toBe('stdout');
    expect(ok.ok && ok.config.watchdog).toMatchObject({ enabled: true, cpuPercent: 5, hardMemoryBytes: 0 });
  });
  it('takes a server sink only with sync.serverUrl, and fills its defaults', () => {
    const bad = parseConfigText('report:\n  sinks:\n    - {type: server, name: hq}\n', 'c.yaml');
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)).toEqual([
      '3: report.sinks[0].type: a server sink sends to the baseline server of sync.serverUrl, which is not set',
    ]);
    const sync = `sync: {serverUrl: "https://baseline.example:8787", serverPublicKey: "${generateSigningKey().publicKeyText}"}\n`;
    const good = parseConfigText(`${sync}report: {sinks: [{type: server, format: ecs}]}\n`, 'c.yaml');
    expect(good.ok && good.config.report.sinks).toEqual([
      { type: 'server', name: 'server', format: 'ecs', batchMaxAlerts: 500, lingerMs: 200, timeoutMs: 10_000, gzip: false },
    ]);
    const wrong = parseConfigText(`${sync}report: {sinks: [{type: server, url: "https://x.example"}]}\n`, 'c.yaml');
    expect(!wrong.ok && wrong.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'report.sinks[0].url: does not apply to a server sink',
    ]);
  });
});
