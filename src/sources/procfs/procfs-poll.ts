// The fallback connection source for hosts where eBPF cannot run: poll the
// kernel's socket tables in /proc/net and report each outbound connection the
// first time it shows up, with the process that owns the socket.
import { readdir, readlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { Protocol } from '../../model/records.js';
import { readProc } from '../../common/proc.js';
import { formatIpv6 } from '../../model/address.js';

export const FALLBACK_MISSES =
  'Polling /proc misses connections opened and closed between two polls, cannot tell which thread connected, ' +
  'has no user stacks (so no stack-frame injection check), sees no DNS answers (hostnames come only from other sources), ' +
  'misses UDP datagrams sent without connect(), and times each connection by the poll that saw it, not by the connect call.';

export interface ProcfsConnection {
  /** When the poll that first saw the connection ran (not the connect call itself). */
  timeMs: number;
  /** null when no process holds the socket any more (it exited or closed it between the poll and the fd scan). */
  pid: number | null;
  uid: number;
  protocol: Protocol;
  family: 4 | 6;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  inode: number;
  /** The network namespace (`net:[4026531840]`), so a container's connections are told apart. */
  netns: string;
}

export interface SocketRow {
  protocol: Protocol;
  family: 4 | 6;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  state: number;
  uid: number;
  inode: number;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The kernel prints each 32-bit word of an address as a host-order integer,
 * so on a little-endian machine 127.0.0.1 reads `0100007F`.
 */
export function decodeAddress(hex: string, littleEndian = LITTLE_ENDIAN): { ip: string; family: 4 | 6 } | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (Number.isNaN(word)) return null;
    if (littleEndian) bytes.writeUInt32LE(word, w * 4);
    else bytes.writeUInt32BE(word, w * 4);
  }
  if (bytes.length === 4) return { ip: bytes.join('.'), family: 4 };
  // An IPv4 peer of a dual-stack socket (::ffff:a.b.c.d) is reported as the IPv4 address it is.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { ip: bytes.subarray(12).join('.'), family: 4 };
  }
  return { ip: formatIpv6(bytes), family: 6 };
}

/** Parses one /proc/net/{tcp,tcp6,udp,udp6} table. Bad lines are counted, not fatal. */
export function parseProcNet(text: string, protocol: Protocol): { rows: SocketRow[]; decodeErrors: number } {
  const rows: SocketRow[] = [];
  let decodeErrors = 0;
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const f = line.trim().split(/\s+/);
    const [local, remote, st, uidText, inodeText] = [f[1], f[2], f[3], f[7], f[9]];
    const lc = local?.indexOf(':') ?? -1;
    const rc = remote?.indexOf(':') ?? -1;
    if (local === undefined || remote === undefined || st === undefined || lc === -1 || rc === -1) {
      decodeErrors++;
      continue;
    }
    const l = decodeAddress(local.slice(0, lc));
    const r = decodeAddress(remote.slice(0, rc));
    const state = parseInt(st, 16);
    const uid = Number(uidText);
    const inode = Number(inodeText);
    if (l === null || r === null || Number.isNaN(state) || !Number.isInteger(uid) || !Number.isInteger(inode)) {
      decodeErrors++;
      continue;
    }
    rows.push({
      protocol,
      family: r.family === 4 && l.family === 4 ? 4 : 6,
      localIp: l.ip,
      localPort: parseInt(local.slice(lc + 1), 16),
      remoteIp: r.ip,
      remotePort: parseInt(remote.slice(rc + 1), 16),
      state,
      uid,
      inode,
    });
  }
  return { rows, decodeErrors };
}

// include/net/tcp_states.h
const TCP_ESTABLISHED = 1;
const TCP_SYN_SENT = 2;
const TCP_LISTEN = 10;
const TCP_CLOSE = 7;
// A connection that closed since the last poll still has its owner in these states: report it rather than miss it.
const TCP_CLOSING_STATES = new Set([3 /* FIN_WAIT1 */, 4 /* FIN_WAIT2 */, 8 /* CLOSE_WAIT */, 9 /* LAST_ACK */, 11 /* CLOSING */]);

/**
 * Outbound connections among the rows of one network namespace: TCP sockets
 * that are connecting or connected (or closing, still owned) and connected UDP
 * sockets, whose local port no listener holds (an accepted inbound connection
 * shares its listener's port).
 */
export function outboundRows(rows: readonly SocketRow[]): SocketRow[] {
  const tcpListening = new Set<number>();
  const udpBound = new Set<number>();
  for (const r of rows) {
    if (r.protocol === 'tcp' && r.state === TCP_LISTEN) tcpListening.add(r.localPort);
    if (r.protocol === 'udp' && r.state === TCP_CLOSE && r.remotePort === 0) udpBound.add(r.localPort);
  }
  return rows.filter((r) => {
    if (r.remotePort === 0) return false;
    if (r.protocol === 'tcp') {
      const live = r.state === TCP_ESTABLISHED || r.state === TCP_SYN_SENT || (TCP_CLOSING_STATES.has(r.state) && r.inode !== 0);
      return live && !tcpListening.has(r.localPort);
    }
    return r.state === TCP_ESTABLISHED && !udpBound.has(r.localPort);
  });
}

export interface ProcfsPollOptions {
  intervalMs?: number | undefined;
  procRoot?: string | undefined;
  /** Records waiting for the consumer; beyond this they are dropped and counted. */
  queueMax?: number | undefined;
  /** Report the connections already open at start (their time is the first poll's). */
  includeExistingAtStart?: boolean | undefined;
  /** Also read the tables of other network namespaces (containers). */
  allNetNamespaces?: boolean | undefined;
}

export interface ProcfsPollStats {
  receivedTotal: number;
  droppedTotal: number;
  decodeErrorsTotal: number;
  pollsTotal: number;
  pollErrorsTotal: number;
  pidUnresolvedTotal: number;
  fdScansTotal: number;
  lastPollMs: number;
  namespaces: number;
}

const TABLES: ReadonlyArray<readonly [string, Protocol]> = [
  ['tcp', 'tcp'],
  ['tcp6', 'tcp'],
  ['udp', 'udp'],
  ['udp6', 'udp'],
];

export class ProcfsPollSource {
  readonly name = 'procfs_poll';
  private readonly intervalMs: number;
  private readonly procRoot: string;
  private readonly queueMax: number;
  private readonly includeExistingAtStart: boolean;
  private readonly allNetNamespaces: boolean;
  private previous: Set<string> | null = null;
  private readonly inodeToPid = new Map<number, number>();
  private readonly pidToNetns = new Map<number, string>();
  private ownNetns: string | null = null;
  private readonly counters: ProcfsPollStats = {
    receivedTotal: 0,
    droppedTotal: 0,
    decodeErrorsTotal: 0,
    pollsTotal: 0,
    pollErrorsTotal: 0,
    pidUnresolvedTotal: 0,
    fdScansTotal: 0,
    lastPollMs: 0,
    namespaces: 0,
  };

  constructor(opts: ProcfsPollOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.procRoot = opts.procRoot ?? '/proc';
    this.queueMax = opts.queueMax ?? 10_000;
    this.includeExistingAtStart = opts.includeExistingAtStart ?? true;
    this.allNetNamespaces = opts.allNetNamespaces ?? true;
    if (!(this.intervalMs > 0)) throw new RangeError(`procfs poll intervalMs must be positive, got ${this.intervalMs}`);
  }

  async probe(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      await readProc(`${this.procRoot}/self/net/tcp`);
    } catch (err) {
      return { ok: false, reason: `cannot read ${this.procRoot}/self/net/tcp: ${(err as Error).message}` };
    }
    try {
      await readdir(`${this.procRoot}/1/fd`);
    } catch {
      return {
        ok: false,
        reason: `cannot read ${this.procRoot}/1/fd: mapping sockets to processes needs root (or CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)`,
      };
    }
    return { ok: true };
  }

  stats(): ProcfsPollStats {
    return { ...this.counters };
  }

  /** Polls every `intervalMs` until `signal` fires; the consumer's pace never delays a poll. */
  async *run(signal: AbortSignal): AsyncGenerator<ProcfsConnection> {
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) stop.abort();
    let queue: ProcfsConnection[] = [];
    let head = 0;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    stop.signal.addEventListener('abort', notify, { once: true });
    const poller = (async () => {
      while (!stop.signal.aborted) {
        const started = Date.now();
        const found = await this.pollOnce();
        for (const c of found) {
          if (queue.length - head >= this.queueMax) this.counters.droppedTotal++;
          else queue.push(c);
        }
        if (found.length > 0) notify();
        await sleep(Math.max(0, this.intervalMs - (Date.now() - started)), stop.signal);
      }
    })();
    try {
      for (;;) {
        if (head < queue.length) {
          const next = queue[head++] as ProcfsConnection;
          if (head > 1_024 && head * 2 > queue.length) {
            queue = queue.slice(head);
            head = 0;
          }
          yield next;
        } else if (stop.signal.aborted) break;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
      await poller;
    }
  }

  /** One poll: the outbound connections not seen by the previous poll. Never throws. */
  async pollOnce(): Promise<ProcfsConnection[]> {
    const timeMs = Date.now();
    this.counters.pollsTotal++;
    const namespaces = await this.namespaces();
    this.counters.namespaces = namespaces.size;
    const current = new Set<string>();
    const liveInodes = new Set<number>();
    const fresh: Array<{ row: SocketRow; netns: string }> = [];
    for (const [netns, base] of namespaces) {
      // The kernel walks every hash bucket to print a table, so the four are read side by side.
      const texts = await Promise.all(
        TABLES.map(([file]) =>
          readProc(`${base}/net/${file}`).then(
            (b) => b.toString('latin1'),
            (err: unknown) => {
              // IPv6 may be disabled (no tcp6 file); a namespace's last process may just have exited.
              if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.counters.pollErrorsTotal++;
              return null;
            },
          ),
        ),
      );
      const rows: SocketRow[] = [];
      texts.forEach((text, i) => {
        if (text === null) return;
        const parsed = parseProcNet(text, (TABLES[i] as readonly [string, Protocol])[1]);
        this.counters.decodeErrorsTotal += parsed.decodeErrors;
        for (const r of parsed.rows) rows.push(r);
      });
      for (const row of rows) if (row.inode !== 0) liveInodes.add(row.inode);
      for (const row of outboundRows(rows)) {
        const key = `${netns}|${row.protocol}|${row.localIp}|${row.localPort}|${row.remoteIp}|${row.remotePort}|${row.inode}`;
        current.add(key);
        if (this.previous === null ? this.includeExistingAtStart : !this.previous.has(key)) fresh.push({ row, netns });
      }
    }
    this.previous = current;
    // Inode numbers are reused: forget the sockets that are gone.
    for (const inode of this.inodeToPid.keys()) if (!liveInodes.has(inode)) this.inodeToPid.delete(inode);
    const unknown = new Set(fresh.map((f) => f.row.inode).filter((i) => i !== 0 && !this.inodeToPid.has(i)));
    if (unknown.size > 0) await this.scanFds(unknown);

    const out: ProcfsConnection[] = fresh.map(({ row, netns }) => {
      const pid = this.inodeToPid.get(row.inode) ?? null;
      if (pid === null) this.counters.pidUnresolvedTotal++;
      return {
        timeMs,
        pid,
        uid: row.uid,
        protocol: row.protocol,
        family: row.family,
        localIp: row.localIp,
        localPort: row.localPort,
        remoteIp: row.remoteIp,
        remotePort: row.remotePort,
        inode: row.inode,
        netns,
      };
    });
    this.counters.receivedTotal += out.length;
    this.counters.lastPollMs = Date.now() - timeMs;
    return out;
  }

  /**
   * netns id -> a /proc folder whose net/ shows it. Ours is read through
   * `self`; another is read through any process inside it, found by checking
   * only the pids that appeared since the last poll.
   */
  private async namespaces(): Promise<Map<string, string>> {
    this.ownNetns ??= await readlink(`${this.procRoot}/self/ns/net`).catch(() => 'net:[self]');
    const out = new Map<string, string>([[this.ownNetns, `${this.procRoot}/self`]]);
    if (!this.allNetNamespaces) return out;
    const pids = await this.pids();
    const alive = new Set(pids);
    for (const pid of this.pidToNetns.keys()) if (!alive.has(pid)) this.pidToNetns.delete(pid);
    const added = pids.filter((p) => !this.pidToNetns.has(p));
    await Promise.all(
      added.map(async (pid) => {
        const ns = await readlink(`${this.procRoot}/${pid}/ns/net`).catch(() => null);
        if (ns !== null) this.pidToNetns.set(pid, ns);
      }),
    );
    for (const [pid, ns] of this.pidToNetns) if (!out.has(ns)) out.set(ns, `${this.procRoot}/${pid}`);
    return out;
  }

  private async pids(): Promise<number[]> {
    const names = await readdir(this.procRoot).catch(() => [] as string[]);
    const pids: number[] = [];
    for (const n of names) {
      const c = n.charCodeAt(0);
      if (c >= 48 && c <= 57) pids.push(Number(n));
    }
    return pids;
  }

  /**
   * Finds the owners of `wanted` socket inodes in /proc/<pid>/fd. Newest pids
   * first (a new connection most likely belongs to a recent process), stopping
   * once every inode is found.
   */
  private async scanFds(wanted: Set<number>): Promise<void> {
    this.counters.fdScansTotal++;
    const pids = (await this.pids()).sort((a, b) => b - a);
    let remaining = wanted.size;
    for (let i = 0; i < pids.length && remaining > 0; i += 16) {
      await Promise.all(
        pids.slice(i, i + 16).map(async (pid) => {
          const fdDir = `${this.procRoot}/${pid}/fd`;
          const fds = await readdir(fdDir).catch(() => [] as string[]);
          for (const fd of fds) {
            const link = await readlink(`${fdDir}/${fd}`).catch(() => '');
            if (!link.startsWith('socket:[')) continue;
            const inode = Number(link.slice(8, -1));
            // Every owner's inode is remembered, so later connections from this process need no scan.
            if (!this.inodeToPid.has(inode)) {
              this.inodeToPid.set(inode, pid);
              if (wanted.has(inode)) remaining--;
            }
          }
        }),
      );
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
