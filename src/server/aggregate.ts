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
//
// aggregate() runs four steps: load (the window's host-days from server.db),
// count (distinct observers per process and combo, feeding the builder), build
// (the baseline file, the counts checked against it, the rows in key order) and
// publish (the changed rows, the version and its snapshot, the delta horizon).
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BaselineBuilder } from '../baseline/builder.js';
import { observerId } from '../model/observer.js';
import { ComboTable } from '../baseline/combo-table.js';
import { cellBitsFor, rootHash } from '../baseline/bucket-keys.js';
import { openBaseline } from '../baseline/store.js';
import { signHeader, signingKeyFromPem, type SigningKey } from '../baseline/signature.js';
import { DAY_MS, type BaselineMeta, type RootDomainPolicy, type Sighting, type TierThresholds } from '../model/baseline.js';
import { openPublishDb } from './publication.js';
import { countsAsObserver } from './security-rules.js';

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
  /** With unit host: a host counts from its Nth distinct day of uploads (security-rules.ts). */
  hostMinUploadDays: number;
  /** When the schedule promises the next baseline, stamped into the meta; null = no promise. */
  nextBuildByMs: number | null;
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

export type AggregateResult =
  | { ok: true; version: number; meta: BaselineMeta; figures: AggregateFigures }
  /** skipped: another node of a shared store built (or is building) this one; nothing is wrong. */
  | { ok: false; error: string; skipped?: true };

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

/** The host-days of the window as stored: the dictionaries' ids, not their text. */
interface Loaded {
  /** The epoch day after the window's last. */
  endDay: number;
  /** sha id -> sha256 hex and root id -> root domain (sparse: ids of server.db's dictionaries). */
  shaHex: string[];
  roots: string[];
  /** Read while iterated, each observer's host-days together. */
  hostDays: Iterable<HostDay>;
}

interface HostDay {
  /** The same for every host-day of one observer (org id or host ref). */
  observerKey: number;
  observer: string;
  day: number;
  /** sha ids run that day. */
  processes: Int32Array;
  /** (sha id, root id, port) triples. */
  combos: Int32Array;
}

/** Distinct observers counted on the way in, and the builder fed with each observer's first sighting of a thing. */
interface Counted {
  builder: BaselineBuilder;
  /** Interned (sha id, root id, port); combo ids index comboSeen. */
  combos: ComboTable;
  comboSeen: Int32Array;
  /** By sha id. */
  procSeen: Int32Array;
  /** 1 for each sha id seen in the window. */
  shaInWindow: Uint8Array;
  hostDays: number;
  read: number;
  fed: number;
}

/** The rows to publish in primary-key order (sha bytes, root hash, root, port): B-tree appends instead of random inserts. */
interface RowOrder {
  /** sha ids of the window, by sha256. */
  shaOrder: number[];
  /** The combos of shaOrder[r] are ordered[groupStart[r]] up to ordered[groupStart[r + 1]]. */
  groupStart: Int32Array;
  /** Combo ids with observers. */
  ordered: Int32Array;
  /** Root hash by root id, each computed once. */
  rhOf: (rootId: number) => number;
}

interface Built {
  ok: true;
  /** The latest published version before this one; null on the first build. */
  prev: number | null;
  version: number;
  file: string;
  meta: BaselineMeta;
  /** Observers as the file has them, by sha id and combo id; 0 is not published. */
  procObservers: Int32Array;
  comboObservers: Int32Array;
  mismatches: number;
  rows: RowOrder;
  snapshot: { sha256: string; bytes: number; envelope: string };
  writtenAt: number;
  lookedUpAt: number;
}

interface Published {
  changedProcesses: number;
  changedCombos: number;
  publishedAt: number;
}

export function aggregate(opts: AggregateOptions): AggregateResult {
  const started = performance.now();
  const key = signingKeyFromPem(opts.signingKeyPem);
  // Read-only: the HTTP side owns server.db and its schema (openSqlite would open it for writing).
  const intake = new Database(opts.intakePath, { readonly: true, fileMustExist: true });
  intake.pragma('busy_timeout = 10000');
  const pub = openPublishDb(opts.publishPath, { queryOnly: false, cacheSizeKiB: 256 * 1024 });
  try {
    const loaded = load(intake, opts);
    const counted = count(loaded, opts);
    intake.close();
    const fedAt = performance.now();
    const built = build(pub, opts, key, loaded, counted);
    if (!built.ok) return built;
    const published = publish(pub, opts, loaded, counted, built);
    return {
      ok: true,
      version: built.version,
      meta: built.meta,
      figures: {
        hostDays: counted.hostDays,
        sightingsRead: counted.read,
        sightingsFed: counted.fed,
        readAndFeedMs: Math.round(fedAt - started),
        writeMs: Math.round(built.writtenAt - fedAt),
        lookupMs: Math.round(built.lookedUpAt - built.writtenAt),
        publishMs: Math.round(published.publishedAt - built.lookedUpAt),
        totalMs: Math.round(performance.now() - started),
        changedProcesses: published.changedProcesses,
        changedCombos: published.changedCombos,
        snapshotBytes: built.snapshot.bytes,
        countMismatches: built.mismatches,
      },
    };
  } catch (e) {
    return { ok: false, error: `aggregation failed: ${(e as Error).message}` };
  } finally {
    if (intake.open) intake.close();
    pub.close();
  }
}

// ---------------------------------------------------------------------------
// 1. load: the dictionaries, then the window's host-days as they are iterated

function load(intake: Database.Database, opts: AggregateOptions): Loaded {
  const endDay = Math.floor(opts.nowMs / DAY_MS) + 1;
  const startDay = endDay - opts.windowDays;
  // Dictionaries: id -> text, read once.
  const shaHex: string[] = [];
  for (const [id, sha] of intake.prepare('SELECT id, sha FROM sha').raw().iterate() as Iterable<[number, Buffer]>)
    shaHex[id] = sha.toString('hex');
  const roots: string[] = [];
  for (const [id, name] of intake.prepare('SELECT id, name FROM root').raw().iterate() as Iterable<[number, string]>) roots[id] = name;
  const orgNames = new Map<number, string>();
  for (const [id, name] of intake.prepare('SELECT id, name FROM org').raw().iterate() as Iterable<[number, string]>) orgNames.set(id, name);
  // Host by host (grouped by org for the org unit), each host's days by primary key: no sort of blobs.
  const hosts = (
    intake
      .prepare(
        `SELECT id, org_id, host_id, upload_days FROM host WHERE revoked_ms IS NULL ORDER BY ${opts.unit === 'org' ? 'org_id, id' : 'id'}`,
      )
      .raw()
      .all() as Array<[number, number, string, number]>
  ).filter(([, , , uploadDays]) => countsAsObserver(opts.unit, uploadDays, opts.hostMinUploadDays));
  const daysOf = intake.prepare('SELECT day, processes, combos FROM host_day WHERE host = ? AND day >= ? AND day < ?').raw();
  function* hostDays(): Generator<HostDay> {
    let observerKey = -1;
    let observer = '';
    for (const [hostRef, orgId, hostId] of hosts) {
      const k = opts.unit === 'org' ? orgId : hostRef;
      if (k !== observerKey) {
        observerKey = k;
        observer = observerId(opts.unit, orgNames.get(orgId) ?? String(orgId), hostId, 0);
      }
      for (const [day, procBlob, comboBlob] of daysOf.iterate(hostRef, startDay, endDay) as Iterable<[number, Buffer, Buffer]>)
        yield { observerKey, observer, day, processes: int32View(procBlob), combos: int32View(comboBlob) };
    }
  }
  return { endDay, shaHex, roots, hostDays: hostDays() };
}

// ---------------------------------------------------------------------------
// 2. count: distinct observers per process and per combo, feeding the builder

function count(loaded: Loaded, opts: AggregateOptions): Counted {
  const { shaHex, roots } = loaded;
  const builder = new BaselineBuilder({
    unit: opts.unit,
    windowDays: opts.windowDays,
    thresholds: opts.thresholds,
    policy: opts.policy,
    omitSingleObserverCombos: opts.omitSingleObserverCombos,
  });
  const combos = new ComboTable();
  // stamp marks what the current observer already reported; it changes with the observer.
  let comboStamp: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  // Distinct observers counted on the way, checked against the written file by build().
  let comboSeen: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  const procSeen = new Int32Array(shaHex.length + 1);
  const procStamp = new Int32Array(shaHex.length + 1);
  const shaInWindow = new Uint8Array(shaHex.length + 1);
  const s: Sighting = { observer: '', dayMs: 0, sha256: '', rootDomain: null, port: null };
  let observerKey = -1;
  let stamp = 0;
  let hostDays = 0;
  let read = 0;
  let fed = 0;
  for (const hd of loaded.hostDays) {
    if (hd.observerKey !== observerKey) {
      observerKey = hd.observerKey;
      stamp++;
      s.observer = hd.observer;
    }
    hostDays++;
    s.dayMs = hd.day * DAY_MS;
    const procs = hd.processes;
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
    const triples = hd.combos;
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
  return { builder, combos, comboSeen, procSeen, shaInWindow, hostDays, read, fed };
}

// ---------------------------------------------------------------------------
// 3. build: the baseline file, the counts to publish and the rows' order

function build(
  pub: Database.Database,
  opts: AggregateOptions,
  key: SigningKey,
  loaded: Loaded,
  counted: Counted,
): Built | { ok: false; error: string } {
  // The file carries its version, so the version is chosen here and recorded by publish().
  const prev = pub.prepare('SELECT max(version) FROM version').pluck().get() as number | null;
  const version = Math.max((prev ?? 0) + 1, opts.nowMs);
  const file = join(opts.baselinesDir, `baseline-${version}.db`);
  const written = counted.builder.write(file, {
    version,
    builtAtMs: opts.nowMs,
    windowEndMs: loaded.endDay * DAY_MS,
    serverMeta: {
      ...(opts.unit === 'host' ? { observerMinUploadDays: opts.hostMinUploadDays } : {}),
      ...(opts.nextBuildByMs === null ? {} : { nextBuildByMs: opts.nextBuildByMs }),
    },
  });
  if (!written.ok) return { ok: false, error: `the builder could not write ${file}: ${written.error}` };
  const writtenAt = performance.now();
  const checked = checkCounts(file, loaded, counted, written.meta.omitsSingleObserverCombos);
  if (!checked.ok) return checked;
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
  return {
    ok: true,
    prev,
    version,
    file,
    meta,
    procObservers: checked.procObservers,
    comboObservers: checked.comboObservers,
    mismatches: checked.mismatches,
    rows: orderRows(loaded, counted, checked.comboObservers),
    snapshot: { sha256, bytes, envelope: line.toString('utf8') },
    writtenAt,
    lookedUpAt,
  };
}

/**
 * The publication must agree with the signed snapshot. The counts made on the
 * way are checked against the file on an even sample; any difference and
 * every count is read back from the file instead.
 */
function checkCounts(
  file: string,
  loaded: Loaded,
  counted: Counted,
  omitSingles: boolean,
): { ok: true; procObservers: Int32Array; comboObservers: Int32Array; mismatches: number } | { ok: false; error: string } {
  const { shaHex, roots } = loaded;
  const { combos, comboSeen, procSeen, shaInWindow } = counted;
  const opened = openBaseline(file, { cacheSizeKiB: 64 * 1024, lookupCacheEntries: 1024 });
  if (!opened.ok) return { ok: false, error: `the new baseline does not open: ${opened.error}` };
  const reader = opened.baseline;
  const comboCount = combos.count;
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
  return { ok: true, procObservers, comboObservers, mismatches };
}

/** Processes by sha256; the combos of each with observers grouped by process (a counting sort), each group by root hash, root, port. */
function orderRows(loaded: Loaded, counted: Counted, comboObservers: Int32Array): RowOrder {
  const { shaHex, roots } = loaded;
  const { combos, shaInWindow } = counted;
  const known = comboObservers.length;
  const shaOrder: number[] = [];
  for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) shaOrder.push(id);
  shaOrder.sort((a, b) => ((shaHex[a] as string) < (shaHex[b] as string) ? -1 : 1));
  const rank = new Int32Array(shaInWindow.length).fill(-1);
  shaOrder.forEach((id, r) => (rank[id] = r));
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
  return { shaOrder, groupStart, ordered, rhOf };
}

// ---------------------------------------------------------------------------
// 4. publish: the rows that changed, the version with its snapshot, the delta
//    horizon, in one transaction; then the snapshot files beyond those kept

function publish(pub: Database.Database, opts: AggregateOptions, loaded: Loaded, counted: Counted, built: Built): Published {
  let changedProcesses = 0;
  let changedCombos = 0;
  pub.transaction(() => {
    const removed = built.prev === null ? { procs: [], combos: [] } : findRemoved(pub, loaded, counted, built);
    const procs = upsertProcesses(pub, opts, loaded, built);
    changedProcesses += procs.changes;
    changedCombos += upsertCombos(pub, loaded, counted, built, procs.shaBuf);
    const rmProc = pub.prepare('UPDATE pub_process SET observers = 0, changed = ? WHERE sha = ?');
    for (const sha of removed.procs) changedProcesses += rmProc.run(built.version, sha).changes;
    const rmCombo = pub.prepare('UPDATE pub_combo SET observers = 0, changed = ? WHERE sha = ? AND rh = ? AND root = ? AND port = ?');
    for (const [sha, root, port] of removed.combos) changedCombos += rmCombo.run(built.version, sha, rootHash(root), root, port).changes;
    // A process whose cells changed size sends all its combos again.
    const resend = pub.prepare('UPDATE pub_combo SET changed = ? WHERE sha = ? AND changed < ?');
    for (const sha of procs.resized) changedCombos += resend.run(built.version, sha, built.version).changes;
    recordVersion(pub, opts, built, changedProcesses, changedCombos);
  })();
  const publishedAt = performance.now();
  try {
    pub.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // a reader holds an old snapshot: the next checkpoint will do
  }
  pruneSnapshots(pub, opts);
  return { changedProcesses, changedCombos, publishedAt };
}

/** Rows published before and absent now: they become removals (0 observers). */
function findRemoved(
  pub: Database.Database,
  loaded: Loaded,
  counted: Counted,
  built: Built,
): { procs: Buffer[]; combos: Array<[Buffer, string, number]> } {
  const { shaHex, roots } = loaded;
  const { combos, shaInWindow } = counted;
  const { procObservers, comboObservers } = built;
  const known = combos.count;
  const procs: Buffer[] = [];
  const gone: Array<[Buffer, string, number]> = [];
  const shaIdOf = new Map<string, number>();
  for (let id = 0; id < shaInWindow.length; id++) if (shaInWindow[id] === 1) shaIdOf.set(shaHex[id] as string, id);
  const rootIdOf = new Map<string, number>();
  for (let id = 0; id < roots.length; id++) if (roots[id] !== undefined) rootIdOf.set(roots[id] as string, id);
  for (const [sha] of pub.prepare('SELECT sha FROM pub_process WHERE observers > 0').raw().iterate() as Iterable<[Buffer]>) {
    const id = shaIdOf.get(sha.toString('hex'));
    if (id === undefined || (procObservers[id] as number) === 0) procs.push(sha);
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
    if (!present) gone.push([sha, root, port]);
  }
  return { procs, combos: gone };
}

/**
 * Processes with observers, in key order. Heavy processes ship their combos in
 * cells; `resized` are those whose cells changed size (all their combos go out
 * again). `shaBuf` is each sha id's key bytes, for the combos.
 */
function upsertProcesses(
  pub: Database.Database,
  opts: AggregateOptions,
  loaded: Loaded,
  built: Built,
): { changes: number; resized: Buffer[]; shaBuf: Buffer[] } {
  const { shaOrder, groupStart } = built.rows;
  const oldBits = new Map<string, number>();
  for (const [sha, bits] of pub.prepare('SELECT sha, bits FROM pub_process WHERE bits > 0').raw().iterate() as Iterable<[Buffer, number]>) {
    oldBits.set(sha.toString('hex'), bits);
  }
  const upProc = pub.prepare(
    `INSERT INTO pub_process (sha, observers, changed, bits) VALUES (?, ?, ?, ?)
     ON CONFLICT (sha) DO UPDATE SET observers = excluded.observers, changed = excluded.changed, bits = excluded.bits
     WHERE observers != excluded.observers OR bits != excluded.bits`,
  );
  let changes = 0;
  const shaBuf: Buffer[] = [];
  const resized: Buffer[] = [];
  for (let r = 0; r < shaOrder.length; r++) {
    const id = shaOrder[r] as number;
    const hex = loaded.shaHex[id] as string;
    const b = Buffer.from(hex, 'hex');
    shaBuf[id] = b;
    const bits = cellBitsFor((groupStart[r + 1] as number) - (groupStart[r] as number), opts.heavyProcessCombos, opts.combosPerCell);
    if (bits !== (oldBits.get(hex) ?? 0)) resized.push(b);
    oldBits.delete(hex);
    const n = built.procObservers[id] as number;
    if (n > 0) changes += upProc.run(b, n, built.version, bits).changes;
  }
  // Heavy before and gone from the window now: their combos go out again too.
  for (const hex of oldBits.keys()) resized.push(Buffer.from(hex, 'hex'));
  return { changes, resized, shaBuf };
}

/** Combos with observers, in key order; returns the rows changed. */
function upsertCombos(pub: Database.Database, loaded: Loaded, counted: Counted, built: Built, shaBuf: Buffer[]): number {
  const { combos } = counted;
  const { ordered, rhOf } = built.rows;
  const upCombo = pub.prepare(
    `INSERT INTO pub_combo (sha, rh, root, port, observers, changed) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (sha, rh, root, port) DO UPDATE SET observers = excluded.observers, changed = excluded.changed WHERE observers != excluded.observers`,
  );
  let changes = 0;
  for (let i = 0; i < ordered.length; i++) {
    const c = ordered[i] as number;
    changes += upCombo.run(
      shaBuf[combos.sha[c] as number] as Buffer,
      rhOf(combos.root[c] as number),
      loaded.roots[combos.root[c] as number] as string,
      combos.port[c] as number,
      built.comboObservers[c] as number,
      built.version,
    ).changes;
  }
  return changes;
}

/** The version row with its snapshot; removals older than the delta history go, as no one allowed a delta needs them. */
function recordVersion(
  pub: Database.Database,
  opts: AggregateOptions,
  built: Built,
  changedProcesses: number,
  changedCombos: number,
): void {
  const { version, snapshot } = built;
  pub
    .prepare(
      `INSERT INTO version (version, meta, published_ms, snapshot_file, snapshot_sha256, snapshot_bytes, snapshot_envelope, changed_processes, changed_combos)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      version,
      JSON.stringify(built.meta),
      opts.nowMs,
      built.file,
      snapshot.sha256,
      snapshot.bytes,
      snapshot.envelope,
      changedProcesses,
      changedCombos,
    );
  const horizon =
    (pub
      .prepare('SELECT version FROM version ORDER BY version DESC LIMIT 1 OFFSET ?')
      .pluck()
      .get(opts.deltaHistoryVersions - 1) as number | undefined) ??
    (pub.prepare('SELECT min(version) FROM version').pluck().get() as number);
  pub.prepare('DELETE FROM pub_process WHERE observers = 0 AND changed <= ?').run(horizon);
  pub.prepare('DELETE FROM pub_combo WHERE observers = 0 AND changed <= ?').run(horizon);
  pub.prepare("INSERT OR REPLACE INTO kv (key, value) VALUES ('deltaHorizon', ?)").run(String(horizon));
}

/** Old snapshot files beyond what is kept. */
function pruneSnapshots(pub: Database.Database, opts: AggregateOptions): void {
  const keep = new Set(
    pub.prepare('SELECT snapshot_file FROM version ORDER BY version DESC LIMIT ?').pluck().all(opts.keepSnapshots) as string[],
  );
  for (const name of readdirSync(opts.baselinesDir)) {
    const full = join(opts.baselinesDir, name);
    if (/^baseline-\d+\.db$/.test(name) && !keep.has(full)) rmSync(full, { force: true });
  }
}
