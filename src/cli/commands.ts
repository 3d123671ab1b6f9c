// Every command's options and help, in one place (parsed and printed by command-spec.ts).
import { DEFAULT_CONFIG, DEFAULT_CONFIG_PATH, DEFAULT_SERVER, DEFAULT_STATE_DIR, DEFAULT_THRESHOLDS } from '../config/defaults.js';
import { defineCommand } from './command-spec.js';

const config = {
  type: 'string',
  value: 'FILE',
  help: 'config file (YAML or JSON), merged over the embedded default; its config.d/*.yaml after it',
  shownDefault: 'the embedded default',
} as const;

export const SCORE = defineCommand({
  name: 'score',
  usage: ['--baseline FILE [options] INPUT...'],
  summary: 'Scores rarecon NDJSON or Sysmon JSON logs (.gz allowed) against a baseline: one alert a line on stdout, a summary on stderr.',
  allowPositionals: true,
  options: {
    baseline: { type: 'string', value: 'FILE', help: 'the baseline file to score against (required)' },
    format: { type: 'string', value: 'ocsf|ecs', default: 'ocsf', help: 'the form of the alerts' },
    'activation-days': {
      type: 'string',
      value: 'N',
      help: 'days a host learns before it alerts',
      shownDefault: `detect.activationDays, ${DEFAULT_CONFIG.detect.activationDays}`,
    },
    config,
    state: { type: 'string', value: 'DIR', help: 'keep detector state (learning, dedup) in this folder', shownDefault: 'in memory' },
    strict: { type: 'boolean', help: 'exit 2 when any input line was bad' },
    'summary-json': { type: 'string', value: 'FILE', help: 'also write the summary as JSON to FILE' },
    'max-error-lines': { type: 'string', value: 'N', default: '50', help: 'bad input lines shown on stderr (the rest are counted)' },
    'js-reader': { type: 'boolean', help: 'parse every line in JavaScript, without the native line scanner' },
  },
});

export const BASELINE = defineCommand({
  name: 'baseline',
  usage: ['build [options] INPUT...'],
  summary: 'Works with prevalence baselines.',
  subcommands: [['build', 'learn a baseline from event logs']],
  options: {},
});

export const BASELINE_BUILD = defineCommand({
  name: 'baseline build',
  usage: ['--unit org|host|day --out FILE [options] INPUT...'],
  summary: 'Learns a global prevalence baseline from rarecon NDJSON or Sysmon JSON logs (.gz allowed).',
  allowPositionals: true,
  options: {
    unit: { type: 'string', value: 'org|host|day', help: 'what one observer is (required)' },
    out: { type: 'string', value: 'FILE', help: 'the baseline file to write (required)' },
    'window-days': {
      type: 'string',
      value: 'N',
      help: 'days of sightings the baseline covers',
      shownDefault: `detect.trainingDays, ${DEFAULT_CONFIG.detect.trainingDays}`,
    },
    version: { type: 'string', value: 'N', help: 'the baseline version', shownDefault: 'the build time in ms' },
    'no-private-domains': { type: 'boolean', help: 'root domains by the ICANN list only (no private suffixes like github.io)' },
    'omit-single-observer': { type: 'boolean', help: 'leave out combinations seen by one observer (needs --very-rare-max 1 or more)' },
    'js-reader': { type: 'boolean', help: 'parse every line in JavaScript, without the native line scanner' },
    'uncommon-below': {
      type: 'string',
      value: 'N',
      default: String(DEFAULT_THRESHOLDS.uncommonBelowObservers),
      help: 'a combination seen by fewer observers is uncommon',
    },
    'rare-max': { type: 'string', value: 'N', default: String(DEFAULT_THRESHOLDS.rareMaxObservers), help: 'at most N observers is rare' },
    'very-rare-max': {
      type: 'string',
      value: 'N',
      default: String(DEFAULT_THRESHOLDS.veryRareMaxObservers),
      help: 'at most N observers is very rare',
    },
    'common-process-min': {
      type: 'string',
      value: 'N',
      default: String(DEFAULT_THRESHOLDS.commonProcessMinObservers),
      help: 'a sha256 seen by at least N observers is common',
    },
    config,
  },
});

export const RUN = defineCommand({
  name: 'run',
  usage: ['[options]'],
  summary: `Runs the endpoint daemon (as root). Without --config it reads ${DEFAULT_CONFIG_PATH} when present, else runs on the embedded default.`,
  options: {
    config: { ...config, shownDefault: `${DEFAULT_CONFIG_PATH} when present, else the embedded default` },
    baseline: { type: 'string', value: 'FILE', help: 'score against this baseline file', shownDefault: 'baselinePath, or the sync' },
    state: { type: 'string', value: 'DIR', help: 'the state folder', shownDefault: `stateDir, ${DEFAULT_STATE_DIR}` },
    alerts: { type: 'string', value: 'FILE', help: 'append alerts to FILE', shownDefault: 'the report sinks (stdout)' },
    record: { type: 'string', value: 'FILE', help: "append every record to FILE in rarecon's NDJSON format" },
    'activation-days': {
      type: 'string',
      value: 'N',
      help: 'days the host learns before it alerts',
      shownDefault: `detect.activationDays, ${DEFAULT_CONFIG.detect.activationDays}`,
    },
  },
});

export const STATUS = defineCommand({
  name: 'status',
  usage: ['[--state DIR] [--json]'],
  summary: "Shows the daemon's state at a glance, from the status file it writes. Exit 1 when there is none.",
  options: {
    state: { type: 'string', value: 'DIR', default: DEFAULT_STATE_DIR, help: "the daemon's state folder" },
    json: { type: 'boolean', help: 'print JSON (with "running": false when there is no status)' },
  },
});

export const SYNC = defineCommand({
  name: 'sync',
  usage: ['--now [options]', '[--status] [options]'],
  summary: "Uploads this host's sightings and syncs the baseline now (--now), or shows the last sync status.",
  options: {
    now: { type: 'boolean', help: 'sync now' },
    status: { type: 'boolean', help: 'show the last sync status (what it does without --now)' },
    config,
    state: { type: 'string', value: 'DIR', help: 'the state folder', shownDefault: `stateDir, ${DEFAULT_STATE_DIR}` },
    'host-id': { type: 'string', value: 'ID', help: 'this host id', shownDefault: 'host.id, or derived from /etc/machine-id' },
    json: { type: 'boolean', help: 'print JSON' },
    verbose: { type: 'boolean', short: 'v', help: 'log debug lines too' },
  },
});

const serverCommon = {
  config,
  state: { type: 'string', value: 'DIR', help: "the server's state folder", shownDefault: `server.stateDir, ${DEFAULT_SERVER.stateDir}` },
} as const;

export const SERVER = defineCommand({
  name: 'server',
  usage: [
    '[options]',
    'enroll --org NAME [--max-hosts N] [--json]',
    'tokens [--org NAME] [--json]',
    'revoke-token ID',
    'revoke HOST [--org NAME]',
    'allow-reenrol HOST --org NAME [--hours N]',
    'pubkey',
    'build',
  ],
  summary: 'Runs the baseline server (the "server:" section of the config file), or one of its operator commands.',
  allowPositionals: true,
  subcommands: [
    ['enroll', 'print a new enrolment token for an org'],
    ['tokens', 'list the enrolment tokens and the hosts each admitted'],
    ['revoke-token', 'end an enrolment token (hosts it enrolled keep their credentials)'],
    ['revoke', "refuse a host's credential from now on"],
    ['allow-reenrol', 'let an enrolled host id enrol again with the org token for a while'],
    ['pubkey', 'print the public key endpoints pin'],
    ['build', 'aggregate and publish once, then exit'],
  ],
  options: {
    ...serverCommon,
    listen: {
      type: 'string',
      value: 'HOST',
      help: 'the address to listen on',
      shownDefault: `server.listenHost, ${DEFAULT_SERVER.listenHost}`,
    },
    port: { type: 'string', value: 'N', help: 'the port to listen on', shownDefault: `server.port, ${DEFAULT_SERVER.port}` },
    org: { type: 'string', value: 'NAME', help: 'the org (enroll, tokens, revoke, allow-reenrol)' },
    'max-hosts': {
      type: 'string',
      value: 'N',
      help: 'hosts the token admits (enroll)',
      shownDefault: `server.enrolMaxHostsDefault, ${DEFAULT_SERVER.enrolMaxHostsDefault}`,
    },
    hours: { type: 'string', value: 'N', default: '24', help: 'how long re-enrolment stays allowed (allow-reenrol)' },
    json: { type: 'boolean', help: 'print JSON (enroll, tokens)' },
  },
});

export const SERVER_SUBCOMMANDS = {
  enroll: defineCommand({
    name: 'server enroll',
    usage: ['--org NAME [--json] [options]'],
    summary: "Prints a new enrolment token for an org (created if new) and the server's public key.",
    options: {
      org: { type: 'string', value: 'NAME', help: 'the org, 1 to 200 characters (required)' },
      'max-hosts': SERVER.options['max-hosts'],
      json: { type: 'boolean', help: 'print JSON' },
      ...serverCommon,
    },
  }),
  tokens: defineCommand({
    name: 'server tokens',
    usage: ['[--org NAME] [--json] [options]'],
    summary: 'Lists the enrolment tokens: org, id, how many hosts each admits and has admitted, when made and revoked.',
    options: {
      org: { type: 'string', value: 'NAME', help: 'only the tokens of this org', shownDefault: 'every org' },
      json: { type: 'boolean', help: 'print JSON' },
      ...serverCommon,
    },
  }),
  'revoke-token': defineCommand({
    name: 'server revoke-token',
    usage: ['ID [options]'],
    summary: 'Ends an enrolment token: it admits no more hosts; the hosts it enrolled keep their credentials.',
    allowPositionals: true,
    options: { ...serverCommon },
  }),
  'allow-reenrol': defineCommand({
    name: 'server allow-reenrol',
    usage: ['HOST --org NAME [--hours N] [options]'],
    summary:
      'Lets an enrolled host id enrol again with its org token (a reinstalled endpoint) for N hours; its old credential then stops working.',
    allowPositionals: true,
    options: {
      org: { type: 'string', value: 'NAME', help: 'the org of the host (required)' },
      hours: SERVER.options.hours,
      ...serverCommon,
    },
  }),
  revoke: defineCommand({
    name: 'server revoke',
    usage: ['HOST [--org NAME] [options]'],
    summary: "Refuses a host's credential from now on.",
    allowPositionals: true,
    options: { org: { type: 'string', value: 'NAME', help: 'only the host of this org', shownDefault: 'any org' }, ...serverCommon },
  }),
  pubkey: defineCommand({
    name: 'server pubkey',
    usage: ['[options]'],
    summary: 'Prints the public key endpoints pin (sync.serverPublicKey); creates the signing key when there is none.',
    options: { ...serverCommon },
  }),
  build: defineCommand({
    name: 'server build',
    usage: ['[options]'],
    summary: 'Aggregates the sightings and publishes a baseline once, then exits.',
    options: { ...serverCommon },
  }),
};

const serviceRoot = {
  root: { type: 'string', value: 'DIR', default: '/', help: 'install under DIR (an image being built); nothing is started' },
} as const;

export const SERVICE = defineCommand({
  name: 'service',
  usage: ['install|uninstall|status [options]'],
  summary: 'Manages the hardened systemd unit on Linux (service/ has the launchd and Windows service files).',
  allowPositionals: true,
  subcommands: [
    ['install', 'write the unit and a commented config, enable and start it'],
    ['uninstall', 'stop, disable and remove the unit (config and state are kept)'],
    ['status', 'say whether the unit is installed and running'],
  ],
  options: { ...serviceRoot, 'no-start': { type: 'boolean', help: 'write the files, do not enable or start the unit' } },
});

export const SERVICE_SUBCOMMANDS = {
  install: defineCommand({
    name: 'service install',
    usage: ['[--root DIR] [--no-start]'],
    summary: `Writes /etc/systemd/system/rarecon.service (ExecStart runs this rarecon), a commented ${DEFAULT_CONFIG_PATH} when there is none, then enables and starts the unit. Refuses where systemd is not running unless --root or --no-start.`,
    options: SERVICE.options,
  }),
  uninstall: defineCommand({
    name: 'service uninstall',
    usage: ['[--root DIR]'],
    summary: 'Stops, disables and removes the unit; /etc/rarecon and /var/lib/rarecon are kept.',
    options: { ...serviceRoot },
  }),
  status: defineCommand({
    name: 'service status',
    usage: ['[--root DIR]'],
    summary: "Says whether the unit is installed, and systemd's view of it where systemd runs.",
    options: { ...serviceRoot },
  }),
};

export const VALIDATE = defineCommand({
  name: 'validate',
  usage: ['[--config FILE | FILE]'],
  summary: 'Checks a config file (and its config.d) and prints every problem at once with its line; exit 1 on any.',
  allowPositionals: true,
  options: { config: { ...config, shownDefault: `${DEFAULT_CONFIG_PATH} when present, else the embedded default` } },
});

export const CONFIG = defineCommand({
  name: 'config',
  usage: ['schema', 'example'],
  summary: 'Prints what the config file may hold.',
  allowPositionals: true,
  subcommands: [
    ['schema', 'the JSON Schema of the config file (for editors: yaml-language-server)'],
    ['example', 'the embedded default as a config file, every line commented out'],
  ],
  options: {},
});

export const CONFIG_SUBCOMMANDS = {
  schema: defineCommand({
    name: 'config schema',
    usage: [''],
    summary: 'Prints the JSON Schema (draft 2020-12) of the config file, generated from the typed spec rarecon validates with.',
    options: {},
  }),
  example: defineCommand({
    name: 'config example',
    usage: ['[--schema-url URL]'],
    summary: 'Prints the embedded default as a YAML config file, every setting commented out with its default value.',
    options: {
      'schema-url': {
        type: 'string',
        value: 'URL',
        default: '/usr/share/rarecon/config.schema.json',
        help: 'the schema named in the first line (yaml-language-server)',
      },
    },
  }),
};

export const VERSION = defineCommand({ name: 'version', usage: [''], summary: 'Prints the version (also -V, --version).', options: {} });
