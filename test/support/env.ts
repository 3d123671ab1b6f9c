// What the daemon end-to-end tests need from the machine: root, the built CLI,
// the built eBPF helper, a C compiler for the triggers. Each check says why it
// fails, so a test can skip (or fail) with that reason.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, REPO } from './cli.js';

const execFileP = promisify(execFile);

export const NATIVE_DIR = join(REPO, 'native-events');
export const HELPER_BIN = join(NATIVE_DIR, 'build', 'rarecon-events');
export const TRIGGER_SRC = join(REPO, 'test', 'e2e', 'triggers');

export const isRoot = process.platform === 'linux' && process.getuid?.() === 0;

/** Why the live daemon cannot be tested here, or null. */
export function rootReason(): string | null {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (!isRoot) return 'needs root (eBPF programs, network namespaces, mount namespaces)';
  return null;
}

/** Builds the helper (incremental) and checks the CLI is built; throws with what to do. */
export async function buildNative(): Promise<void> {
  try {
    await execFileP('make', ['-s', '-C', NATIVE_DIR, 'all'], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`make -C native-events failed (see native-events/README.md for the packages): ${e.stderr ?? e.message}`);
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build it with "npx tsc -p tsconfig.json" (npm test does it first)`);
}

/** Compiles test/e2e/triggers/NAME.c with cc into DIR/NAME (as native-events/Makefile does); returns the path. */
export function buildTrigger(name: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  execFileSync(
    'cc',
    ['-O1', '-g', '-fno-omit-frame-pointer', '-std=gnu11', '-Wall', '-Wextra', '-pthread', '-o', out, join(TRIGGER_SRC, `${name}.c`)],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return out;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** First argument that runs with --version, e.g. dnsmasq's path. */
export function findProgram(candidates: string[]): string | null {
  for (const c of candidates) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return c;
    } catch {
      // next
    }
  }
  return null;
}

/** Pids of the live children of `ppid` named `comm` (e.g. rarecon-events), from /proc. */
export function childPids(ppid: number, comm: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      if (Number(stat.slice(close + 2).split(' ')[1]) === ppid && name === comm) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Kernel release as [major, minor]. */
export function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(readFileSync('/proc/sys/kernel/osrelease', 'utf8'));
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/**
 * How long a test waits for an event it expects (an alert, a record, a status, a log line). Generous: on a
 * loaded 2-core machine the event comes late, not never; a passing test returns as soon as it comes.
 */
export const EVENT_WAIT_MS = 30_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined, or throws after timeoutMs with `what`. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => T | undefined | Promise<T | undefined>,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
