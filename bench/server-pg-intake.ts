// Where the PostgreSQL store's intake time goes (issue 19): uploads made
// beforehand (not timed), stored straight through PgStore.storeSightings at
// the fleet bench's concurrency, no HTTP. Prints the rate and the CPU seconds
// of this process (the node's share: row encoding, dictionary lookups) against
// PostgreSQL's processes (parsing, indexes, WAL, replay on the standby).
// Run: node dist/bench/server-pg-intake.js [hosts=1000] [--standby]
import { randomBytes } from 'node:crypto';
import { DEFAULT_SERVER } from '../src/config/defaults.js';
import { PgStore } from '../src/server/pg-store.js';
import type { DayBatch } from '../src/server/sightings-batch.js';
import type { HostRow } from '../src/server/store.js';
import { startPgCluster, startStandby, pgMissingReason, type PgCluster } from '../test/support/postgres.js';
import { shaOf } from './fleet-sim.js';
import { cpuOfUid, postgresUid } from './server-pg.js';

const DAY_MS = 86_400_000;

/** A host's uploads: 3 requests of 10 days, ~333 sightings a day, 9 % one-off tail combos (as bench/fleet-sim.ts). */
function uploadsOf(org: number, host: number, endDay: number): DayBatch[][] {
  const popular = Array.from({ length: 400 }, (_, i) => shaOf(`popular-${i}`));
  const mine = popular.filter((_, i) => (i * 7919 + host * 31 + org) % 3 === 0);
  for (let i = 0; i < 30; i++) mine.push(shaOf(`org-${org}-bin-${i}`));
  const out: DayBatch[][] = [];
  for (let r = 0; r < 3; r++) {
    const days: DayBatch[] = [];
    for (let d = 0; d < 10; d++) {
      const day = endDay - 29 + r * 10 + d;
      const processes = mine.slice(0, 40);
      const combos: DayBatch['combos'] = [];
      for (let k = 0; k < 266; k++) {
        const sha = mine[(k * 13 + d) % mine.length] as string;
        combos.push({ sha256: sha, rootDomain: `w${(k * 101 + day) % 20_000}.com`, port: 443 });
      }
      for (let k = 0; k < 27; k++)
        combos.push({ sha256: randomBytes(32).toString('hex'), rootDomain: `tail${randomBytes(3).readUIntBE(0, 3)}.org`, port: 1024 + k });
      days.push({ dayMs: day * DAY_MS, processes, combos });
    }
    out.push(days);
  }
  return out;
}

async function main(): Promise<void> {
  const missing = pgMissingReason();
  if (missing !== null) throw new Error(missing);
  const hosts = Number(process.argv[2] ?? 1000);
  const withStandby = process.argv.includes('--standby');
  const settings = {
    shared_buffers: "'4GB'",
    max_wal_size: "'16GB'",
    checkpoint_timeout: "'15min'",
    wal_compression: 'lz4',
  };
  const primary = await startPgCluster({ durable: true, settings });
  let standby: PgCluster | null = null;
  try {
    const url = await primary.createDatabase('rarecon');
    if (withStandby) standby = await startStandby(primary, { durable: true, settings });
    const store = await PgStore.open({ ...DEFAULT_SERVER.postgres, url, poolSize: 16 }, () => {}, { acceptDaysBack: 40 }, Date.now());
    const endDay = Math.floor(Date.now() / DAY_MS);
    const token = (await store.createEnrolToken('org-0', 1_000_000, Date.now())).token;
    const work: Array<{ host: HostRow; days: DayBatch[] }> = [];
    let sightings = 0;
    for (let h = 0; h < hosts; h++) {
      const e = await store.enrol({ token, hostId: `h${h}`, hostName: null, proof: null }, { lifetimeMs: 0, graceMs: 0 }, Date.now());
      if (!e.ok) throw new Error(e.error);
      for (const days of uploadsOf(Math.floor(h / 10), h, endDay)) {
        work.push({ host: e.host, days });
        for (const d of days) sightings += d.processes.length + d.combos.length;
      }
    }
    const uid = postgresUid();
    const pgBefore = cpuOfUid(uid);
    const meBefore = process.cpuUsage();
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < work.length) {
          const w = work[next++] as { host: HostRow; days: DayBatch[] };
          await store.storeSightings(w.host, w.days, Date.now());
        }
      }),
    );
    const s = (performance.now() - t0) / 1000;
    const me = process.cpuUsage(meBefore);
    const pgCpu = cpuOfUid(uid) - pgBefore;
    process.stdout.write(
      `${sightings.toLocaleString('en-US')} sightings in ${work.length} uploads stored in ${s.toFixed(1)} s: ${Math.round(sightings / s).toLocaleString('en-US')} sightings/s` +
        `${withStandby ? ' (with a standby)' : ''}; CPU: this node ${((me.user + me.system) / 1e6).toFixed(1)} s, PostgreSQL ${pgCpu.toFixed(1)} s\n`,
    );
    await store.close();
  } finally {
    await standby?.stop();
    await primary.stop();
  }
}

void main();
