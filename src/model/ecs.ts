// Elastic Common Schema rendering for SIEMs that want it (DETECTION.md section 7).
import { REVERSE_DNS_NOTE, type Alert } from './alert.js';
import { PRODUCT_VERSION } from './product.js';
import { isoTime } from './time-text.js';

export type EcsDocument = Record<string, unknown>;

const ECS_SEVERITY: Record<number, number> = { 1: 21, 2: 47, 3: 73, 4: 99 };

/** Total: a time no Date holds is left out rather than thrown on (model/time-text.ts). */
export function toEcs(a: Alert): EcsDocument {
  // Fields every document has; the rest are added with Object.assign (see classHeader in ocsf.ts for why not a spread).
  const common = {
    '@timestamp': isoTime(a.firstSeenMs),
    ecs: { version: '8.11.0' },
    event: {
      kind: 'alert',
      category: a.kind === 'detection' ? ['network', 'intrusion_detection'] : ['host'],
      type: a.kind === 'detection' ? ['connection', 'info'] : ['info'],
      id: a.uid,
      severity: ECS_SEVERITY[a.severityId],
      start: isoTime(a.firstSeenMs),
      end: isoTime(a.lastSeenMs),
      count: a.count,
      provider: 'rarecon',
    },
    host: { id: a.host.id, name: a.host.name ?? a.host.id },
    organization: { id: a.host.org },
    observer: { product: 'rarecon', vendor: 'rarecon project', version: PRODUCT_VERSION, type: 'endpoint' },
  };
  if (a.kind === 'health') {
    return Object.assign(common, {
      message: a.reason,
      rule: { name: a.name, id: 'rarecon.safety-valve', category: 'health' },
      labels: { paused_until: isoTime(a.pausedUntilMs), alerts_in_window: a.alertsInWindow },
    });
  }
  const p = a.process;
  const technique = [{ id: 'T1071', name: 'Application Layer Protocol', reference: 'https://attack.mitre.org/techniques/T1071/' }];
  const tactic = { id: 'TA0011', name: 'Command and Control', reference: 'https://attack.mitre.org/tactics/TA0011/' };
  const threat: unknown[] = [{ framework: 'MITRE ATT&CK', tactic, technique }];
  if (a.variationsHeld.includes('injected-thread')) {
    threat.push({
      framework: 'MITRE ATT&CK',
      tactic: { id: 'TA0005', name: 'Defense Evasion', reference: 'https://attack.mitre.org/tactics/TA0005/' },
      technique: [{ id: 'T1055', name: 'Process Injection', reference: 'https://attack.mitre.org/techniques/T1055/' }],
    });
  }
  return Object.assign(common, {
    message: `${p.path ?? p.sha256 ?? 'a process'} connected to ${a.connection.hostname}:${a.connection.port}, a root-domain port combination seen by ${a.prevalence.comboObservers} ${a.prevalence.observerUnit} observers${a.connection.hostnameFromReverseDns === true ? REVERSE_DNS_NOTE : ''}`,
    rule: {
      name: a.name,
      id: `rarecon.${a.variation}`,
      category: 'Global Anomaly Analytics',
      description:
        'A process with a common sha256 connected to an external domain in a specific port that, on a global level, it usually does not connect to.',
      ruleset: 'rarecon',
    },
    threat,
    tags: a.variationsHeld,
    process: {
      pid: p.pid === 0 ? undefined : p.pid,
      thread: p.tid === null ? undefined : { id: p.tid },
      start: isoTime(p.startTimeMs),
      executable: p.path ?? undefined,
      command_line: p.cmdline ?? undefined,
      hash: p.sha256 === null ? undefined : { sha256: p.sha256 },
      code_signature: {
        exists: p.signer.status !== 'unsigned',
        valid: p.signer.status === 'valid',
        status: p.signer.status,
        subject_name: p.signer.subject ?? undefined,
        signing_id: p.signer.vendor ?? undefined,
      },
      parent:
        p.parent === null
          ? undefined
          : { pid: p.parent.pid ?? undefined, executable: p.parent.path ?? undefined, command_line: p.parent.cmdline ?? undefined },
    },
    user: p.user === null ? undefined : { name: p.user },
    destination: {
      ip: a.connection.ip,
      port: a.connection.port,
      domain: a.connection.hostname,
      registered_domain: a.connection.rootDomain,
    },
    source: a.connection.localIp === null ? undefined : { ip: a.connection.localIp, port: a.connection.localPort ?? undefined },
    network: { transport: a.connection.protocol, direction: 'egress' },
    rarecon: {
      variation: a.variation,
      hostname_source: a.connection.hostnameFromReverseDns === true ? 'reverse-dns' : undefined,
      prevalence: a.prevalence,
      injection: a.injection,
      unusual_libraries: p.unusualLibraries,
    },
  });
}
