// The records of the alerts an offline run holds open, as JSON text by id:
// in memory (UTF-8 in 1 MiB chunks outside the JavaScript heap) up to a bound,
// then in a temporary SQLite file (one SQLite makes itself and deletes on
// close). So the memory a run holds for open alerts does not grow with their
// number past the bound. JavaScript strings were no good for this: the text
// JSON.stringify gives is a tree of concatenated pieces (~2x its length).
import Database from 'better-sqlite3';
import { DEFAULT_OFFLINE_MEMORY } from '../config/defaults.js';

/** Bytes of records held in memory (~3,000 alerts of the bench) before all of them go to the temporary file. */
export const DEFAULT_HELD_BODY_BYTES = DEFAULT_OFFLINE_MEMORY.heldAlertBytes;

const CHUNK_BYTES = 1024 * 1024;
const NOWHERE = 0;
const IN_MEMORY = 1;
const SPILLED = 2;

interface Spill {
  db: Database.Database;
  put: Database.Statement<[number, string]>;
  get: Database.Statement<[number], { body: string }>;
}

interface Chunk {
  readonly bytes: Buffer;
  /** Bytes of records in it not yet taken. */
  live: number;
}

export class AlertBodies {
  private chunks: (Chunk | null)[] = [];
  /** The chunk records are appended to, and where its free space starts. */
  private current: Chunk | null = null;
  private used = 0;
  private memoryBytes = 0;
  // Per id: where its record is, and (in memory) its chunk, offset and length.
  private where = new Uint8Array(0);
  private chunkOf = new Int32Array(0);
  private offset = new Int32Array(0);
  private length = new Int32Array(0);
  private spill: Spill | null = null;
  /**
   * Chunks emptied (by a spill, or their records taken), for the next records: a
   * new chunk each time left 1 MiB buffers outside the heap that V8 collects
   * only once ~64 MiB of them piled up. Counted in memoryBytes.
   */
  private spare: Buffer[] = [];
  /** Records written to the temporary file, over the run. */
  spilledTotal = 0;

  constructor(private readonly maxMemoryBytes: number = DEFAULT_HELD_BODY_BYTES) {}

  /** Bytes of memory the records take now: their chunks (at most the bound, or one record larger than it) and the per-id arrays. */
  get heldBytes(): number {
    return this.memoryBytes + this.where.length * 13;
  }

  /** Stores the record of held alert `id` (an id not holding one: taken, or never used). */
  put(id: number, body: string): void {
    if (id >= this.where.length) this.grow(id);
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    const room = body.length * 3;
    if (this.current === null || this.used + room > this.current.bytes.length) this.newChunk(room);
    const c = this.current!;
    const n = c.bytes.write(body, this.used, 'utf8');
    this.where[id] = IN_MEMORY;
    this.chunkOf[id] = this.chunks.length - 1;
    this.offset[id] = this.used;
    this.length[id] = n;
    this.used += n;
    c.live += n;
  }

  /** The record of held alert `id`; it is forgotten. */
  take(id: number): string {
    const w = this.where[id];
    this.where[id] = NOWHERE;
    if (w === IN_MEMORY) {
      const k = this.chunkOf[id]!;
      const c = this.chunks[k]!;
      const off = this.offset[id]!;
      const len = this.length[id]!;
      const body = c.bytes.toString('utf8', off, off + len);
      c.live -= len;
      // Alerts close about in the order they opened, so older chunks empty out and are freed.
      if (c.live === 0 && c !== this.current) this.drop(k);
      return body;
    }
    const row = w === SPILLED ? this.spill?.get.get(id) : undefined;
    if (row === undefined) throw new Error(`held alert ${id} has no record`);
    // Its row stays until the id is used again (INSERT OR REPLACE) or the file goes: a delete would cost a write.
    return row.body;
  }

  private newChunk(room: number): void {
    const size = Math.max(CHUNK_BYTES, room);
    let bytes = size === CHUNK_BYTES ? this.spare.pop() : undefined;
    if (bytes === undefined) {
      if (this.memoryBytes + size > this.maxMemoryBytes && this.memoryBytes > 0) {
        this.spillAll();
        bytes = size === CHUNK_BYTES ? this.spare.pop() : undefined;
      }
      if (bytes === undefined) {
        // A record larger than a chunk: the spare chunks go, so memory is the bound or that one record.
        for (const b of this.spare.splice(0)) this.memoryBytes -= b.length;
        bytes = Buffer.allocUnsafeSlow(size);
        this.memoryBytes += size;
      }
    }
    const c: Chunk = { bytes, live: 0 };
    this.chunks.push(c);
    this.current = c;
    this.used = 0;
  }

  private drop(k: number): void {
    const bytes = this.chunks[k]!.bytes;
    this.chunks[k] = null;
    this.keep(bytes);
  }

  /** An emptied chunk: kept for reuse if of the usual size, else let go. */
  private keep(bytes: Buffer): void {
    if (bytes.length === CHUNK_BYTES) this.spare.push(bytes);
    else this.memoryBytes -= bytes.length;
  }

  /** Moves every record held in memory to the temporary file, in one transaction, and frees the chunks. */
  private spillAll(): void {
    const s = (this.spill ??= openSpill());
    let n = 0;
    s.db.transaction(() => {
      for (let id = 0; id < this.where.length; id++) {
        if (this.where[id] !== IN_MEMORY) continue;
        const off = this.offset[id]!;
        s.put.run(id, this.chunks[this.chunkOf[id]!]!.bytes.toString('utf8', off, off + this.length[id]!));
        this.where[id] = SPILLED;
        n++;
      }
    })();
    this.spilledTotal += n;
    for (const c of this.chunks) if (c !== null) this.keep(c.bytes);
    this.chunks = [];
    this.current = null;
  }

  private grow(id: number): void {
    // By half again, as the deduper's ids grow (doubling left up to half of them unused).
    const n = Math.max(1024, Math.ceil(this.where.length * 1.5), id + 1);
    const w = new Uint8Array(n);
    w.set(this.where);
    this.where = w;
    for (const k of ['chunkOf', 'offset', 'length'] as const) {
      const a = new Int32Array(n);
      a.set(this[k]);
      this[k] = a;
    }
  }

  close(): void {
    this.spill?.db.close();
    this.spill = null;
    this.chunks = [];
    this.spare = [];
    this.current = null;
    this.memoryBytes = 0;
  }
}

function openSpill(): Spill {
  // An empty name is SQLite's private temporary database: a file in the temp folder, deleted when closed.
  const db = new Database('');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  // A bounded page cache: the file, not memory, takes the records (written about in id order, read back so).
  db.pragma(`cache_size = ${-DEFAULT_OFFLINE_MEMORY.heldAlertSpillCacheKiB}`);
  db.exec('CREATE TABLE body (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  return {
    db,
    put: db.prepare<[number, string]>('INSERT OR REPLACE INTO body (id, body) VALUES (?, ?)'),
    get: db.prepare<[number], { body: string }>('SELECT body FROM body WHERE id = ?'),
  };
}
