// The writer of rarecon's own NDJSON record format (DETECTION.md section 10):
// what `rarecon run --record` appends and the replay reader
// (sources/replay/ndjson-reader.ts) reads back.
import type { HostRef, ProcessInfo, SourceRecord } from './records.js';
import { rfc3339Time } from './time-text.js';

/** RFC 3339 where it can write the time (years 0 to 9999), else the epoch milliseconds the reader also takes: never a throw. */
function timeJson(ms: number): string | number {
  return rfc3339Time(ms) ?? ms;
}

type JsonObject = Record<string, unknown>;

function hostJson(h: HostRef): JsonObject {
  const out: JsonObject = { id: h.id, org: h.org };
  if (h.name !== undefined) out.name = h.name;
  return out;
}

function processJson(p: ProcessInfo): JsonObject {
  const out: JsonObject = { pid: p.pid };
  if (p.tid !== null) out.tid = p.tid;
  if (p.startTimeMs !== null) out.startTime = timeJson(p.startTimeMs);
  if (p.path !== null) out.path = p.path;
  if (p.sha256 !== null) out.sha256 = p.sha256;
  out.signer = { status: p.signer.status, subject: p.signer.subject, vendor: p.signer.vendor };
  out.injection = { injected: p.injection.injected, indicators: [...p.injection.indicators] };
  if (p.cmdline !== null) out.cmdline = p.cmdline;
  if (p.user !== null) out.user = p.user;
  if (p.parent !== null) out.parent = { pid: p.parent.pid, path: p.parent.path, cmdline: p.parent.cmdline };
  if (p.unusualLibraries.length > 0) out.unusualLibraries = [...p.unusualLibraries];
  return out;
}

/**
 * The section-10 object for a record (what `rarecon run --record` appends).
 * Null and empty optional fields are left out; `parseRareconRecord` reads them back as such.
 */
export function toRareconRecord(r: SourceRecord): JsonObject {
  const head: JsonObject = { type: r.type, time: timeJson(r.timeMs), host: hostJson(r.host) };
  switch (r.type) {
    case 'dns':
      return { ...head, query: r.query, answers: r.answers.map((a) => ({ ip: a.ip, ttl: a.ttl })) };
    case 'process':
      return r.path === null ? { ...head, sha256: r.sha256 } : { ...head, sha256: r.sha256, path: r.path };
    case 'connection': {
      const remote: JsonObject = { ip: r.remote.ip, port: r.remote.port };
      if (r.remote.hostname !== null) remote.hostname = r.remote.hostname;
      const out: JsonObject = { ...head, direction: r.direction, process: processJson(r.process), protocol: r.protocol, remote };
      if (r.local !== null) out.local = { ip: r.local.ip, port: r.local.port };
      return out;
    }
  }
}
