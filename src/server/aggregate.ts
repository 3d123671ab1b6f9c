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

export function aggregate(opts: AggregateOptions): AggregateResult {
  const started = performance.now();
  const key = signingKeyFromPem(opts.signingKeyPem);
  const endDay = Math.floor(opts.nowMs / DAY_MS) + 1;
  const startDay = endDay - opts.windowDays;

  const intake = new Database(opts.intakePath, { readonly: true, fileMustExist: true });
  intake.pragma('busy_timeout = 10000');
  const pub = openPublishDb(opts.publishPath, false);
  try {
    // Dictionaries: id -> text, read once.
    const shaHex: string[] = [];
    for (const [id, sha] of intake.prepare('SELECT id, sha FROM sha').raw().iterate() as Iterable<[number, Buffer]>) shaHex[id] = sha.toString('hex');
    const roots: string[] = [];
    for (const [id, name] of intake.prepare('SELECT id, name FROM root').raw().iterate() as Iterable<[number, string]>) roots[id] = name;
    const orgNames = new Map<number, string>();
    for (const [id, name] of intake.prepare('SELECT id, name FROM org').raw().iterate() as Iterable<[number, string]>) orgNames.set(id, name);

    const builder = new BaselineBuilder({
      unit: opts.unit,
      windowDays: opts.windowDays,
      thresholds: opts.thresholds,
      policy: opts.policy,
      omitSingleObserverCombos: opts.omitSingleObserverCombos,
    });
    const combos = new ComboTable();
    let comboStamp: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
    const procStamp = new Int32Array(shaHex.length + 1);
    const shaInWindow = new Uint8Array(shaHex.length + 1);
    const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };

    const order = opts.unit === 'org' ? 'host.org_id, host_day.host, host_day.day' : 'host_day.host, host_day.day';
    const rows = intake
      .prepare(
        `SELECT host.org_id, host.host_id, host_day.host, host_day.day, host_day.processes, host_day.combos
         FROM host_day JOIN host ON host.id = host_day.host
         WHERE host_day.day >= ? AND host_day.day < ? AND host.revoked_ms IS NULL ORDER BY ${order}`,
      )
      .raw();
    let observerKey = '';
    let stamp = 0;
    let hostDays = 0;
    let read = 0;
    let fed = 0;
    for (const [orgId, hostId, hostRef, day, procBlob, comboBlob] of rows.iterate(startDay, endDay) as Iterable<[number, string, number, number, Buffer, Buffer]>) {
      const org = orgNames.get(orgId) ?? String(orgId);
      const key2 = opts.unit === 'org' ? `o${orgId}` : `h${hostRef}`;
      if (key2 !== observerKey) {
        observerKey = key2;
        stamp++;
        s.observer = observerId(opts.unit, org, hostId, day * DAY_MS);
      }
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
        if (cid >= comboStamp.length) comboStamp = grow(comboStamp, cid + 1);
        if (comboStamp[cid] === stamp) continue;
        comboStamp[cid] = stamp;
        shaInWindow[shaId] = 1;
        s.sha256 = shaHex[shaId] as string;
        s.rootDomain = roots[rootId] as string;
        s.port = port;
        builder.add(s);
        fed++;
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

    // Counts as the signed file holds them: the publication must agree with the snapshot.
    const opened = openBaseline(file, { cacheSizeKiB: 64 * 1024, lookupCacheEntries: 1024 });
    if (!opened.ok) return { ok: false, error: `the new baseline does not open: ${opened.error}` };
    const reader = opened.baseline;
    const comboCount = combos.count;
    const comboObservers = new Int32Array(comboCount);
    const procObservers = new Int32Array(shaHex.length + 1);
    reader.beginBatch();
    try {
      for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) procObservers[id] = reader.process(shaHex[id] as string) ?? 0;
      for (let c = 0; c < comboCount; c++) {
        comboObservers[c] = reader.combo(shaHex[combos.sha[c] as number] as string, roots[combos.root[c] as number] as string, combos.port[c] as number);
      }
    } finally {
      reader.endBatch();
      reader.close();
    }
    const lookedUpAt = performance.now();

    const { sha256, bytes } = fileSha256(file);
    const meta = written.meta;
    const { line } = signHeader(
      { kind: 'snapshot', meta, fromVersion: null, prefixes: null, bucketHexChars: opts.bucketHexChars, contentSha256: sha256, contentBytes: bytes },
      key,
    );

    const shaIdOf = new Map<string, number>();
    for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) shaIdOf.set(shaHex[id] as string, id);
    const rootIdOf = new Map<string, number>();
    for (let id = 0; id < roots.length; id++) if (roots[id] !== undefined) rootIdOf.set(roots[id] as string, id);

    let changedProcesses = 0;
    let changedCombos = 0;
    pub.transaction(() => {
      // Rows published before and absent now become removals (0 observers).
      const goneProcs: Buffer[] = [];
      for (const [sha] of pub.prepare('SELECT sha FROM pub_process WHERE observers > 0').raw().iterate() as Iterable<[Buffer]>) {
        const id = shaIdOf.get(sha.toString('hex'));
        if (id === undefined || (procObservers[id] as number) === 0) goneProcs.push(sha);
      }
      const goneCombos: Array<[Buffer, string, number]> = [];
      const known = combos.count;
      for (const [sha, root, port] of pub.prepare('SELECT sha, root, port FROM pub_combo WHERE observers > 0').raw().iterate() as Iterable<[Buffer, string, number]>) {
        const sid = shaIdOf.get(sha.toString('hex'));
        const rid = rootIdOf.get(root);
        let present = false;
        if (sid !== undefined && rid !== undefined) {
          const cid = combos.intern(sid, rid, port);
          present = cid < known && (comboObservers[cid] as number) > 0;
        }
        if (!present) goneCombos.push([sha, root, port]);
      }
      const upProc = pub.prepare(
        `INSERT INTO pub_process (sha, observers, changed) VALUES (?, ?, ?)
         ON CONFLICT (sha) DO UPDATE SET observers = excluded.observers, changed = excluded.changed WHERE observers != excluded.observers`,
      );
      for (let id = 0; id < shaInWindow.length; id++) {
        const n = procObservers[id] as number;
        if (n > 0) changedProcesses += upProc.run(Buffer.from(shaHex[id] as string, 'hex'), n, version).changes;
      }
      const upCombo = pub.prepare(
        `INSERT INTO pub_combo (sha, root, port, observers, changed) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (sha, root, port) DO UPDATE SET observers = excluded.observers, changed = excluded.changed WHERE observers != excluded.observers`,
      );
      const shaBuf = new Map<number, Buffer>();
      for (let c = 0; c < known; c++) {
        const n = comboObservers[c] as number;
        if (n <= 0) continue;
        const sid = combos.sha[c] as number;
        let b = shaBuf.get(sid);
        if (b === undefined) {
          b = Buffer.from(shaHex[sid] as string, 'hex');
          shaBuf.set(sid, b);
        }
        changedCombos += upCombo.run(b, roots[combos.root[c] as number] as string, combos.port[c] as number, n, version).changes;
      }
      const rmProc = pub.prepare('UPDATE pub_process SET observers = 0, changed = ? WHERE sha = ?');
      for (const sha of goneProcs) changedProcesses += rmProc.run(version, sha).changes;
      const rmCombo = pub.prepare('UPDATE pub_combo SET observers = 0, changed = ? WHERE sha = ? AND root = ? AND port = ?');
      for (const [sha, root, port] of goneCombos) changedCombos += rmCombo.run(version, sha, root, port).changes;

      pub
        .prepare(
          `INSERT INTO version (version, meta, published_ms, snapshot_file, snapshot_sha256, snapshot_bytes, snapshot_envelope, changed_processes, changed_combos)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(version, JSON.stringify(meta), opts.nowMs, file, sha256, bytes, line.toString('utf8'), changedProcesses, changedCombos);
      // Removals older than the delta history are no longer needed by anyone allowed a delta.
      const horizon =
        (pub.prepare('SELECT version FROM version ORDER BY version DESC LIMIT 1 OFFSET ?').pluck().get(opts.deltaHistoryVersions - 1) as number | undefined) ??
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
    const keep = new Set((pub.prepare('SELECT snapshot_file FROM version ORDER BY version DESC LIMIT ?').pluck().all(opts.keepSnapshots) as string[]).map((f) => f));
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
      },
    };
  } catch (e) {
    return { ok: false, error: `aggregation failed: ${(e as Error).message}` };
  } finally {
    if (intake.open) intake.close();
    pub.close();
  }
}
