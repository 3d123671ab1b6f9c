// Finds the file behind an executable's (device, inode) when the process has
// already exited: a short-lived `curl` is often gone before its connection is
// enriched. The eBPF helper reports the inode; the index maps it back to a path
// in the usual program folders. Built lazily, rebuilt at most once a minute.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

const DEFAULT_DIRS = [
  '/usr/bin',
  '/usr/sbin',
  '/usr/local/bin',
  '/usr/local/sbin',
  '/usr/libexec',
  '/usr/lib/openssh',
  '/opt/bin',
  '/snap/bin',
];

export class ExeIndex {
  private map = new Map<string, string>();
  private builtMs = 0;
  private building: Promise<void> | null = null;
  lookupsTotal = 0;
  foundTotal = 0;

  constructor(
    private readonly dirs: readonly string[] = DEFAULT_DIRS,
    private readonly rebuildAfterMs = 60_000,
  ) {}

  private static key(dev: number, ino: bigint | number): string {
    return `${dev}:${ino}`;
  }

  private async build(): Promise<void> {
    const next = new Map<string, string>();
    for (const dir of this.dirs) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const path = join(dir, name);
        try {
          const st = await stat(path, { bigint: true });
          if (st.isFile() && (st.mode & 0o111n) !== 0n) next.set(ExeIndex.key(Number(st.dev), st.ino), path);
        } catch {
          // vanished or unreadable: skip
        }
      }
    }
    this.map = next;
    this.builtMs = Date.now();
  }

  /** The path of the executable with this (dev, ino), or null. */
  async find(dev: number, ino: bigint): Promise<string | null> {
    this.lookupsTotal++;
    const k = ExeIndex.key(dev, ino);
    let path = this.map.get(k);
    if (path === undefined && Date.now() - this.builtMs > this.rebuildAfterMs) {
      this.building ??= this.build().finally(() => (this.building = null));
      await this.building;
      path = this.map.get(k);
    }
    if (path !== undefined) this.foundTotal++;
    return path ?? null;
  }
}
