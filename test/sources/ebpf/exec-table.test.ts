// The eBPF source's table of exec'd images: a connection finds the image its
// process instance exec'd (pid and start time, and the same file), the latest
// exec wins, the helper's handle is named through its own pid, and the table
// stays bounded.
import { describe, expect, it } from 'vitest';
import { ExecTable } from '../../../src/sources/ebpf/ebpf-source.js';
import type { RawConnect, RawExec } from '../../../src/sources/ebpf/wire.js';

function exec(over: Partial<RawExec> = {}): RawExec {
  return {
    type: 'exec',
    seq: 1,
    timeMs: 0,
    realtimeNs: 0n,
    bootNs: 0n,
    processStartBootNs: 5n,
    pid: 100,
    oldTid: 100,
    ppid: 1,
    uid: 1000,
    gid: 1000,
    dev: 2049,
    ino: 77n,
    ctimeNs: 0n,
    nlink: 1,
    memfd: false,
    deleted: false,
    seeded: false,
    path: '/tmp/.x/dropper',
    pathTruncated: false,
    args: ['./dropper'],
    imageFd: 12,
    imageErrno: 0,
    comm: 'dropper',
    ...over,
  };
}

const connect = (over: Partial<RawConnect> = {}): RawConnect =>
  ({ type: 'connect', pid: 100, processStartBootNs: 5n, exe: { dev: 2049, ino: 77n }, ...over }) as RawConnect;

describe('ExecTable', () => {
  it('gives a connection the image its process exec’d, with the helper’s fd as a path', () => {
    const t = new ExecTable();
    t.hello(4242);
    t.exec(exec());
    expect(t.imageOf(connect())).toMatchObject({ path: '/tmp/.x/dropper', heldPath: '/proc/4242/fd/12', args: ['./dropper'] });
    // Another process instance on the same pid, or another file: not this image.
    expect(t.imageOf(connect({ processStartBootNs: 6n }))).toBeNull();
    expect(t.imageOf(connect({ exe: { dev: 2049, ino: 78n } }))).toBeNull();
    expect(t.imageOf(connect({ exe: null }))?.path).toBe('/tmp/.x/dropper');
  });

  it('keeps the latest exec of a process, no handle when the helper holds none, and forgets a helper run’s fds at the next HELLO', () => {
    const t = new ExecTable();
    t.hello(1);
    t.exec(exec());
    t.exec(exec({ path: '/memfd:x', memfd: true, ino: 90n, imageFd: null }));
    expect(t.imageOf(connect({ exe: { dev: 2049, ino: 90n } }))).toMatchObject({ path: '/memfd:x', memfd: true, heldPath: null });
    t.hello(2);
    expect(t.imageOf(connect({ exe: { dev: 2049, ino: 90n } }))).toBeNull();
  });

  it('stays bounded, forgetting the oldest exec first, and forgets an exited process', () => {
    const t = new ExecTable(3);
    t.hello(1);
    for (let pid = 1; pid <= 5; pid++) t.exec(exec({ pid }));
    expect(t.size).toBe(3);
    expect(t.imageOf(connect({ pid: 2 }))).toBeNull();
    expect(t.imageOf(connect({ pid: 5 }))).not.toBeNull();
    t.exit(5, 5n);
    expect(t.imageOf(connect({ pid: 5 }))).toBeNull();
  });
});
