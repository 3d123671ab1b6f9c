import { describe, expect, it } from 'vitest';
import { mergeDefaults, validate, type Problem } from '../../src/config/spec.js';
import { DEFAULT_REPORT, type ReportConfig } from '../../src/config/defaults.js';
import { REPORT_SPEC, describeSink, resolveReport } from '../../src/report/config.js';

function load(raw: unknown): { problems: Problem[]; config?: ReportConfig } {
  const problems: Problem[] = [];
  // As the loader does: a section the file leaves out is not checked, only defaulted.
  if (raw !== undefined) validate(raw, REPORT_SPEC, 'report', problems);
  if (problems.length > 0) return { problems };
  const r = resolveReport(mergeDefaults(DEFAULT_REPORT, raw));
  return r.ok ? { problems: [], config: r.config } : { problems: r.problems };
}

describe('report config', () => {
  it('defaults to one stdout sink and a bounded outbox in the state folder', () => {
    const { problems, config } = load(undefined);
    expect(problems).toEqual([]);
    expect(config!.sinks).toEqual([{ type: 'stdout', name: 'stdout', format: 'ocsf', batchMaxAlerts: 500, lingerMs: 0 }]);
    expect(config!.outbox).toMatchObject({ path: null, maxRows: 100_000, synchronous: 'normal' });
  });

  it('fills each sink with the defaults of its type', () => {
    const { problems, config } = load({
      sinks: [
        { type: 'http', name: 'siem', url: 'https://siem.example/ingest', tokenEnv: 'SIEM_TOKEN' },
        { type: 'syslog', host: '10.0.0.5', port: 6514, transport: 'tls', caFile: '/etc/rarecon/ca.pem' },
        { type: 'file', path: '/var/log/rarecon/alerts.ndjson', maxFiles: 3 },
      ],
      outbox: { maxRows: 5000 },
    });
    expect(problems).toEqual([]);
    expect(config!.sinks[0]).toMatchObject({
      type: 'http',
      name: 'siem',
      body: 'json',
      timeoutMs: 10_000,
      format: 'ocsf',
      tokenFile: null,
    });
    expect(config!.sinks[1]).toMatchObject({ type: 'syslog', name: 'syslog', facility: 'local0', transport: 'tls' });
    expect(config!.sinks[2]).toMatchObject({ type: 'file', name: 'file', maxFiles: 3, maxBytes: 50 * 1024 * 1024, fsync: true });
    expect(config!.outbox).toMatchObject({ maxRows: 5000, maxBytes: 256 * 1024 * 1024 });
  });

  it('reports every problem at once with its path', () => {
    const shape = load({
      sinks: [{ type: 'kafka' }, { type: 'http', url: 'ftp://x', port: 'x' }],
      outbox: { synchronous: 'off' },
    }).problems;
    expect(shape.map((p) => p.path)).toEqual([
      'report.sinks[0].type',
      'report.sinks[1].url',
      'report.sinks[1].port',
      'report.outbox.synchronous',
    ]);
    const meaning = load({
      sinks: [
        { type: 'http', name: 'a' },
        { type: 'http', name: 'a', url: 'http://x/', tokenEnv: 'T', tokenFile: '/t', caFile: '/ca' },
        { type: 'syslog', transport: 'udp', caFile: '/ca' },
        { type: 'file', url: 'http://x/' },
        { type: 'stdout', certFile: '/c' },
        { name: 'notype' },
      ],
    }).problems;
    expect(meaning).toEqual([
      { path: 'report.sinks[0].url', message: expect.stringMatching(/is required/) },
      { path: 'report.sinks[1].name', message: expect.stringMatching(/already the name of sink 0/) },
      { path: 'report.sinks[1].tokenFile', message: 'set tokenEnv or tokenFile, not both' },
      { path: 'report.sinks[1].caFile', message: 'TLS files need an https:// url' },
      { path: 'report.sinks[2].host', message: expect.stringMatching(/is required/) },
      { path: 'report.sinks[2].port', message: expect.stringMatching(/is required/) },
      { path: 'report.sinks[2].transport', message: 'TLS files need transport: tls' },
      { path: 'report.sinks[3].url', message: 'does not apply to a file sink' },
      { path: 'report.sinks[3].path', message: expect.stringMatching(/is required/) },
      { path: 'report.sinks[4].certFile', message: 'does not apply to a stdout sink' },
      { path: 'report.sinks[5].type', message: 'is required: one of http, syslog, file, stdout, server' },
    ]);
    expect(load({ sinks: [] }).problems).toEqual([{ path: 'report.sinks', message: expect.stringMatching(/at least one sink/) }]);
  });

  it('never logs a secret: sinks are described without tokens or URL credentials', () => {
    const { config } = load({ sinks: [{ type: 'http', url: 'https://user:pw@siem.example/in?key=abc', tokenFile: '/run/secrets/t' }] });
    const text = JSON.stringify(describeSink(config!.sinks[0]!));
    expect(text).not.toMatch(/pw|abc|secrets/);
    expect(text).toContain('https://siem.example/in');
    expect(text).toContain('bearer');
  });
});
