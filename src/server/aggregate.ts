// One aggregation: the sightings of the training window, through the shared
// BaselineBuilder, into a signed baseline file and the publication tables.
// Synchronous from start to end (SQLite and the builder are), so the server runs
// it in a worker thread (aggregate-worker.ts) and its HTTP loop stays free.
//
// Each observer's host-days are read together, and a combo or process the
// observer already reported is not fed again: the builder counts distinct
// observers, so repeats add nothing but time. The first day an observer saw a
// thing is the one fed, which keeps the window's first day and every
// observer's first day exact.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BaselineBuilder, observerId } from '../baseline/builder.js';
import { ComboTable } from '../baseline/combo-table.js';
import { cellBitsFor, rootHash } from '../baseline/bucket-keys.js';
import { openBaseline } from '../baseline/store.js';
import { signHeader, signingKeyFromPem } from '../baseline/signature.js';
import { DAY_MS, type BaselineMeta, type RootDomainPolicy, type Sighting, type TierThresholds } from '../model/baseline.js';
import { openPublishDb } from './publication.js';

export interface AggregateOptions {
  intakePath: string;
  publishPath: string;
  /** Folder of the published baseline files. */
  baselinesDir: string;
  unit: 'org' | 'host';
  windowDays: number;
  thresholds: TierThresholds;
  policy: RootDomainPolicy;
  omitSingleObserverCombos: boolean;
  bucketHexChars: number;
  heavyProcessCombos: number;
  combosPerCell: number;
  deltaHistoryVersions: number;
  keepSnapshots: number;
  nowMs: number;
  /** PKCS#8 PEM of the Ed25519 signing key. */
  signingKeyPem: string;
}

export interface AggregateFigures {
  hostDays: number;
  /** Sightings stored for the window, and those fed to the builder after per-observer dedup. */
  sightingsRead: number;
  sightingsFed: number;
  readAndFeedMs: number;
  writeMs: number;
  lookupMs: number;
  publishMs: number;
  totalMs: number;
  changedProcesses: number;
  changedCombos: number;
  snapshotBytes: number;
  /** Sampled counts that differed from the file (then every count was read back from it); 0 expected. */
  countMismatches: number;
}

export type AggregateResult = { ok: true; version: number; meta: BaselineMeta; figures: AggregateFigures } | { ok: false; error: string };

function int32View(b: Buffer): Int32Array {
  // SQLite blobs come back at any offset; copy when not 4-byte aligned.
  if (b.byteOffset % 4 === 0) return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Int32Array(copy.buffer);
}

function grow(a: Int32Array, min: number): Int32Array<ArrayBuffer> {
  let n = a.length;
  while (n < min) n *= 2;
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

function fileSha256(path: string): { sha256: string; bytes: number } {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(1024 * 1024);
  let total = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      total += n;
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: h.digest('hex'), bytes: total };
}

/** Rows published before and absent now: they become removals (0 observers). */
function findRemoved(
  pub: Database.Database,
  shaInWindow: Uint8Array,
  shaHex: string[],
  roots: string[],
  combos: ComboTable,
  known: number,
  procObservers: Int32Array,
  comboObservers: Int32Array,
  goneProcs: Buffer[],
  goneCombos: Array<[Buffer, string, number]>,
): void {
  const shaIdOf = new Map<string, number>();
  for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) shaIdOf.set(shaHex[id] as string, id);
  const rootIdOf = new Map<string, number>();
  for (let id = 0; id < roots.length; id++) if (roots[id] !== undefined) rootIdOf.set(roots[id] as string, id);
  for (const [sha] of pub.prepare('SELECT sha FROM pub_process WHERE observers > 0').raw().iterate() as Iterable<[Buffer]>) {
    const id = shaIdOf.get(sha.toString('hex'));
    if (id === undefined || (procObservers[id] as number) === 0) goneProcs.push(sha);
  }
  for (const [sha, root, port] of pub.prepare('SELECT sha, root, port FROM pub_combo WHERE observers > 0').raw().iterate() as Iterable<
    [Buffer, string, number]
  >) {
    const sid = shaIdOf.get(sha.toString('hex'));
    const rid = rootIdOf.get(root);
    let present = false;
    if (sid !== undefined && rid !== undefined) {
      // intern() of an absent combo adds it past `known`, which reads as absent.
      const cid = combos.intern(sid, rid, port);
      present = cid < known && (comboObservers[cid] as number) > 0;
    }
    if (!present) goneCombos.push([sha, root, port]);
  }
}

export function aggregate(opts: AggregateOptions): AggregateResult {
  const started = performance.now();
  const key = signingKeyFromPem(opts.signingKeyPem);
  const endDay = Math.floor(opts.nowMs / DAY_MS) + 1;
  const startDay = endDay - opts.windowDays;

  const intake = new Database(opts.intakePath, { readonly: true, fileMustExist: true });
  intake.pragma('busy_timeout = 10000');
  const pub = openPublishDb(opts.publishPath, false);
  pub.pragma('cache_size = -262144');
  try {
    // Dictionaries: id -> text, read once.
    const shaHex: string[] = [];
    for (const [id, sha] of intake.prepare('SELECT id, sha FROM sha').raw().iterate() as Iterable<[number, Buffer]>)
      shaHex[id] = sha.toString('hex');
    const roots: string[] = [];
    for (const [id, name] of intake.prepare('SELECT id, name FROM root').raw().iterate() as Iterable<[number, string]>) roots[id] = name;
    const orgNames = new Map<number, string>();
    for (const [id, name] of intake.prepare('SELECT id, name FROM org').raw().iterate() as Iterable<[number, string]>)
      orgNames.set(id, name);

    const builder = new BaselineBuilder({
      unit: opts.unit,
      windowDays: opts.windowDays,
      thresholds: opts.thresholds,
      policy: opts.policy,
      omitSingleObserverCombos: opts.omitSingleObserverCombos,
    });
    const combos = new ComboTable();
    let comboStamp: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
    // Distinct observers counted on the way, checked against the written file below.
    let comboSeen: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
    const procSeen = new Int32Array(shaHex.length + 1);
    const procStamp = new Int32Array(shaHex.length + 1);
    const shaInWindow = new Uint8Array(shaHex.length + 1);
    const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };

    // Host by host (grouped by org for the org unit), each host's days by primary key: no sort of blobs.
    const hosts = intake
      .prepare(`SELECT id, org_id, host_id FROM host WHERE revoked_ms IS NULL ORDER BY ${opts.unit === 'org' ? 'org_id, id' : 'id'}`)
      .raw()
      .all() as Array<[number, number, string]>;
    const daysOf = intake.prepare('SELECT day, processes, combos FROM host_day WHERE host = ? AND day >= ? AND day < ?').raw();
    let observerKey = -1;
    let stamp = 0;
    let hostDays = 0;
    let read = 0;
    let fed = 0;
    for (const [hostRef, orgId, hostId] of hosts) {
      const key2 = opts.unit === 'org' ? orgId : hostRef;
      if (key2 !== observerKey) {
        observerKey = key2;
        stamp++;
        s.observer = observerId(opts.unit, orgNames.get(orgId) ?? String(orgId), hostId, 0);
      }
      for (const [day, procBlob, comboBlob] of daysOf.iterate(hostRef, startDay, endDay) as Iterable<[number, Buffer, Buffer]>) {
        hostDays++;
        s.dayMs = day * DAY_MS;
        const procs = int32View(procBlob);
        read += procs.length;
        s.rootDomain = null;
        s.port = null;
        for (let i = 0; i < procs.length; i++) {
          const id = procs[i] as number;
          if (procStamp[id] === stamp) continue;
          procStamp[id] = stamp;
          procSeen[id] = (procSeen[id] as number) + 1;
          shaInWindow[id] = 1;
          s.sha256 = shaHex[id] as string;
          builder.add(s);
          fed++;
        }
        const triples = int32View(comboBlob);
        read += triples.length / 3;
        for (let i = 0; i < triples.length; i += 3) {
          const shaId = triples[i] as number;
          const rootId = triples[i + 1] as number;
          const port = triples[i + 2] as number;
          const cid = combos.intern(shaId, rootId, port);
          if (cid >= comboStamp.length) {
            comboStamp = grow(comboStamp, cid + 1);
            comboSeen = grow(comboSeen, cid + 1);
          }
          if (comboStamp[cid] === stamp) continue;
          comboStamp[cid] = stamp;
          comboSeen[cid] = (comboSeen[cid] as number) + 1;
          // The builder counts a combo's sha256 as run by that observer too.
          if (procStamp[shaId] !== stamp) {
            procStamp[shaId] = stamp;
            procSeen[shaId] = (procSeen[shaId] as number) + 1;
          }
          shaInWindow[shaId] = 1;
          s.sha256 = shaHex[shaId] as string;
          s.rootDomain = roots[rootId] as string;
          s.port = port;
          builder.add(s);
          fed++;
        }
      }
    }
    intake.close();
    const fedAt = performance.now();

    const prev = pub.prepare('SELECT max(version) FROM version').pluck().get() as number | null;
    const version = Math.max((prev ?? 0) + 1, opts.nowMs);
    const file = join(opts.baselinesDir, `baseline-${version}.db`);
    const written = builder.write(file, { version, builtAtMs: opts.nowMs, windowEndMs: endDay * DAY_MS });
    if (!written.ok) return { ok: false, error: `the builder could not write ${file}: ${written.error}` };
    const writtenAt = performance.now();

    // The publication must agree with the signed snapshot. The counts made on the
    // way are checked against the file on an even sample; any difference and
    // every count is read back from the file instead.
    const opened = openBaseline(file, { cacheSizeKiB: 64 * 1024, lookupCacheEntries: 1024 });
    if (!opened.ok) return { ok: false, error: `the new baseline does not open: ${opened.error}` };
    const reader = opened.baseline;
    const comboCount = combos.count;
    const omitSingles = written.meta.omitsSingleObserverCombos;
    const comboObservers = new Int32Array(comboCount);
    const procObservers = new Int32Array(shaHex.length + 1);
    for (let c = 0; c < comboCount; c++) {
      const n = comboSeen[c] as number;
      comboObservers[c] = omitSingles && n === 1 ? 0 : n;
    }
    for (let id = 0; id < shaInWindow.length; id++) procObservers[id] = procSeen[id] as number;
    const comboOf = (c: number): number =>
      reader.combo(shaHex[combos.sha[c] as number] as string, roots[combos.root[c] as number] as string, combos.port[c] as number);
    let mismatches = 0;
    reader.beginBatch();
    try {
      const sample = 20_000;
      for (let c = 0; c < comboCount; c += Math.max(1, Math.floor(comboCount / sample))) if (comboOf(c) !== comboObservers[c]) mismatches++;
      const shaStep = Math.max(1, Math.floor(shaInWindow.length / sample));
      for (let id = 0; id < shaInWindow.length; id += shaStep) {
        if (shaInWindow[id] === 1 && (reader.process(shaHex[id] as string) ?? 0) !== procObservers[id]) mismatches++;
      }
      if (mismatches > 0) {
        for (let id = 0; id < shaInWindow.length; id++)
          if (shaInWindow[id] === 1) procObservers[id] = reader.process(shaHex[id] as string) ?? 0;
        for (let c = 0; c < comboCount; c++) comboObservers[c] = comboOf(c);
      }
    } finally {
      reader.endBatch();
      reader.close();
    }
    const lookedUpAt = performance.now();

    const { sha256, bytes } = fileSha256(file);
    const meta = written.meta;
    const { line } = signHeader(
      {
        kind: 'snapshot',
        meta,
        fromVersion: null,
        prefixes: null,
        bucketHexChars: opts.bucketHexChars,
        contentSha256: sha256,
        contentBytes: bytes,
      },
      key,
    );

    let changedProcesses = 0;
    let changedCombos = 0;
    pub.transaction(() => {
      // Rows published before and absent now become removals (0 observers).
      const goneProcs: Buffer[] = [];
      const goneCombos: Array<[Buffer, string, number]> = [];
      const known = combos.count;
      if (prev !== null) findRemoved(pub, shaInWindow, shaHex, roots, combos, known, procObservers, comboObservers, goneProcs, goneCombos);
      // Rows in primary-key order (sha bytes, root hash, root, port): B-tree appends instead of random inserts.
      const shaOrder: number[] = [];
      for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) shaOrder.push(id);
      shaOrder.sort((a, b) => ((shaHex[a] as string) < (shaHex[b] as string) ? -1 : 1));
      const rank = new Int32Array(shaInWindow.length).fill(-1);
      shaOrder.forEach((id, r) => (rank[id] = r));
      // Combos grouped by sha rank (counting sort), each group by root hash, root, port.
      const groupStart = new Int32Array(shaOrder.length + 1);
      for (let c = 0; c < known; c++) {
        if ((comboObservers[c] as number) <= 0) continue;
        const g = (rank[combos.sha[c] as number] as number) + 1;
        groupStart[g] = (groupStart[g] as number) + 1;
      }
      for (let r = 0; r < shaOrder.length; r++) groupStart[r + 1] = (groupStart[r + 1] as number) + (groupStart[r] as number);
      const ordered = new Int32Array(groupStart[shaOrder.length] as number);
      const fill = groupStart.slice(0, shaOrder.length);
      for (let c = 0; c < known; c++) {
        if ((comboObservers[c] as number) <= 0) continue;
        const r = rank[combos.sha[c] as number] as number;
        ordered[fill[r] as number] = c;
        fill[r] = (fill[r] as number) + 1;
      }
      const rootRh = new Map<number, number>();
      const rhOf = (rootId: number): number => {
        let h = rootRh.get(rootId);
        if (h === undefined) {
          h = rootHash(roots[rootId] as string);
          rootRh.set(rootId, h);
        }
        return h;
      };
      const byKey = (a: number, b: number): number => {
        const ha = rhOf(combos.root[a] as number);
        const hb = rhOf(combos.root[b] as number);
        if (ha !== hb) return ha - hb;
        const ra = roots[combos.root[a] as number] as string;
        const rb = roots[combos.root[b] as number] as string;
        return ra < rb ? -1 : ra > rb ? 1 : (combos.port[a] as number) - (combos.port[b] as number);
      };
      for (let r = 0; r < shaOrder.length; r++) {
        const from = groupStart[r] as number;
        const to = groupStart[r + 1] as number;
        if (to - from > 1) ordered.subarray(from, to).sort(byKey);
      }

      // Heavy processes ship their combos in cells; when a process's cells change size, all its combos go out again.
      const oldBits = new Map<string, number>();
      for (const [sha, bits] of pub.prepare('SELECT sha, bits FROM pub_process WHERE bits > 0').raw().iterate() as Iterable<
        [Buffer, number]
      >) {
        oldBits.set(sha.toString('hex'), bits);
      }
      const upProc = pub.prepare(
        `INSERT INTO pub_process (sha, observers, changed, bits) VALUES (?, ?, ?, ?)
         ON CONFLICT (sha) DO UPDATE SET observers = excluded.observers, changed = excluded.changed, bits = excluded.bits
         WHERE observers != excluded.observers OR bits != excluded.bits`,
      );
      const shaBuf: Buffer[] = [];
      const resized: Buffer[] = [];
      for (let r = 0; r < shaOrder.length; r++) {
        const id = shaOrder[r] as number;
        const hex = shaHex[id] as string;
        const b = Buffer.from(hex, 'hex');
        shaBuf[id] = b;
        const bits = cellBitsFor((groupStart[r + 1] as number) - (groupStart[r] as number), opts.heavyProcessCombos, opts.combosPerCell);
        if (bits !== (oldBits.get(hex) ?? 0)) resized.push(b);
        oldBits.delete(hex);
        const n = procObservers[id] as number;
        if (n > 0) changedProcesses += upProc.run(b, n, version, bits).changes;
      }
      for (const hex of oldBits.keys()) resized.push(Buffer.from(hex, 'hex'));
      const upCombo = pub.prepare(
        `INSERT INTO pub_combo (sha, rh, root, port, observers, changed) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (sha, rh, root, port) DO UPDATE SET observers = excluded.observers, changed = excluded.changed WHERE observers != excluded.observers`,
      );
      for (let i = 0; i < ordered.length; i++) {
        const c = ordered[i] as number;
        changedCombos += upCombo.run(
          shaBuf[combos.sha[c] as number] as Buffer,
          rhOf(combos.root[c] as number),
          roots[combos.root[c] as number] as string,
          combos.port[c] as number,
          comboObservers[c] as number,
          version,
        ).changes;
      }
      const rmProc = pub.prepare('UPDATE pub_process SET observers = 0, changed = ? WHERE sha = ?');
      for (const sha of goneProcs) changedProcesses += rmProc.run(version, sha).changes;
      const rmCombo = pub.prepare('UPDATE pub_combo SET observers = 0, changed = ? WHERE sha = ? AND rh = ? AND root = ? AND port = ?');
      for (const [sha, root, port] of goneCombos) changedCombos += rmCombo.run(version, sha, rootHash(root), root, port).changes;
      const resend = pub.prepare('UPDATE pub_combo SET changed = ? WHERE sha = ? AND changed < ?');
      for (const sha of resized) changedCombos += resend.run(version, sha, version).changes;

      pub
        .prepare(
          `INSERT INTO version (version, meta, published_ms, snapshot_file, snapshot_sha256, snapshot_bytes, snapshot_envelope, changed_processes, changed_combos)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(version, JSON.stringify(meta), opts.nowMs, file, sha256, bytes, line.toString('utf8'), changedProcesses, changedCombos);
      // Removals older than the delta history are no longer needed by anyone allowed a delta.
      const horizon =
        (pub
          .prepare('SELECT version FROM version ORDER BY version DESC LIMIT 1 OFFSET ?')
          .pluck()
          .get(opts.deltaHistoryVersions - 1) as number | undefined) ??
        (pub.prepare('SELECT min(version) FROM version').pluck().get() as number);
      pub.prepare('DELETE FROM pub_process WHERE observers = 0 AND changed <= ?').run(horizon);
      pub.prepare('DELETE FROM pub_combo WHERE observers = 0 AND changed <= ?').run(horizon);
      pub.prepare("INSERT OR REPLACE INTO kv (key, value) VALUES ('deltaHorizon', ?)").run(String(horizon));
    })();
    const publishedAt = performance.now();
    try {
      pub.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a reader holds an old snapshot: the next checkpoint will do
    }

    // Old snapshot files beyond what is kept.
    const keep = new Set(
      (pub.prepare('SELECT snapshot_file FROM version ORDER BY version DESC LIMIT ?').pluck().all(opts.keepSnapshots) as string[]).map(
        (f) => f,
      ),
    );
    for (const name of readdirSync(opts.baselinesDir)) {
      const full = join(opts.baselinesDir, name);
      if (/^baseline-\d+\.db$/.test(name) && !keep.has(full)) rmSync(full, { force: true });
    }

    return {
      ok: true,
      version,
      meta,
      figures: {
        hostDays,
        sightingsRead: read,
        sightingsFed: fed,
        readAndFeedMs: Math.round(fedAt - started),
        writeMs: Math.round(writtenAt - fedAt),
        lookupMs: Math.round(lookedUpAt - writtenAt),
        publishMs: Math.round(publishedAt - lookedUpAt),
        totalMs: Math.round(performance.now() - started),
        changedProcesses,
        changedCombos,
        snapshotBytes: bytes,
        countMismatches: mismatches,
      },
    };
  } catch (e) {
    return { ok: false, error: `aggregation failed: ${(e as Error).message}` };
  } finally {
    if (intake.open) intake.close();
    pub.close();
  }
}
