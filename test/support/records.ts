// Builders for records in tests; every field a user would see, defaults plain.
import type { ConnectionEvent, ProcessInfo } from '../../src/model/records.js';

export const SHA_A = 'a'.repeat(64);
export const SHA_B = 'b'.repeat(64);

export function proc(over: Partial<ProcessInfo> = {}): ProcessInfo {
  return {
    pid: 100,
    tid: 101,
    startTimeMs: null,
    path: '/usr/bin/curl',
    sha256: SHA_A,
    signer: { status: 'unsigned', subject: null, vendor: null },
    injection: { injected: false, indicators: [] },
    cmdline: 'curl x',
    user: 'root',
    parent: null,
    unusualLibraries: [],
    ...over,
  };
}

export function conn(over: Partial<ConnectionEvent> & { hostname?: string | null; ip?: string; port?: number } = {}): ConnectionEvent {
  const { hostname = 'c2.example.com', ip = '203.0.113.10', port = 443, ...rest } = over;
  return {
    type: 'connection',
    timeMs: Date.UTC(2026, 9, 1, 12),
    host: { id: 'h1', org: 'o1' },
    process: proc(),
    protocol: 'tcp',
    direction: 'outbound',
    remote: { ip, port, hostname },
    local: null,
    ...rest,
  };
}
