// Elastic Common Schema rendering for SIEMs that want it (DETECTION.md section 7).
// Every field is an ECS 8.11 field of the type ECS gives it, or rarecon's own under
// `rarecon.*` in snake_case (checked against ECS's field list in test/model/ecs.test.ts).
import { REVERSE_DNS_NOTE, type Alert, type DetectionAlert } from './alert.js';
import type { ProcessInfo } from './records.js';
import { PRODUCT_VERSION } from './product.js';
import { basename, signerEvidence } from './signer-evidence.js';
import { isoTime } from './time-text.js';

export type EcsDocument = Record<string, unknown>;
type Json = Record<string, unknown>;

/**
 * event.severity on the scale of Elastic Security's detection rules (low 21,
 * medium 47, high 73, critical 99): High is high, not critical; Informational
 * sits below low.
 */
const ECS_SEVERITY: Record<number, number> = { 1: 10, 2: 21, 3: 47, 4: 73 };
const IANA_PROTOCOL: Record<string, string> = { tcp: '6', udp: '17' };

function put(o: Json, key: string, value: unknown): void {
  if (value !== null && value !== undefined) o[key] = value;
}

// A time no Date holds is left out (JSON drops undefined) rather than thrown on.
const iso = isoTime;

function threat(a: DetectionAlert): Json {
  const tactics = [{ id: 'TA0011', name: 'Command and Control' }];
  const techniques = [{ id: 'T1071', name: 'Application Layer Protocol' }];
  if (a.variationsHeld.includes('injected-thread')) {
    tactics.push({ id: 'TA0005', name: 'Defense Evasion' });
    techniques.push({ id: 'T1055', name: 'Process Injection' });
  }
  // ECS's threat fields are one object whose ids, names and references are parallel lists.
  return {
    framework: 'MITRE ATT&CK',
    tactic: {
      id: tactics.map((t) => t.id),
      name: tactics.map((t) => t.name),
      reference: tactics.map((t) => `https://attack.mitre.org/tactics/${t.id}/`),
    },
    technique: {
      id: techniques.map((t) => t.id),
      name: techniques.map((t) => t.name),
      reference: techniques.map((t) => `https://attack.mitre.org/techniques/${t.id}/`),
    },
  };
}

function process(p: ProcessInfo): Json {
  const out: Json = {};
  if (p.pid !== 0) out.pid = p.pid;
  put(out, 'entity_id', p.uid);
  if (p.path !== null) {
    out.name = basename(p.path);
    out.executable = p.path;
  }
  if (p.tid !== null) out.thread = { id: p.tid };
  if (p.startTimeMs !== null) out.start = iso(p.startTimeMs);
  put(out, 'command_line', p.cmdline);
  if (p.sha256 !== null) out.hash = { sha256: p.sha256 };
  const s = signerEvidence(p.signer);
  // code_signature is for a signature over the file; a package database's word goes under rarecon.package.
  if (s.kind === 'signature') out.code_signature = { exists: true, subject_name: s.subject, valid: s.status === 'valid' };
  else if (s.status === 'unsigned') out.code_signature = { exists: false };
  if (p.parent !== null) {
    const parent: Json = {};
    put(parent, 'pid', p.parent.pid);
    if (p.parent.path !== null) {
      parent.name = basename(p.parent.path);
      parent.executable = p.parent.path;
    }
    put(parent, 'command_line', p.parent.cmdline);
    if (Object.keys(parent).length > 0) out.parent = parent;
  }
  return out;
}

function rareconFields(a: DetectionAlert): Json {
  const pr = a.prevalence;
  const t = pr.thresholds;
  const out: Json = {
    variation: a.variation,
    count: a.count,
    prevalence: {
      tier: pr.tier,
      process_observers: pr.processObservers,
      combo_observers: pr.comboObservers,
      observer_unit: pr.observerUnit,
      population_size: pr.populationSize,
      baseline_version: pr.baselineVersion,
      window_start: iso(pr.windowStartMs),
      window_end: iso(pr.windowEndMs),
      thresholds: {
        uncommon_below_observers: t.uncommonBelowObservers,
        rare_max_observers: t.rareMaxObservers,
        very_rare_max_observers: t.veryRareMaxObservers,
        common_process_min_observers: t.commonProcessMinObservers,
      },
    },
    injection: { injected: a.injection.injected, indicators: a.injection.indicators },
    unusual_libraries: a.process.unusualLibraries,
  };
  // The contract's opt-in (detect.reverseDnsNames): the alert says its name came from reverse DNS.
  if (a.connection.hostnameFromReverseDns === true) out.hostname_source = 'reverse-dns';
  const s = signerEvidence(a.process.signer);
  if (s.kind === 'package') {
    const pkg: Json = { name: s.name, vendor: s.vendor, status: s.status };
    put(pkg, 'version', s.version);
    put(pkg, 'note', s.note);
    out.package = pkg;
  }
  return out;
}

/** Total: a time no Date holds is left out rather than thrown on (model/time-text.ts). */
export function toEcs(a: Alert): EcsDocument {
  const event: Json = {
    kind: 'alert',
    category: a.kind === 'detection' ? ['network', 'intrusion_detection'] : ['host'],
    // `info` is the type both categories expect (ECS: intrusion_detection takes allowed, denied, info).
    type: ['info'],
    id: a.uid,
    severity: ECS_SEVERITY[a.severityId],
    start: iso(a.firstSeenMs),
    end: iso(a.lastSeenMs),
    provider: 'rarecon',
    module: 'rarecon',
    dataset: 'rarecon.alerts',
  };
  // Fields every document has; the rest are added with Object.assign (see classHeader in ocsf.ts for why not a spread).
  const common = {
    '@timestamp': iso(a.firstSeenMs),
    ecs: { version: '8.11.0' },
    event,
    host: { id: a.host.id, name: a.host.name ?? a.host.id },
    organization: { id: a.host.org },
    observer: { product: 'rarecon', vendor: 'rarecon project', version: PRODUCT_VERSION, type: 'sensor' },
  };
  if (a.kind === 'health') {
    return Object.assign(common, {
      message: a.reason,
      rule: { name: a.name, id: 'rarecon.safety-valve', category: 'health', ruleset: 'rarecon' },
      rarecon: { count: a.count, alerts_in_window: a.alertsInWindow, paused_until: iso(a.pausedUntilMs) },
    });
  }
  const p = a.process;
  const doc: Json = Object.assign(common, {
    message: `${p.path ?? p.sha256 ?? 'a process'} connected to ${a.connection.hostname}:${a.connection.port}, a root-domain port combination seen by ${a.prevalence.comboObservers} ${a.prevalence.observerUnit} observers${a.connection.hostnameFromReverseDns === true ? REVERSE_DNS_NOTE : ''}`,
    rule: {
      name: a.name,
      id: `rarecon.${a.variation}`,
      category: 'Global Anomaly Analytics',
      description:
        'A process with a common sha256 connected to an external domain in a specific port that, on a global level, it usually does not connect to.',
      ruleset: 'rarecon',
    },
    threat: threat(a),
    tags: a.variationsHeld,
    process: process(p),
    destination: {
      ip: a.connection.ip,
      port: a.connection.port,
      domain: a.connection.hostname,
      registered_domain: a.connection.rootDomain,
    },
    network: {
      transport: a.connection.protocol,
      iana_number: IANA_PROTOCOL[a.connection.protocol],
      type: a.connection.ip.includes(':') ? 'ipv6' : 'ipv4',
      direction: 'egress',
    },
    rarecon: rareconFields(a),
  });
  if (p.user !== null) doc.user = { name: p.user };
  if (a.connection.localIp !== null) {
    const source: Json = { ip: a.connection.localIp };
    put(source, 'port', a.connection.localPort);
    doc.source = source;
  }
  return doc;
}
