// What the record reader makes of each string the native line scanner
// interned (ndjson-fast.ts's rules), worked out once per id instead of once a
// line: blank host ids and bad addresses make a line go the JavaScript way.
import type { ScannedTable } from '../../../model/scanned.js';
import { L_HOST, L_IP, L_LOCAL_IP } from './scanned-slots.js';
import { isBlank } from '../field-reader.js';
import { normaliseIp } from '../../../model/address.js';
import { DEFAULT_ORG } from '../ndjson-reader.js';

// Ids are dense, so plain arrays indexed by id; undefined: not worked out yet. Compared with the literal
// `undefined`: a compare with a constant holding it took a runtime call per line (Node 20, measured).

export class IdTable implements ScannedTable {
  private readonly ips: (string | null | undefined)[] = [];
  private readonly names: (string | null | undefined)[] = [];
  private readonly orgs: (string | undefined)[] = [];
  private readonly hostIds: (boolean | undefined)[] = [];

  /** `strings`: the scanner's id -> string list of the current epoch. */
  constructor(private readonly strings: readonly string[]) {}

  text(id: number): string {
    return this.strings[id]!;
  }

  ip(id: number): string | null {
    let v = this.ips[id];
    if (v === undefined) {
      const s = this.strings[id]!;
      this.ips[id] = v = isBlank(s) ? null : normaliseIp(s);
    }
    return v;
  }

  hostname(id: number): string | null {
    let v = this.names[id];
    if (v === undefined) {
      const s = this.strings[id]!.trim();
      this.names[id] = v = s === '' ? null : s;
    }
    return v;
  }

  org(id: number): string {
    if (id < 0) return DEFAULT_ORG;
    let v = this.orgs[id];
    if (v === undefined) {
      const s = this.strings[id]!;
      this.orgs[id] = v = s.trim() === '' ? DEFAULT_ORG : s;
    }
    return v;
  }

  /** Whether the record reader accepts the scanned line at slot `o`: a host id that is not blank, addresses that are addresses. */
  accepts(lines: Int32Array, o: number): boolean {
    const host = lines[o + L_HOST]!;
    let ok = this.hostIds[host];
    if (ok === undefined) this.hostIds[host] = ok = !isBlank(this.strings[host]!);
    if (!ok || this.ip(lines[o + L_IP]!) === null) return false;
    const local = lines[o + L_LOCAL_IP]!;
    return local < 0 || this.ip(local) !== null;
  }
}
