// OCSF 1.3 Detection Finding (class_uid 2004), the canonical form of an alert (DETECTION.md section 7).
import { REVERSE_DNS_NOTE, type Alert, type DetectionAlert, type HealthAlert } from './alert.js';
import type { ProcessInfo } from './records.js';
import { PRODUCT_VERSION } from './product.js';

const OCSF_VERSION = '1.3.0';
const CLASS_UID = 2004;
const ACTIVITY_CREATE = 1;

const TACTIC_C2 = { uid: 'TA0011', name: 'Command and Control' };
const TECHNIQUE_APP_PROTOCOL = { uid: 'T1071', name: 'Application Layer Protocol' };
const TACTIC_DEFENSE_EVASION = { uid: 'TA0005', name: 'Defense Evasion' };
const TECHNIQUE_INJECTION = { uid: 'T1055', name: 'Process Injection' };

const SEVERITY_LABEL: Record<number, string> = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' };

export type OcsfFinding = Record<string, unknown>;

function ocsfProcess(p: ProcessInfo): Record<string, unknown> {
  return {
    // pid 0 means the log did not say (Sysmon exports without ProcessId); leave it out.
    pid: p.pid === 0 ? undefined : p.pid,
    tid: p.tid ?? undefined,
    created_time: p.startTimeMs ?? undefined,
    cmd_line: p.cmdline ?? undefined,
    user: p.user === null ? undefined : { name: p.user },
    file: {
      path: p.path ?? undefined,
      name: p.path === null ? undefined : basename(p.path),
      hashes: p.sha256 === null ? [] : [{ algorithm_id: 3, algorithm: 'SHA-256', value: p.sha256 }],
      signature: {
        // OCSF digital signature state: 1 Valid, 2 Expired, 3 Revoked, 4 Suspended, 5 Pending, 99 Other
        state_id: p.signer.status === 'valid' ? 1 : 99,
        state: p.signer.status,
        certificate: p.signer.subject === null ? undefined : { subject: p.signer.subject },
        vendor_name: p.signer.vendor ?? undefined,
      },
    },
    parent_process:
      p.parent === null
        ? undefined
        : { pid: p.parent.pid ?? undefined, cmd_line: p.parent.cmdline ?? undefined, file: { path: p.parent.path ?? undefined } },
  };
}

function basename(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}

function product(): Record<string, unknown> {
  return { name: 'rarecon', vendor_name: 'rarecon project', version: PRODUCT_VERSION };
}

/**
 * The class, activity, severity and status fields every finding starts with.
 * Callers add their fields with Object.assign, not an object spread: on Node 20
 * a spread copy left about 4 KB a finding in the old generation (measured), which
 * pushed `rarecon score` over its memory target while it wrote 30,000 alerts.
 */
function classHeader(a: Alert): Record<string, unknown> {
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
    count: a.count,
  };
}

function device(a: Alert): Record<string, unknown> {
  return { uid: a.host.id, hostname: a.host.name ?? a.host.id, org: { uid: a.host.org }, type_id: 0 };
}

function detectionToOcsf(a: DetectionAlert): OcsfFinding {
  const attacks = [{ tactic: TACTIC_C2, technique: TECHNIQUE_APP_PROTOCOL, version: '15.1' }];
  if (a.variationsHeld.includes('injected-thread')) {
    attacks.push({ tactic: TACTIC_DEFENSE_EVASION, technique: TECHNIQUE_INJECTION, version: '15.1' });
  }
  const process = ocsfProcess(a.process);
  return Object.assign(classHeader(a), {
    message: `${basename(a.process.path ?? a.process.sha256 ?? '?')} connected to ${a.connection.hostname}:${a.connection.port} (${a.connection.rootDomain}), a combination ${a.prevalence.comboObservers} of ${a.prevalence.populationSize} ${a.prevalence.observerUnit} observers saw${a.connection.hostnameFromReverseDns === true ? REVERSE_DNS_NOTE : ''}`,
    metadata: {
      version: OCSF_VERSION,
      uid: a.uid,
      product: product(),
      labels: a.connection.hostnameFromReverseDns === true ? [a.variation, 'hostname-from-reverse-dns'] : [a.variation],
    },
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
    evidences: [
      {
        process,
        dst_endpoint: { ip: a.connection.ip, port: a.connection.port, hostname: a.connection.hostname, domain: a.connection.rootDomain },
        src_endpoint: a.connection.localIp === null ? undefined : { ip: a.connection.localIp, port: a.connection.localPort ?? undefined },
        connection_info: { protocol_name: a.connection.protocol, direction_id: 2, direction: 'Outbound' },
      },
    ],
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
    unmapped: {
      injection: a.injection,
      unusual_libraries: a.process.unusualLibraries,
      signer: a.process.signer,
    },
  });
}

function healthToOcsf(a: HealthAlert): OcsfFinding {
  return Object.assign(classHeader(a), {
    message: a.reason,
    metadata: { version: OCSF_VERSION, uid: a.uid, product: product(), labels: ['health'] },
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
    unmapped: { alerts_in_window: a.alertsInWindow, paused_until_time: a.pausedUntilMs },
  });
}

export function toOcsf(a: Alert): OcsfFinding {
  return a.kind === 'detection' ? detectionToOcsf(a) : healthToOcsf(a);
}
