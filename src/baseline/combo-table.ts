// Interns combos (sha id, root id, port) to dense ids: 10 bytes a combo plus its
// slot, instead of a string key per combo.
import { grownInt32, mix3 } from './int-hash.js';

const MAX_LOAD = 0.6;

export class ComboTable {
  /** Distinct combos; ids are 0..count-1. */
  count = 0;
  /** id -> sha id, root id, port. Grow: read them after the last intern(). */
  sha = new Int32Array(1024);
  root = new Int32Array(1024);
  port = new Uint16Array(1024);
  private slots = new Int32Array(2048); // id + 1, 0 = empty
  private mask = 2047;

  get byteLength(): number {
    return this.sha.byteLength + this.root.byteLength + this.port.byteLength + this.slots.byteLength;
  }

  intern(shaId: number, rootId: number, port: number): number {
    const mask = this.mask;
    let i = mix3(shaId, rootId, port) & mask;
    for (;;) {
      const slot = this.slots[i] as number;
      if (slot === 0) break;
      const id = slot - 1;
      if (this.sha[id] === shaId && this.root[id] === rootId && this.port[id] === port) return id;
      i = (i + 1) & mask;
    }
    const id = this.count++;
    if (id >= this.sha.length) {
      const n = this.sha.length * 2;
      this.sha = grownInt32(this.sha, n);
      this.root = grownInt32(this.root, n);
      const p = new Uint16Array(n);
      p.set(this.port);
      this.port = p;
    }
    this.sha[id] = shaId;
    this.root[id] = rootId;
    this.port[id] = port;
    this.slots[i] = id + 1;
    if (this.count > (mask + 1) * MAX_LOAD) this.rehash();
    return id;
  }

  private rehash(): void {
    const cap = (this.mask + 1) * 2;
    const mask = cap - 1;
    const slots = new Int32Array(cap);
    for (let id = 0; id < this.count; id++) {
      let i = mix3(this.sha[id] as number, this.root[id] as number, this.port[id] as number) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = id + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
