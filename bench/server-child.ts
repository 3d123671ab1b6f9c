// The baseline server in its own process for the benchmarks: config as JSON in
// argv[2]; prints {"url": ...} once listening; stops on SIGTERM.
import { DEFAULT_SERVER, type ServerConfig } from '../src/config/defaults.js';
import { startBaselineServer } from '../src/server/server.js';

const over = JSON.parse(process.argv[2] ?? '{}') as Partial<ServerConfig>;
const cfg: ServerConfig = { ...structuredClone(DEFAULT_SERVER), listenHost: '127.0.0.1', port: 0, ...over };
const server = await startBaselineServer(
  cfg,
  (level, msg, fields) => {
    if (level === 'error' || level === 'warn' || msg.startsWith('The aggregation') || msg.startsWith('A baseline'))
      process.stderr.write(`${level}: ${msg} ${JSON.stringify(fields ?? {})}\n`);
  },
  { noInitialBuild: true },
);
process.stdout.write(
  JSON.stringify({ url: server.url, adminToken: server.adminToken, publicKey: server.publicKeyText, certSha256: server.certSha256 }) + '\n',
);
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
