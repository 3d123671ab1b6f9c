// A child process holding an outbox and an HTTP delivery loop, for the crash
// test: it enqueues RARECON_COUNT alerts in small batches (printing each
// commit), reports "drained" when the outbox is empty, and shuts down on SIGTERM.
import { DEFAULT_REPORT, SINK_DEFAULTS } from '../../src/config/defaults.js';
import { Reporter } from '../../src/report/reporter.js';
import { detection } from './alerts.js';

const env = process.env;
const count = Number(env['RARECON_COUNT'] ?? '0');
const rep = Reporter.start(
  {
    ...DEFAULT_REPORT,
    outbox: { ...DEFAULT_REPORT.outbox, path: env['RARECON_OUTBOX']! },
    backoff: { initialMs: 20, maxMs: 200, maxRetryAfterMs: 5_000, maxAttempts: 0 },
    pollMs: 50,
    sinks: [
      {
        ...SINK_DEFAULTS.http,
        name: 'siem',
        url: env['RARECON_URL']!,
        batchMaxAlerts: 20,
        lingerMs: 0,
        timeoutMs: 5_000,
        // A bearer token when the receiver wants one (the baseline server's alert intake).
        tokenEnv: env['RARECON_TOKEN'] === undefined ? null : 'RARECON_TOKEN',
      },
    ],
  },
  { stateDir: '/nonexistent', log: (level, msg, fields) => process.stderr.write(`${level} ${msg} ${JSON.stringify(fields ?? {})}\n`) },
);

process.on('SIGTERM', () => {
  void rep.shutdown().then(() => {
    process.stdout.write('stopped\n');
    process.exit(0);
  });
});

let i = 0;
function enqueueSome(): void {
  const batch = [];
  for (let k = 0; k < 10 && i < count; k++, i++) batch.push(detection(i, { host: `h${i % 4}` }));
  if (batch.length > 0) {
    const r = rep.enqueueMany(batch);
    if (!r.ok) throw new Error(r.error);
    process.stdout.write(`committed ${i}\n`);
    setTimeout(enqueueSome, 1);
    return;
  }
  const timer = setInterval(() => {
    if (rep.stats().outbox.rows === 0) {
      clearInterval(timer);
      process.stdout.write('drained\n');
    }
  }, 20);
}
enqueueSome();
