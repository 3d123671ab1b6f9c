// Fleet simulator: N orgs x M hosts posting D days of sightings to a real
// baseline server, with the skew of real fleets:
//   - a few hundred popular binaries everywhere, each talking to its own few
//     domains (updaters, agents), a handful of browsers talking to a Zipf
//     spread of a large domain pool;
//   - binaries of each org's own (in-house tools) talking to its own domains;
//   - a long tail of one-off (binary, domain, port) combos on single hosts;
//   - planted rare combos: a popular binary talking to an odd domain and port
//     on the hosts of exactly two orgs.
// Deterministic for a seed. Run: node dist/bench/fleet-sim.js --url URL --state SERVER_STATE_DIR [--orgs N] [--hosts M] [--days D]
import { Agent, request } from 'node:http';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { IntakeStore } from '../src/server/intake-store.js';

export interface FleetOptions {
  /** One server, or several nodes of one shared store (each host talks to one of them). */
  url: string | string[];
  /** Org numbers start here (a second run adds other orgs to the same store). */
  orgOffset?: number;
  /** Enrolment token of an org (created on demand). */
  tokenFor: (org: string) => Promise<string> | string;
  orgs: number;
  hostsPerOrg: number;
  days: number;
  /** Last simulated day (UTC day start, ms); the fleet covers the `days` before it, inclusive. */
  endDayMs: number;
  /** Sightings per host-day (processes + combos), ~333 for 100M over 1,000 x 10 x 30. */
  sightingsPerHostDay: number;
  /** Share of combos that are one-off long-tail combos. */
  tailShare: number;
  daysPerRequest: number;
  concurrency: number;
  seed: number;
  /** Progress lines, one a few seconds. */
  progress?: (line: string) => void;
}

export const DEFAULT_FLEET: Omit<FleetOptions, 'url' | 'tokenFor' | 'endDayMs'> = {
  orgs: 1_000,
  hostsPerOrg: 10,
  days: 30,
  sightingsPerHostDay: 333,
  tailShare: 0.09,
  daysPerRequest: 10,
  concurrency: 6,
  seed: 42,
};

export interface FleetResult {
  hosts: number;
  requests: number;
  sightings: number;
  bytesSent: number;
  elapsedMs: number;
  sightingsPerSecond: number;
  /** (sha256, root domain, port) planted on exactly two orgs: expect 2 observers with unit org. */
  planted: Array<{ sha256: string; rootDomain: string; port: number; orgs: number }>;
  popular: { sha256: string; rootDomain: string; port: number };
}

const DAY_MS = 86_400_000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Zipf-like pick in [0, n): small indexes are far more likely. */
function zipf(rand: () => number, n: number, skew = 1.2): number {
  return Math.min(n - 1, Math.floor(n * rand() ** (skew * 2.5)));
}

export function shaOf(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}

const shaScratch = Buffer.alloc(32);
function randomSha(rand: () => number): string {
  for (let i = 0; i < 32; i += 4) shaScratch.writeUInt32LE(Math.floor(rand() * 4_294_967_296), i);
  return shaScratch.toString('hex');
}

const PORTS = [443, 443, 443, 443, 443, 443, 80, 80, 8443, 53];

interface Binary {
  sha: string;
  /** Fixed domains; empty = a browser, which spreads over the global pool. */
  domains: string[];
}

export async function simulateFleet(opts: FleetOptions): Promise<FleetResult> {
  const rand = mulberry32(opts.seed);
  const popularCount = 400;
  const browserCount = 6;
  const globalDomains = 200_000;
  const popular: Binary[] = [];
  for (let i = 0; i < popularCount; i++) {
    const domains: string[] = [];
    if (i >= browserCount) for (let k = 0, n = 1 + Math.floor(rand() * 12); k < n; k++) domains.push(`d${zipf(rand, 20_000)}.com`);
    popular.push({ sha: shaOf(`popular-${i}`), domains });
  }
  const orgBinaries = 60;
  const planted: FleetResult['planted'] = [];
  for (let i = 0; i < 5; i++)
    planted.push({ sha256: (popular[browserCount + i] as Binary).sha, rootDomain: `planted-c2-${i}.net`, port: 8443 + i, orgs: 2 });
  const plantedOrgs = new Map<number, number[]>(); // org -> planted indexes
  for (let i = 0; i < planted.length; i++) {
    for (const o of [(i * 7) % opts.orgs, (i * 7 + 3) % opts.orgs]) {
      const list = plantedOrgs.get(o) ?? [];
      list.push(i);
      plantedOrgs.set(o, list);
    }
  }
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const started = performance.now();
  let sightings = 0;
  let requests = 0;
  let bytesSent = 0;
  let lastProgress = started;
  const firstDay = opts.endDayMs - (opts.days - 1) * DAY_MS;

  const urls = typeof opts.url === 'string' ? [opts.url] : opts.url;
  // A kept-alive socket the server closes as a request goes out ends in ECONNRESET: an upload is idempotent, so it goes again.
  const post = async (path: string, body: string, token: string | null, node = 0): Promise<{ status: number; body: string }> => {
    try {
      return await postOnce(path, body, token, node);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET' || path !== '/v1/sightings') throw e;
      return postOnce(path, body, token, node);
    }
  };
  const postOnce = (path: string, body: string, token: string | null, node: number): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const u = new URL(path, urls[node % urls.length] as string);
      const buf = Buffer.from(body);
      bytesSent += buf.length;
      const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(buf.length) };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, agent }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(buf);
    });

  // One org's hosts: enrol, then post their days.
  const runHost = async (org: number, host: number, token: string): Promise<void> => {
    const hostRand = mulberry32(opts.seed * 1_000_003 + org * 1009 + host);
    const node = org * opts.hostsPerOrg + host;
    const e = await post('/v1/enroll', JSON.stringify({ token, hostId: `o${org}-h${host}` }), null, node);
    if (e.status !== 200) throw new Error(`enrolment of o${org}-h${host} failed: ${e.status} ${e.body}`);
    const cred = (JSON.parse(e.body) as { credential: string }).credential;
    // This host's binaries: most of the popular ones, a share of its org's own.
    const mine: Binary[] = [];
    for (let i = 0; i < popularCount; i++)
      if (i < browserCount || hostRand() < 0.35 * (1 - i / popularCount) + 0.05) mine.push(popular[i] as Binary);
    for (let i = 0; i < orgBinaries; i++) {
      if (hostRand() < 0.5) {
        const domains = [`org${org}-svc${i % 7}.com`, `org${org}-api.net`];
        mine.push({ sha: shaOf(`org-${org}-bin-${i}`), domains });
      }
    }
    const procsPerDay = Math.min(mine.length, Math.round(opts.sightingsPerHostDay * 0.12));
    const combosPerDay = opts.sightingsPerHostDay - procsPerDay;
    const tailPerDay = Math.round(combosPerDay * opts.tailShare);
    const myPlanted = plantedOrgs.get(org) ?? [];
    for (let d0 = 0; d0 < opts.days; d0 += opts.daysPerRequest) {
      const parts: string[] = [];
      for (let d = d0; d < Math.min(opts.days, d0 + opts.daysPerRequest); d++) {
        const day = new Date(firstDay + d * DAY_MS).toISOString().slice(0, 10);
        const procs = new Set<string>();
        while (procs.size < procsPerDay) procs.add((mine[Math.floor(hostRand() * mine.length)] as Binary).sha);
        const combos = new Set<string>();
        let guard = 0;
        while (combos.size < combosPerDay - tailPerDay && guard++ < combosPerDay * 20) {
          const b = mine[zipf(hostRand, mine.length, 0.6)] as Binary;
          const root =
            b.domains.length === 0
              ? `w${zipf(hostRand, globalDomains)}.com`
              : (b.domains[Math.floor(hostRand() * b.domains.length)] as string);
          const port = b.domains.length === 0 ? (hostRand() < 0.9 ? 443 : 80) : (PORTS[Math.floor(hostRand() * PORTS.length)] as number);
          combos.add(`{"sha256":"${b.sha}","rootDomain":"${root}","port":${port}}`);
        }
        for (let t = 0; t < tailPerDay; t++) {
          combos.add(
            `{"sha256":"${randomSha(hostRand)}","rootDomain":"tail${Math.floor(hostRand() * 5_000_000)}.org","port":${1024 + Math.floor(hostRand() * 60_000)}}`,
          );
        }
        if (host === 0 && d === opts.days - 1) {
          for (const i of myPlanted) {
            const p = planted[i] as FleetResult['planted'][number];
            combos.add(`{"sha256":"${p.sha256}","rootDomain":"${p.rootDomain}","port":${p.port}}`);
          }
        }
        sightings += procs.size + combos.size;
        parts.push(`{"day":"${day}","processes":[${[...procs].map((s) => `"${s}"`).join(',')}],"combos":[${[...combos].join(',')}]}`);
      }
      const r = await post('/v1/sightings', `{"days":[${parts.join(',')}]}`, cred, node);
      requests++;
      if (r.status !== 200) throw new Error(`upload of o${org}-h${host} failed: ${r.status} ${r.body.slice(0, 300)}`);
    }
  };

  const tokens: string[] = [];
  const offset = opts.orgOffset ?? 0;
  for (let o = 0; o < opts.orgs; o++) tokens.push(await opts.tokenFor(`org-${o + offset}`));
  const queue: Array<() => Promise<void>> = [];
  for (let o = 0; o < opts.orgs; o++) {
    const org = o + offset;
    queue.push(async () => {
      const token = tokens[org - offset] as string;
      for (let h = 0; h < opts.hostsPerOrg; h++) await runHost(org, h, token);
      const now = performance.now();
      if (opts.progress !== undefined && now - lastProgress > 5_000) {
        lastProgress = now;
        opts.progress(
          `  fleet: ${org - offset + 1}/${opts.orgs} orgs, ${sightings.toLocaleString('en-US')} sightings, ${Math.round(sightings / ((now - started) / 1000)).toLocaleString('en-US')}/s`,
        );
      }
    });
  }
  let next = 0;
  const workers = Array.from({ length: opts.concurrency }, async () => {
    while (next < queue.length) await (queue[next++] as () => Promise<void>)();
  });
  await Promise.all(workers);
  agent.destroy();
  const elapsedMs = performance.now() - started;
  return {
    hosts: opts.orgs * opts.hostsPerOrg,
    requests,
    sightings,
    bytesSent,
    elapsedMs: Math.round(elapsedMs),
    sightingsPerSecond: Math.round(sightings / (elapsedMs / 1000)),
    planted,
    popular: {
      sha256: (popular[browserCount] as Binary).sha,
      rootDomain: (popular[browserCount] as Binary).domains[0] as string,
      port: 443,
    },
  };
}

/** Enrolment tokens made straight in the server's database (same machine). */
export function tokensFromStateDir(stateDir: string): { tokenFor: (org: string) => string; close: () => void } {
  const store = new IntakeStore(join(stateDir, 'server.db'));
  const cache = new Map<string, string>();
  return {
    tokenFor: (org) => {
      let t = cache.get(org);
      if (t === undefined) {
        t = store.createEnrolToken(org, 1_000, Date.now()).token;
        cache.set(org, t);
      }
      return t;
    },
    close: () => store.close(),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      state: { type: 'string' },
      orgs: { type: 'string' },
      hosts: { type: 'string' },
      days: { type: 'string' },
      sightings: { type: 'string' },
    },
  });
  if (values.url === undefined || values.state === undefined) {
    process.stderr.write(
      'usage: node dist/bench/fleet-sim.js --url URL --state SERVER_STATE_DIR [--orgs N] [--hosts M] [--days D] [--sightings PER_HOST_DAY]\n',
    );
    process.exitCode = 1;
    return;
  }
  const tokens = tokensFromStateDir(values.state);
  const r = await simulateFleet({
    ...DEFAULT_FLEET,
    url: values.url,
    tokenFor: tokens.tokenFor,
    orgs: Number(values.orgs ?? 20),
    hostsPerOrg: Number(values.hosts ?? 10),
    days: Number(values.days ?? 30),
    sightingsPerHostDay: Number(values.sightings ?? DEFAULT_FLEET.sightingsPerHostDay),
    endDayMs: Math.floor(Date.now() / DAY_MS) * DAY_MS,
    progress: (l) => process.stderr.write(`${l}\n`),
  });
  tokens.close();
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
