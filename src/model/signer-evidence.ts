// What a signer verdict is, for the renderings: a package database vouching
// for a file (dpkg/rpm on Linux) is not a code signature. The Linux signer
// (enrich/signer-linux.ts) writes its subject as "<vendor> package <name>
// [<version>] [(notes)]"; Sysmon's Signature text (Authenticode) is both
// subject and vendor. Both arrive the same way from NDJSON records.
import type { Signer, SignerStatus } from './records.js';

export type SignerEvidence =
  | { kind: 'package'; status: SignerStatus; vendor: string; name: string; version: string | null; note: string | null }
  | { kind: 'signature'; status: SignerStatus; subject: string }
  | { kind: 'none'; status: SignerStatus };

const PACKAGE_SUBJECT = /^(.+?) package (\S+)(?: ([^\s(;]+))?\s*(.*)$/;

export function signerEvidence(s: Signer): SignerEvidence {
  const subject = s.subject ?? '';
  const m = PACKAGE_SUBJECT.exec(subject);
  if (m !== null) {
    const note = (m[4] ?? '').replace(/^[;\s]+/, '').trim();
    return {
      kind: 'package',
      status: s.status,
      vendor: m[1] ?? '',
      name: m[2] ?? '',
      version: m[3] ?? null,
      note: note === '' ? null : note,
    };
  }
  if ((s.status === 'valid' || s.status === 'invalid') && subject !== '') return { kind: 'signature', status: s.status, subject };
  return { kind: 'none', status: s.status };
}

export function basename(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}

/** The extension without its dot ("exe"), or null. A leading dot (".bashrc") is not one. */
export function extension(name: string): string | null {
  const i = name.lastIndexOf('.');
  return i <= 0 || i === name.length - 1 ? null : name.slice(i + 1);
}
