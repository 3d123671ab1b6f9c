// The detector's answers per id of scanned lines (model/scanned.ts): address
// class, root domain, process prevalence. Each is worked out once per id, so
// a repeated connection costs array reads instead of string hashing. Valid for
// one id table, baseline and baseline meta; the detector makes a new one when
// any of them changes.
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import type { ScannedTable } from '../model/scanned.js';
import type { RootDomainResolver, RootDomainResult } from '../model/root-domain.js';
import type { AddressClass, AddressClassifier } from '../model/address.js';

const NOT_YET = 0;
type NoRootReason = Extract<RootDomainResult, { ok: false }>['reason'];
/** Why a name has no root domain, by the index rootDomain() answers as -(index + 1). */
export const NO_ROOT_REASONS: readonly NoRootReason[] = [
  'empty',
  'ip-literal',
  'single-label',
  'internal-name',
  'invalid-name',
  'no-registrable-domain',
];
/** Slots of the combo table (16 bytes each); it starts again when three quarters full. */
const COMBO_SLOTS = 1 << 18;
/** Address classes by the index addressClass() answers; 0 is external. */
export const ADDRESS_CLASSES: readonly AddressClass[] = ['external', 'internal', 'configured-internal', 'invalid'];

export class IdCaches {
  /** Address class + 1 per ip id (0: not worked out yet). */
  private addresses = new Uint8Array(1024);
  /**
   * Root domain per name id: root id + 1, or -(index of the reason + 1) when
   * the name has none, 0 when not worked out yet. A result object a name took
   * ~120 bytes with its strings (9 MiB at 78,000 names of the 5M bench events).
   */
  private rootCodes = new Int32Array(1024);
  /** Root domains by root id. */
  private readonly rootNames: string[] = [];
  /** Observers + 1 per sha256 id (0: not looked up yet); 1 for a sha256 the baseline has never seen. */
  private processes = new Float64Array(1024);
  /** Root ids by root domain, numbered in first-seen order. */
  private readonly rootIdOf = new Map<string, number>();
  /**
   * Combo observers by (sha256 id, root id, port), open addressing: a Map
   * keyed by numbers that large hashed heap numbers and cost more than the
   * string-keyed cache it was to spare. Slot k: keys[3k..3k+2], observers[k];
   * sha256 id -1 marks a free slot.
   */
  private readonly comboKeys = new Int32Array(COMBO_SLOTS * 3).fill(-1);
  private readonly comboObserversBySlot = new Int32Array(COMBO_SLOTS);
  private combosHeld = 0;

  /** Where answers come from: every one is kept here, so not through the reader's own recent-answers cache. */
  private readonly lookups: Pick<BaselineReader, 'process' | 'combo'>;

  constructor(
    private readonly table: ScannedTable,
    private readonly baseline: BaselineReader,
    private readonly meta: BaselineMeta,
  ) {
    this.lookups = baseline.uncached ?? baseline;
  }

  isFor(table: ScannedTable, baseline: BaselineReader, meta: BaselineMeta): boolean {
    return this.table === table && this.baseline === baseline && this.meta === meta;
  }

  /** The class of the address behind the id, as an index into ADDRESS_CLASSES (a number: the hot path compares it). */
  addressClass(ipId: number, classifier: AddressClassifier): number {
    if (ipId >= this.addresses.length) this.addresses = grow(this.addresses, ipId);
    let k = this.addresses[ipId]!;
    if (k === NOT_YET) {
      // The reader hands on only lines whose addresses normalise.
      const cls = classifier.classify(this.table.ip(ipId)!);
      this.addresses[ipId] = k = ADDRESS_CLASSES.indexOf(cls) + 1;
    }
    return k - 1;
  }

  /**
   * The root domain of the name behind the id, as a code: >= 0 a root id
   * (rootName() gives the domain), < 0 no root domain (NO_ROOT_REASONS[-code - 1] says why).
   */
  rootDomain(nameId: number, hostname: string, rootDomainOf: RootDomainResolver): number {
    if (nameId >= this.rootCodes.length) this.rootCodes = grow(this.rootCodes, nameId);
    let code = this.rootCodes[nameId]!;
    if (code === NOT_YET) {
      const r = rootDomainOf(hostname, this.meta.policy);
      if (r.ok) {
        let rootId = this.rootIdOf.get(r.rootDomain);
        if (rootId === undefined) {
          rootId = this.rootNames.length;
          this.rootIdOf.set(r.rootDomain, rootId);
          this.rootNames.push(r.rootDomain);
        }
        code = rootId + 1;
      } else {
        code = -(NO_ROOT_REASONS.indexOf(r.reason) + 1);
      }
      this.rootCodes[nameId] = code;
    }
    return code > 0 ? code - 1 : code;
  }

  /** The root domain of a root id rootDomain() gave. */
  rootName(rootId: number): string {
    return this.rootNames[rootId]!;
  }

  /** Whether processObservers(shaId) is already known (answers without a baseline read). */
  processKnown(shaId: number): boolean {
    return shaId < this.processes.length && this.processes[shaId] !== NOT_YET;
  }

  /** Observers of the sha256 behind the id; 0 when the baseline has never seen it. */
  processObservers(shaId: number): number {
    if (shaId >= this.processes.length) this.processes = grow(this.processes, shaId);
    let n = this.processes[shaId]!;
    if (n === NOT_YET) this.processes[shaId] = n = (this.lookups.process(this.table.text(shaId)) ?? 0) + 1;
    return n - 1;
  }

  /**
   * Observers of the combo of a sha256 id, a root id (from rootDomain()) and
   * a port: the baseline's answer,
   * kept by ids so a repeat costs a probe of integer keys and no string hashing.
   */
  comboObservers(shaId: number, rootId: number, port: number): number {
    const keys = this.comboKeys;
    const mask = COMBO_SLOTS - 1;
    let slot = (Math.imul(shaId, 0x9e3779b1) ^ Math.imul(rootId, 0x85ebca77) ^ Math.imul(port, 0xc2b2ae3d)) >>> 14;
    for (; ; slot = (slot + 1) & mask) {
      const k = slot * 3;
      const sha = keys[k]!;
      if (sha === -1) break;
      if (sha === shaId && keys[k + 1] === rootId && keys[k + 2] === port) return this.comboObserversBySlot[slot]!;
    }
    const n = this.lookups.combo(this.table.text(shaId), this.rootNames[rootId]!, port);
    if (this.combosHeld >= (COMBO_SLOTS >> 2) * 3) {
      // Full enough that probes grow long: start again (the baseline's own cache still holds recent answers).
      keys.fill(-1);
      this.combosHeld = 0;
      return n;
    }
    const k = slot * 3;
    keys[k] = shaId;
    keys[k + 1] = rootId;
    keys[k + 2] = port;
    this.comboObserversBySlot[slot] = n;
    this.combosHeld++;
    return n;
  }
}

function grow<T extends Uint8Array | Int32Array | Float64Array>(a: T, index: number): T {
  let size = a.length * 2;
  while (size <= index) size *= 2;
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}
