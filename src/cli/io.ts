// Small helpers shared by the commands: usage errors, output with backpressure,
// input checks up front, the progress line.
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { DEFAULT_CONFIG, type RareconConfig } from '../config/defaults.js';
import { mergeDefaults } from '../config/spec.js';
import { loadLineScanner, type LineScanner } from '../sources/replay/fast/native-scan.js';

/** A usage or start-up problem: printed as one line, exit status 1. */
export class UsageError extends Error {}

export async function writeLine(out: Writable, line: string): Promise<void> {
  if (!out.write(line + '\n')) {
    await new Promise<void>((resolve) => out.once('drain', resolve));
  }
}

/**
 * Every input must be a readable file (or a pipe) before any work starts (exit
 * 1 otherwise). Returns their size on disk, null when a pipe's is unknown.
 */
export function checkInputs(files: readonly string[]): number | null {
  if (files.length === 0) throw new UsageError('no input files given');
  let totalBytes = 0;
  let pipes = false;
  const problems: string[] = [];
  for (const f of files) {
    try {
      const st = statSync(f);
      // Pipes and character devices are streamed like files (`<(zcat x)`, /dev/stdin); their size is unknown.
      if (st.isDirectory()) problems.push(`${f}: is a directory`);
      else if (st.isFile()) totalBytes += st.size;
      else if (st.isFIFO() || st.isCharacterDevice()) pipes = true;
      else problems.push(`${f}: not a regular file or a pipe`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${f}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new UsageError(`cannot read input:\n  ${problems.join('\n  ')}`);
  return pipes ? null : totalBytes;
}

/**
 * A one-line progress display on a terminal; silent elsewhere and for small
 * inputs. With the input size known (regular files, not pipes) it shows the
 * share read and the time left at the rate so far.
 */
export class Progress {
  private lastDrawMs = 0;
  private readonly enabled: boolean;
  private readonly startMs: number;
  private readonly files = new Map<string, number>();

  /**
   * `totalBytes`: the inputs' size on disk, null when some input is a pipe.
   * `now` is for tests.
   */
  constructor(
    private readonly err: NodeJS.WriteStream | Writable,
    private readonly totalFiles: number,
    private readonly totalBytes: number | null,
    private readonly now: () => number = Date.now,
  ) {
    this.startMs = now();
    this.enabled = (err as NodeJS.WriteStream).isTTY === true && (totalBytes === null || totalBytes > 8 * 1024 * 1024);
  }

  /** `bytesRead`: of the inputs on disk so far (before gunzip), for the share done. */
  update(file: string, records: number, bytesRead: number): void {
    if (!this.enabled) return;
    const now = this.now();
    if (now - this.lastDrawMs < 200) return;
    this.lastDrawMs = now;
    this.err.write(`\r\x1b[K${this.line(file, records, bytesRead, now)}`);
  }

  /** The progress line (without the terminal's erase codes). */
  line(file: string, records: number, bytesRead: number, now: number = this.now()): string {
    if (!this.files.has(file)) this.files.set(file, this.files.size);
    const fileIndex = this.files.get(file) ?? 0;
    const elapsedS = Math.max(0.001, (now - this.startMs) / 1000);
    const rate = Math.round(records / elapsedS);
    const name = file.length > 40 ? '…' + file.slice(-39) : file;
    let done = '';
    if (this.totalBytes !== null && this.totalBytes > 0) {
      const share = Math.min(1, bytesRead / this.totalBytes);
      // Time left at the byte rate so far; a compressed file's bytes are its size on disk, as the total.
      const leftS = share > 0 ? (elapsedS * (1 - share)) / share : NaN;
      done = `  ${Math.floor(share * 100)}%${Number.isFinite(leftS) ? `, ${formatDuration(leftS)} left` : ''}`;
    }
    return `[${fileIndex + 1}/${this.totalFiles}] ${name}${done}  ${records.toLocaleString('en-US')} records  ${rate.toLocaleString('en-US')}/s`;
  }

  done(): void {
    if (this.enabled) this.err.write('\r\x1b[K');
  }
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ');
}

/**
 * The defaults, or the config file merged over them. The file's loader (YAML
 * and every section's rules, ~60 ms to import) is read only when there is a
 * file: scoring a small log starts that much sooner.
 */
export async function configOf(file: string | undefined): Promise<RareconConfig> {
  if (file === undefined) return mergeDefaults(DEFAULT_CONFIG, undefined);
  const { loadConfig, formatProblems } = await import('./config-file.js');
  const r = loadConfig(file);
  if (!r.ok) throw new UsageError(`bad config:\n${formatProblems(r)}`);
  return r.config;
}

/** The reader a run uses (the native line scanner unless --js-reader or it cannot load) and how its summary names it. */
export function chooseReader(jsReader: boolean): { scanner: LineScanner | null; reader: string } {
  const loaded = jsReader ? null : loadLineScanner();
  if (loaded === null) return { scanner: null, reader: 'JavaScript (--js-reader)' };
  if (loaded.ok) return { scanner: loaded.scanner, reader: 'native line scanner' };
  return { scanner: null, reader: `JavaScript (native line scanner not loaded: ${loaded.reason})` };
}
