// OCSF 1.3 Detection Finding (class_uid 2004), the canonical form of an alert (DETECTION.md section 7).
// Checked against the OCSF server's validation rules on schema 1.3.0 (test/model/ocsf.test.ts):
// no attribute outside the schema, every required one there, enum ids with their captions.
import { REVERSE_DNS_NOTE, type Alert, type DetectionAlert, type HealthAlert, type Tier } from './alert.js';
import type { ParentInfo, ProcessInfo, Protocol } from './records.js';
import { PRODUCT_VERSION } from './product.js';
import { basename, extension, signerEvidence } from './signer-evidence.js';

const OCSF_VERSION = '1.3.0';
const CLASS_UID = 2004;
const ACTIVITY_CREATE = 1;
/** `device` and `actor` belong to the host profile: a finding that carries them says so. */
const PROFILES = ['host'];

const TACTIC_C2 = { uid: 'TA0011', name: 'Command and Control' };
const TECHNIQUE_APP_PROTOCOL = { uid: 'T1071', name: 'Application Layer Protocol' };
const TACTIC_DEFENSE_EVASION = { uid: 'TA0005', name: 'Defense Evasion' };
const TECHNIQUE_INJECTION = { uid: 'T1055', name: 'Process Injection' };
const ATTACK_VERSION = '15.1';

const SEVERITY_LABEL: Record<number, string> = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' };
/** How sure the combination is globally rare: the fewer observers, the surer (confidence_id 1 Low, 2 Medium, 3 High). */
const CONFIDENCE: Record<Exclude<Tier, 'common'>, [number, string]> = {
  'very-rare': [3, 'High'],
  rare: [2, 'Medium'],
  uncommon: [1, 'Low'],
};
const PROTOCOL_NUM: Record<Protocol, number> = { tcp: 6, udp: 17 };
const FILE_REGULAR = { type_id: 1, type: 'Regular File' };

export type OcsfFinding = Record<string, unknown>;
type Json = Record<string, unknown>;

/** Sets only the values that are there: OCSF reads a null as a missing attribute, so none is written. */
function put(o: Json, key: string, value: unknown): void {
  if (value !== null && value !== undefined) o[key] = value;
}

function fileOf(path: string): Json {
  const name = basename(path);
  const f: Json = { name, path };
  put(f, 'ext', extension(name));
  return Object.assign(f, FILE_REGULAR);
}

function imageFile(p: ProcessInfo): Json | null {
  if (p.path === null && p.sha256 === null) return null;
  // A file object needs a name; an image known only by its hash is named by it.
  const f: Json = p.path === null ? Object.assign({ name: p.sha256 }, FILE_REGULAR) : fileOf(p.path);
  if (p.sha256 !== null) f.hashes = [{ algorithm_id: 3, algorithm: 'SHA-256', value: p.sha256 }];
  const s = signerEvidence(p.signer);
  if (s.kind === 'package') {
    // A package database vouching for the file: who ships it, not a signature over it.
    const product: Json = { name: s.name, vendor_name: s.vendor };
    put(product, 'version', s.version);
    f.product = product;
    f.company_name = s.vendor;
  } else if (s.kind === 'signature') {
    // Sysmon's signature: Authenticode, its signer's name and whether Windows found it valid.
    const sig: Json = { algorithm_id: 4, algorithm: 'Authenticode' };
    if (s.status === 'valid') Object.assign(sig, { state_id: 1, state: 'Valid' });
    f.signature = sig;
    f.company_name = s.subject;
  }
  return f;
}

/** The process's own id, or (a log that gave neither pid nor one) an id rarecon makes from the host and image. */
function processUid(p: ProcessInfo, hostId: string): string | null {
  if (p.uid !== undefined && p.uid !== null) return p.uid;
  return p.pid === 0 ? `${hostId}:${p.sha256 ?? p.path ?? 'unknown'}` : null;
}

function parentProcess(p: ParentInfo): Json | null {
  // A process object needs a pid or a uid; a parent known by neither is left out.
  if (p.pid === null) return null;
  const out: Json = { pid: p.pid };
  if (p.path !== null) {
    out.name = basename(p.path);
    out.file = fileOf(p.path);
  }
  put(out, 'cmd_line', p.cmdline);
  return out;
}

function ocsfProcess(p: ProcessInfo, hostId: string): Json {
  const out: Json = {};
  // pid 0 means the log did not say (Sysmon exports without ProcessId); leave it out.
  if (p.pid !== 0) out.pid = p.pid;
  put(out, 'uid', processUid(p, hostId));
  put(out, 'tid', p.tid);
  if (p.path !== null) out.name = basename(p.path);
  put(out, 'created_time', p.startTimeMs);
  put(out, 'cmd_line', p.cmdline);
  if (p.user !== null) out.user = { name: p.user };
  put(out, 'file', imageFile(p));
  if (p.parent !== null) put(out, 'parent_process', parentProcess(p.parent));
  // Only the libraries loaded from unusual places are listed (the evidence), not every module.
  if (p.unusualLibraries.length > 0) out.loaded_modules = [...p.unusualLibraries];
  return out;
}

function product(): Json {
  return { name: 'rarecon', vendor_name: 'rarecon project', version: PRODUCT_VERSION };
}

function metadata(a: Alert, labels: string[]): Json {
  return {
    version: OCSF_VERSION,
    uid: a.uid,
    product: product(),
    profiles: PROFILES,
    labels,
    log_name: 'alerts',
    log_provider: 'rarecon',
    tenant_uid: a.host.org,
  };
}

/**
 * The class, activity, severity and status fields every finding starts with.
 * Callers add their fields with Object.assign, not an object spread: on Node 20
 * a spread copy left about 4 KB a finding in the old generation (measured), which
 * pushed `rarecon score` over its memory target while it wrote 30,000 alerts.
 */
function classHeader(a: Alert): Json {
  return {
    category_uid: 2,
    category_name: 'Findings',
    class_uid: CLASS_UID,
    class_name: 'Detection Finding',
    activity_id: ACTIVITY_CREATE,
    activity_name: 'Create',
    type_uid: CLASS_UID * 100 + ACTIVITY_CREATE,
    type_name: 'Detection Finding: Create',
    severity_id: a.severityId,
    severity: SEVERITY_LABEL[a.severityId],
    status_id: 1,
    status: 'New',
    time: a.firstSeenMs,
    start_time: a.firstSeenMs,
    end_time: a.lastSeenMs,
    timezone_offset: 0,
    count: a.count,
  };
}

function device(a: Alert): Json {
  const d: Json = { uid: a.host.id, hostname: a.host.name ?? a.host.id, type_id: 0, type: 'Unknown' };
  d.org = { uid: a.host.org };
  return d;
}

function observables(a: DetectionAlert, process: Json): Json[] {
  const out: Json[] = [
    { name: 'device.hostname', type_id: 1, type: 'Hostname', value: a.host.name ?? a.host.id },
    { name: 'evidences[0].dst_endpoint.ip', type_id: 2, type: 'IP Address', value: a.connection.ip },
    { name: 'evidences[0].dst_endpoint.hostname', type_id: 1, type: 'Hostname', value: a.connection.hostname },
    { name: 'evidences[0].dst_endpoint.port', type_id: 11, type: 'Port', value: String(a.connection.port) },
  ];
  if (typeof process.name === 'string') out.push({ name: 'actor.process.name', type_id: 9, type: 'Process Name', value: process.name });
  if (a.process.sha256 !== null) {
    out.push({ name: 'actor.process.file.hashes[0].value', type_id: 8, type: 'Hash', value: a.process.sha256 });
  }
  if (a.process.user !== null) out.push({ name: 'actor.process.user.name', type_id: 4, type: 'User Name', value: a.process.user });
  return out;
}

function connectionInfo(a: DetectionAlert): Json {
  return {
    protocol_name: a.connection.protocol,
    protocol_num: PROTOCOL_NUM[a.connection.protocol],
    protocol_ver_id: a.connection.ip.includes(':') ? 6 : 4,
    direction_id: 2,
    direction: 'Outbound',
    // Only connections to public addresses are scored (DETECTION.md section 2).
    boundary_id: 3,
    boundary: 'External',
  };
}

function detectionToOcsf(a: DetectionAlert): OcsfFinding {
  const attacks = [{ tactic: TACTIC_C2, technique: TECHNIQUE_APP_PROTOCOL, version: ATTACK_VERSION }];
  if (a.variationsHeld.includes('injected-thread')) {
    attacks.push({ tactic: TACTIC_DEFENSE_EVASION, technique: TECHNIQUE_INJECTION, version: ATTACK_VERSION });
  }
  const process = ocsfProcess(a.process, a.host.id);
  const [confidenceId, confidence] = CONFIDENCE[a.prevalence.tier];
  const evidence: Json = {
    process,
    dst_endpoint: { ip: a.connection.ip, port: a.connection.port, hostname: a.connection.hostname, domain: a.connection.rootDomain },
    connection_info: connectionInfo(a),
  };
  if (a.connection.localIp !== null) {
    const src: Json = { ip: a.connection.localIp };
    put(src, 'port', a.connection.localPort);
    evidence.src_endpoint = src;
  }
  const finding = Object.assign(classHeader(a), {
    message: `${basename(a.process.path ?? a.process.sha256 ?? '?')} connected to ${a.connection.hostname}:${a.connection.port} (${a.connection.rootDomain}), a combination ${a.prevalence.comboObservers} of ${a.prevalence.populationSize} ${a.prevalence.observerUnit} observers saw${a.connection.hostnameFromReverseDns === true ? REVERSE_DNS_NOTE : ''}`,
    confidence_id: confidenceId,
    confidence,
    metadata: metadata(a, a.connection.hostnameFromReverseDns === true ? [a.variation, 'hostname-from-reverse-dns'] : [a.variation]),
    finding_info: {
      uid: a.uid,
      title: a.name,
      desc: 'A process with a common sha256 connected to an external domain in a specific port that, on a global level, it usually does not connect to.',
      types: a.variationsHeld,
      first_seen_time: a.firstSeenMs,
      last_seen_time: a.lastSeenMs,
      analytic: { name: a.name, uid: `rarecon.${a.variation}`, type_id: 3, type: 'Statistical' },
      attacks,
    },
    device: device(a),
    actor: { process },
    evidences: [evidence],
    observables: observables(a, process),
    enrichments: [
      {
        name: 'global_prevalence',
        type: 'prevalence',
        value: a.prevalence.tier,
        provider: 'rarecon baseline',
        data: {
          process_observers: a.prevalence.processObservers,
          combo_observers: a.prevalence.comboObservers,
          observer_unit: a.prevalence.observerUnit,
          population_size: a.prevalence.populationSize,
          thresholds: a.prevalence.thresholds,
          baseline_version: a.prevalence.baselineVersion,
          window_start_time: a.prevalence.windowStartMs,
          window_end_time: a.prevalence.windowEndMs,
        },
      },
    ],
  }) as Json;
  // What OCSF has no attribute for: the injection verdict, and a signer verdict no signature state carries.
  const unmapped: Json = { injection: { injected: a.injection.injected, indicators: a.injection.indicators } };
  const s = signerEvidence(a.process.signer);
  if (s.kind === 'package' || (s.kind === 'signature' && s.status !== 'valid')) unmapped.signer_status = s.status;
  if (s.kind === 'package' && s.note !== null) unmapped.signer_note = s.note;
  finding.unmapped = unmapped;
  return finding;
}

function healthToOcsf(a: HealthAlert): OcsfFinding {
  return Object.assign(classHeader(a), {
    message: a.reason,
    confidence_id: 3,
    confidence: 'High',
    metadata: metadata(a, ['health']),
    finding_info: {
      uid: a.uid,
      title: a.name,
      desc: a.reason,
      types: ['health'],
      first_seen_time: a.firstSeenMs,
      last_seen_time: a.lastSeenMs,
      analytic: { name: a.name, uid: 'rarecon.safety-valve', type_id: 1, type: 'Rule' },
    },
    device: device(a),
    observables: [{ name: 'device.hostname', type_id: 1, type: 'Hostname', value: a.host.name ?? a.host.id }],
    unmapped: { alerts_in_window: a.alertsInWindow, paused_until_time: a.pausedUntilMs },
  });
}

export function toOcsf(a: Alert): OcsfFinding {
  return a.kind === 'detection' ? detectionToOcsf(a) : healthToOcsf(a);
}
