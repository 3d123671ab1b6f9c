import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readlink } from 'node:fs/promises';
import {
  FALLBACK_MISSES,
  ProcfsPollSource,
  decodeAddress,
  outboundRows,
  parseProcNet,
  type ProcfsConnection,
} from '../../../src/sources/procfs/procfs-poll.js';
import { formatIpv6 } from '../../../src/model/address.js';

const children: ChildProcess[] = [];
const servers: Server[] = [];
const accepted: Socket[] = [];

/** A child node process that connects and holds the connection, printing `ready` once connected. */
async function client(script: string): Promise<number> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`client exited with ${code}`)));
  });
  return child.pid as number;
}

async function listen(host: string): Promise<number> {
  const server = createServer((s) => accepted.push(s));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as { port: number }).port;
}

const ipv6 = spawnSync('sh', ['-c', 'test -e /proc/net/tcp6 && ip -6 addr show lo | grep -q ::1']).status === 0;

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of accepted) s.destroy();
  for (const s of servers) s.close();
});

describe('ProcfsPollSource', () => {
  it('probes fine as root', async () => {
    expect(await new ProcfsPollSource().probe()).toEqual({ ok: true });
  });

  it('sees a long-lived TCP connection to 127.0.0.1 with the right pid, once, and not its inbound side', async () => {
    const source = new ProcfsPollSource({ includeExistingAtStart: false });
    await source.pollOnce();
    const port = await listen('127.0.0.1');
    const pid = await client(`require('net').connect(${port}, '127.0.0.1', () => console.log('ready')); setInterval(() => {}, 1000)`);
    const seen = await source.pollOnce();
    const mine = seen.filter((c) => c.remotePort === port || c.localPort === port);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      pid,
      uid: 0,
      protocol: 'tcp',
      family: 4,
      localIp: '127.0.0.1',
      remoteIp: '127.0.0.1',
      remotePort: port,
      netns: await readlink('/proc/self/ns/net'),
    });
    expect((await source.pollOnce()).filter((c) => c.remotePort === port)).toEqual([]);
    expect(source.stats()).toMatchObject({ pollsTotal: 3, decodeErrorsTotal: 0, droppedTotal: 0 });
  });

  it.skipIf(!ipv6)('sees an IPv6 connection to ::1', async () => {
    const source = new ProcfsPollSource({ includeExistingAtStart: false });
    await source.pollOnce();
    const port = await listen('::1');
    const pid = await client(`require('net').connect(${port}, '::1', () => console.log('ready')); setInterval(() => {}, 1000)`);
    const mine = (await source.pollOnce()).filter((c) => c.remotePort === port);
    expect(mine).toEqual([expect.objectContaining({ pid, family: 6, localIp: '::1', remoteIp: '::1', protocol: 'tcp' })]);
  });

  it('sees a connected UDP socket, not an unconnected server socket', async () => {
    const source = new ProcfsPollSource({ includeExistingAtStart: false });
    await source.pollOnce();
    const server: UdpSocket = createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    const port = server.address().port;
    const pid = await client(
      `const s = require('dgram').createSocket('udp4'); s.connect(${port}, '127.0.0.1', () => console.log('ready')); setInterval(() => {}, 1000)`,
    );
    const udp = (await source.pollOnce()).filter((c) => c.protocol === 'udp' && (c.remotePort === port || c.localPort === port));
    server.close();
    expect(udp).toEqual([expect.objectContaining({ pid, protocol: 'udp', remoteIp: '127.0.0.1', remotePort: port })]);
  });

  it('reports connections open at start unless told not to', async () => {
    const port = await listen('127.0.0.1');
    const pid = await client(`require('net').connect(${port}, '127.0.0.1', () => console.log('ready')); setInterval(() => {}, 1000)`);
    expect((await new ProcfsPollSource().pollOnce()).filter((c) => c.remotePort === port).map((c) => c.pid)).toEqual([pid]);
    expect((await new ProcfsPollSource({ includeExistingAtStart: false }).pollOnce()).filter((c) => c.remotePort === port)).toEqual([]);
  });

  it('yields new connections from run() until aborted', async () => {
    const source = new ProcfsPollSource({ intervalMs: 50, includeExistingAtStart: false });
    const port = await listen('127.0.0.1');
    const ac = new AbortController();
    const got: ProcfsConnection[] = [];
    const consumer = (async () => {
      for await (const c of source.run(ac.signal)) {
        got.push(c);
        if (c.remotePort === port) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 120)); // let the first (silent) poll pass
    const pid = await client(`require('net').connect(${port}, '127.0.0.1', () => console.log('ready')); setInterval(() => {}, 1000)`);
    const timeout = setTimeout(() => ac.abort(), 5_000);
    await consumer;
    clearTimeout(timeout);
    expect(got.find((c) => c.remotePort === port)?.pid).toBe(pid);
    expect(source.stats().receivedTotal).toBeGreaterThanOrEqual(1);
  });

  const netnsOk =
    spawnSync('ip', ['netns', 'add', 'rarecon-poll-probe']).status === 0 &&
    spawnSync('ip', ['netns', 'del', 'rarecon-poll-probe']).status === 0;

  describe.skipIf(!netnsOk)('in another network namespace', () => {
    const ns = `rarecon-poll-${process.pid}`;
    beforeAll(() => {
      for (const args of [
        ['netns', 'add', ns],
        ['-n', ns, 'link', 'set', 'lo', 'up'],
        // On lo: needs no kernel module (a dummy or veth link may not be available).
        ['-n', ns, 'addr', 'add', '203.0.113.1/32', 'dev', 'lo'],
      ]) {
        const r = spawnSync('ip', args, { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
      }
    });
    afterAll(() => {
      for (const c of children) c.kill('SIGKILL');
      spawnSync('ip', ['netns', 'del', ns]);
    });

    it('sees a container-style connection to 203.0.113.1 with its pid and namespace', async () => {
      const source = new ProcfsPollSource({ includeExistingAtStart: false });
      await source.pollOnce();
      const script =
        "const net = require('net'); const srv = net.createServer(() => {}).listen(8443, '203.0.113.1', () => " +
        "net.connect(8443, '203.0.113.1', () => console.log('ready'))); setInterval(() => {}, 1000)";
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      await new Promise<void>((resolve) => child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
      // `ip netns exec` execs node in place, so the child pid is node's.
      const pid = child.pid as number;
      const found = (await source.pollOnce()).filter((c) => c.remoteIp === '203.0.113.1');
      expect(found).toEqual([expect.objectContaining({ pid, remotePort: 8443, localIp: '203.0.113.1', protocol: 'tcp' })]);
      expect(found[0]?.netns).toBe(await readlink(`/proc/${pid}/ns/net`));
      expect(found[0]?.netns).not.toBe(await readlink('/proc/self/ns/net'));
    });
  });
});

describe('parsing /proc/net', () => {
  it('decodes host-order hex addresses', () => {
    expect(decodeAddress('0100007F', true)).toEqual({ ip: '127.0.0.1', family: 4 });
    expect(decodeAddress('7F000001', false)).toEqual({ ip: '127.0.0.1', family: 4 });
    expect(decodeAddress('00000000000000000000000001000000', true)).toEqual({ ip: '::1', family: 6 });
    expect(decodeAddress('0000000000000000FFFF00000A7100CB', true)).toEqual({ ip: '203.0.113.10', family: 4 });
    expect(decodeAddress('B80D0120000000000000000001000000', true)).toEqual({ ip: '2001:db8::1', family: 6 });
    expect(decodeAddress('xyz', true)).toBeNull();
  });

  it('formats IPv6 per RFC 5952', () => {
    const hex = (h: string) => Buffer.from(h, 'hex');
    expect(formatIpv6(hex('20010db8000000000001000000000001'))).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(hex('20010db8000100000001000100010001'))).toBe('2001:db8:1:0:1:1:1:1');
    expect(formatIpv6(hex('00000000000000000000000000000000'))).toBe('::');
  });

  it('counts a malformed line and keeps the rest', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0',
      '   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1',
      '   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1',
      '   3: garbage',
    ].join('\n');
    const { rows, decodeErrors } = parseProcNet(text, 'tcp');
    expect(decodeErrors).toBe(1);
    expect(rows).toHaveLength(3);
    // 2 is the accepted side of the listener on 8080: inbound.
    expect(outboundRows(rows)).toEqual([expect.objectContaining({ localPort: 40000, remotePort: 8080, uid: 1000, inode: 222 })]);
  });

  it('says what the fallback misses', () => {
    expect(FALLBACK_MISSES).toMatch(/between two polls/);
    expect(FALLBACK_MISSES).toMatch(/thread/);
    expect(FALLBACK_MISSES).toMatch(/stack/);
    expect(FALLBACK_MISSES).toMatch(/DNS/);
  });
});
