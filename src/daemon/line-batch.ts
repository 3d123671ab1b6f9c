// The --alerts and --record files take their lines in batches: one write per
// `delayMs` (or per MiB), not one per line. At a thousand connections a second
// each arrives in its own event-loop turn, and a write (and its thread-pool
// round trip) per record cost more than the rest of a repeat connection.
import type { WriteStream } from 'node:fs';

/** Bytes gathered before a write is made at once, within the turn. */
const FLUSH_BYTES = 1 << 20;

export class LineBatch {
  private parts: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly flushSoon = (): void => {
    this.timer = null;
    this.flush();
  };

  /** `delayMs`: how long a line may wait for others to go with it. */
  constructor(
    private readonly out: WriteStream,
    private readonly delayMs = 0,
  ) {}

  /** Appends one line (with its newline) to the next write. */
  write(line: string): void {
    this.parts.push(line);
    this.bytes += line.length;
    if (this.bytes >= FLUSH_BYTES) this.flush();
    else if (this.timer === null) this.timer = setTimeout(this.flushSoon, this.delayMs);
  }

  /** Writes what is gathered now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.parts.length === 0) return;
    const text = this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join('');
    this.parts = [];
    this.bytes = 0;
    this.out.write(text);
  }

  /** Writes what is gathered and ends the file. */
  end(): Promise<void> {
    this.flush();
    return new Promise<void>((r) => this.out.end(r));
  }
}
