// The detector's answers per id of scanned lines (model/scanned.ts): address
// class, root domain, process prevalence. Each is worked out once per id, so
// a repeated connection costs array reads instead of string hashing. Valid for
// one id table, baseline and baseline meta; the detector makes a new one when
// any of them changes.
import type { BaselineMeta, BaselineReader } from '../model/baseline.js';
import type { ScannedTable } from '../model/scanned.js';
import type { RootDomainResolver, RootDomainResult } from '../enrich/root-domain.js';
import type { AddressClass, AddressClassifier } from './address.js';

const NOT_YET = 0;
const ADDRESS_CLASSES: readonly AddressClass[] = ['external', 'internal', 'configured-internal', 'invalid'];

export class IdCaches {
  /** Address class + 1 per ip id (0: not worked out yet). */
  private addresses = new Uint8Array(1024);
  private readonly roots: (RootDomainResult | undefined)[] = [];
  /** Observers + 1 per sha256 id (0: not looked up yet); 1 for a sha256 the baseline has never seen. */
  private processes = new Float64Array(1024);

  constructor(
    private readonly table: ScannedTable,
    private readonly baseline: BaselineReader,
    private readonly meta: BaselineMeta,
  ) {}

  isFor(table: ScannedTable, baseline: BaselineReader, meta: BaselineMeta): boolean {
    return this.table === table && this.baseline === baseline && this.meta === meta;
  }

  addressIneligible<R>(ipId: number, classifier: AddressClassifier, ineligible: Record<AddressClass, R>): R {
    if (ipId >= this.addresses.length) this.addresses = grow(this.addresses, ipId);
    let k = this.addresses[ipId]!;
    if (k === NOT_YET) {
      // The reader hands on only lines whose addresses normalise.
      const cls = classifier.classify(this.table.ip(ipId)!);
      this.addresses[ipId] = k = ADDRESS_CLASSES.indexOf(cls) + 1;
    }
    return ineligible[ADDRESS_CLASSES[k - 1]!];
  }

  rootDomain(nameId: number, hostname: string, rootDomainOf: RootDomainResolver): RootDomainResult {
    let r = this.roots[nameId];
    if (r === undefined) this.roots[nameId] = r = rootDomainOf(hostname, this.meta.policy);
    return r;
  }

  /** Observers of the sha256 behind the id; 0 when the baseline has never seen it. */
  processObservers(shaId: number): number {
    if (shaId >= this.processes.length) this.processes = grow(this.processes, shaId);
    let n = this.processes[shaId]!;
    if (n === NOT_YET) this.processes[shaId] = n = (this.baseline.process(this.table.text(shaId)) ?? 0) + 1;
    return n - 1;
  }
}

function grow<T extends Uint8Array | Float64Array>(a: T, index: number): T {
  let size = a.length * 2;
  while (size <= index) size *= 2;
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}
