// Runs the compiled `rarecon server` or `rarecon sync` in a child process for
// the tests (main.ts wires them for users). Usage: node run-cli.mjs server|sync ARGS...
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'cli');
const [cmd, ...args] = process.argv.slice(2);
const run = cmd === 'server' ? (await import(join(dist, 'server.js'))).serverCommand : (await import(join(dist, 'sync.js'))).syncCommand;
run(args).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`rarecon: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
