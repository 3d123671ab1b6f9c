// The shipped systemd unit read as systemd reads the parts the tests apply by hand:
// its capability bounding set and its system call filter, expanded with
// `systemd-analyze syscall-filter` to the names systemd would allow.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './cli.js';

export const UNIT_PATH = join(REPO, 'service', 'rarecon.service');

export function unitSettings(name: string, text = readFileSync(UNIT_PATH, 'utf8')): string[] {
  return [...text.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => (m[1] ?? '').trim());
}

/** The unit's CapabilityBoundingSet, e.g. ['CAP_BPF', 'CAP_PERFMON']. */
export function unitCapabilities(): string[] {
  return unitSettings('CapabilityBoundingSet')
    .flatMap((l) => l.split(/\s+/))
    .filter((c) => c !== '');
}

const groups = new Map<string, string[]>();

/** The system calls of a group (@system-service), nested groups expanded. */
export function syscallGroup(group: string): string[] {
  const known = groups.get(group);
  if (known !== undefined) return known;
  const r = spawnSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`systemd-analyze syscall-filter ${group}: ${r.stderr || r.error?.message}`);
  const names: string[] = [];
  for (const raw of r.stdout.split('\n').slice(1)) {
    const l = raw.trim();
    if (l === '' || l.startsWith('#')) continue;
    if (l.startsWith('@')) names.push(...syscallGroup(l));
    else names.push(l);
  }
  groups.set(group, names);
  return names;
}

/** What the unit's SystemCallFilter= lines allow: the first allow list, less every ~ line, as systemd applies them. */
export function unitSyscalls(): string[] {
  const allowed = new Set<string>();
  const expand = (tokens: string[]): string[] => tokens.flatMap((t) => (t.startsWith('@') ? syscallGroup(t) : [t]));
  for (const line of unitSettings('SystemCallFilter')) {
    const deny = line.startsWith('~');
    const tokens = (deny ? line.slice(1) : line).split(/\s+/).filter((t) => t !== '');
    for (const s of expand(tokens)) {
      if (deny) allowed.delete(s);
      else allowed.add(s);
    }
  }
  return [...allowed].sort();
}

/**
 * The command prefix that runs a program under the unit's restrictions without
 * systemd: its capability bounding set (setpriv) and its system call filter with
 * EPERM and no_new_privs (seccomp-exec.c, built once into the temp folder).
 */
export function unitSandbox(): string[] {
  const bin = join(tmpdir(), `rarecon-seccomp-exec-${process.getuid?.() ?? 0}`);
  if (!existsSync(bin)) {
    mkdirSync(tmpdir(), { recursive: true });
    execFileSync('cc', ['-O1', '-Wall', '-o', `${bin}.tmp${process.pid}`, join(REPO, 'test', 'support', 'seccomp-exec.c'), '-lseccomp']);
    execFileSync('mv', [`${bin}.tmp${process.pid}`, bin]);
  }
  const caps = unitCapabilities().map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  return ['setpriv', `--bounding-set=-all,${caps.join(',')}`, '--inh-caps=-all', bin, unitSyscalls().join(','), '--'];
}
