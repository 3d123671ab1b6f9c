// Small helpers shared by the commands: usage errors, output with backpressure,
// input checks up front, the progress line.
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** A usage or start-up problem: printed as one line, exit status 1. */
export class UsageError extends Error {}

export async function writeLine(out: Writable, line: string): Promise<void> {
  if (!out.write(line + '\n')) {
    await new Promise<void>((resolve) => out.once('drain', resolve));
  }
}

/** Every input must be a readable file (or a pipe) before any work starts (exit 1 otherwise). */
export function checkInputs(files: readonly string[]): number {
  if (files.length === 0) throw new UsageError('no input files given');
  let totalBytes = 0;
  const problems: string[] = [];
  for (const f of files) {
    try {
      const st = statSync(f);
      // Pipes and character devices are streamed like files (`<(zcat x)`, /dev/stdin); their size is unknown.
      if (st.isDirectory()) problems.push(`${f}: is a directory`);
      else if (st.isFile()) totalBytes += st.size;
      else if (!st.isFIFO() && !st.isCharacterDevice()) problems.push(`${f}: not a regular file or a pipe`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${f}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new UsageError(`cannot read input:\n  ${problems.join('\n  ')}`);
  return totalBytes;
}

/** A one-line progress display on a terminal; silent elsewhere and for small inputs. */
export class Progress {
  private lastDrawMs = 0;
  private readonly enabled: boolean;
  private readonly startMs = Date.now();

  constructor(
    private readonly err: NodeJS.WriteStream | Writable,
    private readonly totalFiles: number,
    totalBytes: number,
  ) {
    this.enabled = (err as NodeJS.WriteStream).isTTY === true && totalBytes > 8 * 1024 * 1024;
  }

  private readonly files = new Map<string, number>();

  update(file: string, records: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDrawMs < 200) return;
    this.lastDrawMs = now;
    if (!this.files.has(file)) this.files.set(file, this.files.size);
    const fileIndex = this.files.get(file) ?? 0;
    const rate = Math.round(records / Math.max(0.001, (now - this.startMs) / 1000));
    const name = file.length > 40 ? '…' + file.slice(-39) : file;
    this.err.write(
      `\r\x1b[K[${fileIndex + 1}/${this.totalFiles}] ${name}  ${records.toLocaleString('en-US')} records  ${rate.toLocaleString('en-US')}/s`,
    );
  }

  done(): void {
    if (this.enabled) this.err.write('\r\x1b[K');
  }
}

export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ');
}
