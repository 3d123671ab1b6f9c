// `--help` on every command and subcommand, -V, and the one message style, as a user runs them.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CommandSpec } from '../../src/cli/command-spec.js';
import * as commands from '../../src/cli/commands.js';
import { rarecon } from '../support/cli.js';

const SPECS: CommandSpec[] = [
  commands.SCORE,
  commands.BASELINE,
  commands.BASELINE_BUILD,
  commands.RUN,
  commands.STATUS,
  commands.SYNC,
  commands.SERVER,
  ...Object.values(commands.SERVER_SUBCOMMANDS),
  commands.SERVICE,
  ...Object.values(commands.SERVICE_SUBCOMMANDS),
  commands.VALIDATE,
  commands.CONFIG,
  ...Object.values(commands.CONFIG_SUBCOMMANDS),
  commands.VERSION,
];

describe('--help', () => {
  it.each(SPECS.map((s) => [s.name, s] as const))(
    'rarecon %s --help: usage, what it does, one line a flag with its default',
    async (name, spec) => {
      for (const flag of ['--help', '-h']) {
        const r = await rarecon([...name.split(' '), flag]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const lines = r.stdout.split('\n');
        expect(lines[0]).toMatch(new RegExp(`^usage: rarecon ${name}( |$)`));
        expect(r.stdout).toContain(spec.summary);
        expect(lines).toContain('options:');
        expect(r.stdout).toMatch(/^ {2}-h, --help {16}print this help and exit$/m);
        for (const [opt, o] of Object.entries(spec.options)) {
          const at = lines.findIndex((l) => new RegExp(`^ {2}(-\\w, |    )--${opt}( |$)`).test(l));
          expect(at, `--${opt} in ${name}`).toBeGreaterThan(-1);
          // The description is on the flag's line, or the next when the flag is long.
          const text = /\S {2,}\S/.test(lines[at]!.trim()) ? lines[at]! : lines[at + 1]!;
          expect(text).toContain(o.help);
          const shown = o.shownDefault ?? (o.default === undefined || o.default === false ? undefined : String(o.default));
          if (shown !== undefined) expect(text).toContain(`(default: ${shown})`);
        }
      }
    },
  );

  it('rarecon help and rarecon help <command>', async () => {
    const all = await rarecon(['help']);
    expect(all.code).toBe(0);
    for (const c of ['run', 'status', 'score', 'baseline build', 'sync', 'server', 'service', 'validate', 'config', 'version']) {
      expect(all.stdout).toMatch(new RegExp(`^ {2}${c} +\\S`, 'm'));
    }
    const one = await rarecon(['help', 'status']);
    expect(one.stdout).toMatch(/^usage: rarecon status /);
  });
});

describe('version and message style', () => {
  it('-V, --version and version print the version', async () => {
    for (const v of ['-V', '--version', 'version']) {
      const r = await rarecon([v]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^rarecon \d+\.\d+\.\d+\n$/);
    }
  });

  it('every bad usage is one "rarecon: ..." message, the usage and where the options are, exit 1', async () => {
    for (const [args, first, usage] of [
      [['status', '--bogus'], "rarecon: unknown option '--bogus'", 'usage: rarecon status '],
      [['service', 'install', '--bogus'], "rarecon: unknown option '--bogus'", 'usage: rarecon service '],
      [['service', 'frob'], 'rarecon: unknown service command "frob"', 'usage: rarecon service '],
      [['server', 'frob', '--state', '/nonexistent'], 'rarecon: unknown server command "frob"', 'usage: rarecon server '],
      [['config', 'frob'], 'rarecon: unknown config command "frob"', 'usage: rarecon config '],
      [['baseline', 'frob'], 'rarecon: unknown baseline command "frob"', 'usage: rarecon baseline '],
      [['sync', '--now', '--now'], 'rarecon: --now given more than once: give it once', 'usage: rarecon sync '],
    ] as const) {
      const r = await rarecon([...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n');
      expect(lines[0]).toBe(first);
      expect(lines[1]!.startsWith(usage)).toBe(true);
      expect(r.stderr).toMatch(/'rarecon [a-z ]+ --help' lists the options and their defaults\.\n$/);
    }
  });

  it('validate without a config file checks the embedded default, as run would run on', async () => {
    // This machine has no /etc/rarecon/config.yaml in CI; where it has one, validate checks that.
    const r = await rarecon(['validate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^(the embedded default|\/etc\/rarecon\/config\.yaml)( with .*)?: valid\n$/);
  });

  it('status --json with no daemon prints JSON, exit 1', async () => {
    const r = await rarecon(['status', '--json', '--state', '/nonexistent/rarecon-state']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ running: false, stateDir: '/nonexistent/rarecon-state' });
    const text = await rarecon(['status', '--state', '/nonexistent/rarecon-state']);
    expect(text.stdout).toBe('rarecon daemon: no status in /nonexistent/rarecon-state (never started here, or another --state)\n');
  });

  // Only where systemd is not running: elsewhere this would install the unit for real.
  it.skipIf(existsSync('/run/systemd/system'))('service install refuses where systemd is not running, and writes nothing', async () => {
    const before = existsSync('/etc/systemd/system/rarecon.service');
    const r = await rarecon(['service', 'install']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rarecon: systemd is not running on this host/);
    expect(existsSync('/etc/systemd/system/rarecon.service')).toBe(before);
  });
});
