// A synthetic fleet log for the whole offline job (issue 17): `rarecon baseline
// build --unit host` over D training days, then `rarecon score` over the 12 h
// after them. H hosts, 3,000 binaries, 100,000 root domains: each binary talks
// to a skewed few domains of its own on 443 (common combinations), a share of
// connections goes to a random domain and port (uncommon: alerts in the test
// log), 3% are named only by the DNS answer just before them.
// Deterministic. Run: node dist/bench/offline-fleet.js --dir DIR [--hosts 2000] [--days 30] [--train 2000000] [--test 1000000] [--alerting 0.06]
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { DAY_MS } from '../src/model/baseline.js';
import { BENCH_DAY0_MS, mix32, shaHex } from './baseline-data.js';

export interface FleetLogOptions {
  hosts: number;
  days: number;
  trainLines: number;
  testLines: number;
  /** Share of test connections to a random (uncommon) combination. */
  alerting: number;
}

const BINARIES = 3_000;
const ROOTS = 100_000;
const rootName = (r: number): string => `r${r.toString(36)}-net${r % 7}.com`;

async function writeLog(
  path: string,
  lines: number,
  startMs: number,
  spanMs: number,
  rareShare: number,
  seed: number,
  o: FleetLogOptions,
): Promise<void> {
  const out = createWriteStream(path);
  const shas = Array.from({ length: BINARIES }, (_, j) => shaHex(j));
  let buf = '';
  const flush = async (): Promise<void> => {
    if (!out.write(buf)) await once(out, 'drain');
    buf = '';
  };
  for (let e = 0; e < lines; e++) {
    const x = seed + e * 5;
    const host = mix32(x) % o.hosts;
    const u = mix32(x + 1) / 4_294_967_296;
    const v = mix32(x + 2) / 4_294_967_296;
    // Popular binaries are run by most hosts: a cubic skew over 3,000.
    const bin = Math.floor(BINARIES * v * v * v);
    const t = startMs + Math.floor((e / lines) * spanMs);
    const hostRef = `{"id":"host-${host}","org":"fleet"}`;
    let root: number;
    let port = 443;
    if (u < rareShare) {
      root = mix32(x + 3) % ROOTS;
      port = 1024 + (mix32(x + 4) % 60_000);
    } else {
      const k = Math.floor(30 * (mix32(x + 3) / 4_294_967_296) ** 2);
      root = (bin * 37 + k) % ROOTS;
    }
    const ip = `203.0.${(bin >> 8) & 0x7f}.${bin & 0xff}`;
    const byDns = mix32(x + 4) % 100 < 3;
    if (byDns) {
      buf += `{"type":"dns","time":${t},"host":${hostRef},"query":"www.${rootName(root)}","answers":[{"ip":"${ip}","ttl":300}]}\n`;
    }
    const name = byDns ? '' : `,"hostname":"www.${rootName(root)}"`;
    buf +=
      `{"type":"connection","time":${t},"host":${hostRef},"process":{"pid":${1000 + (e % 5000)},"tid":${1000 + (e % 5000)},` +
      `"path":"/opt/app/bin${bin}","sha256":"${shas[bin]!}","signer":{"status":"valid","subject":"Fleet","vendor":"Fleet"},` +
      `"injection":{"injected":false,"indicators":[]},"cmdline":"bin${bin} --run","user":"svc"},"protocol":"tcp",` +
      `"remote":{"ip":"${ip}","port":${port}${name}}}\n`;
    if (buf.length > 1 << 20) await flush();
  }
  await flush();
  out.end();
  await once(out, 'finish');
}

/** Writes DIR/train.jsonl (D days) and DIR/test.jsonl (the 12 h after them). */
export async function writeFleetLogs(dir: string, o: FleetLogOptions): Promise<{ train: string; test: string }> {
  const train = join(dir, 'train.jsonl');
  const test = join(dir, 'test.jsonl');
  await writeLog(train, o.trainLines, BENCH_DAY0_MS, o.days * DAY_MS, 0.02, 1, o);
  await writeLog(test, o.testLines, BENCH_DAY0_MS + o.days * DAY_MS, DAY_MS / 2, o.alerting, 7_000_001, o);
  return { train, test };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      hosts: { type: 'string', default: '2000' },
      days: { type: 'string', default: '30' },
      train: { type: 'string', default: '2000000' },
      test: { type: 'string', default: '1000000' },
      alerting: { type: 'string', default: '0.06' },
    },
  });
  if (values.dir === undefined) throw new Error('--dir DIR is required');
  const files = await writeFleetLogs(values.dir, {
    hosts: Number(values.hosts),
    days: Number(values.days),
    trainLines: Number(values.train),
    testLines: Number(values.test),
    alerting: Number(values.alerting),
  });
  console.log(`${files.train}\n${files.test}`);
}
