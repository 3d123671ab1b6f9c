// Writes the inputs of the `basic` golden case: history.jsonl (30 days of a
// 12-host fleet, for `rarecon baseline build --unit host`) and today.jsonl
// (the events scored). Run: node test/golden/basic/generate.mjs
// The outputs are committed; expected.ocsf.jsonl is reviewed by hand.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sha = (name) => createHash('sha256').update(name).digest('hex');
export const CURL = sha('curl 7.88.1');
export const RAREBIN = sha('seen on nine hosts');
export const COMMON10 = sha('seen on ten hosts');
const day = (d, h = 10, m = 0) => Date.UTC(2026, 8, 1 + d, h, m); // d=0: 2026-09-01
const hosts = Array.from({ length: 12 }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);

const proc = (sha256, path, extra = {}) => ({
  pid: 4242, tid: 4243, path, sha256,
  signer: { status: 'unsigned', subject: null, vendor: null },
  injection: { injected: false, indicators: [] },
  cmdline: `${path} --silent`, user: 'alice', ...extra,
});
const conn = (time, host, p, ip, port, hostname, extra = {}) => ({
  type: 'connection', time: typeof time === 'number' ? time : time, host: { id: host, org: 'o1', name: `${host}.fleet.example` },
  process: p, protocol: 'tcp', remote: hostname === undefined ? { ip, port } : { ip, port, hostname }, ...extra,
});

// ---- history: who saw which combo
const history = [];
const combos = [
  ['popular.com', 443, 12],
  ['boundary10.net', 443, 10],
  ['uncommon9.net', 443, 9],
  ['uncommon4.net', 443, 4],
  ['rare3.net', 443, 3],
  ['rare2.net', 8443, 2],
  ['veryrare1.net', 443, 1],
  ['other.github.io', 443, 12],
];
hosts.forEach((h, i) => {
  for (let d = 0; d < 30; d++) {
    history.push(conn(new Date(day(d, 9, i)).toISOString(), h, proc(CURL, '/usr/bin/curl'), '203.0.113.10', 443, 'www.popular.com'));
  }
  combos.forEach(([name, port, n], k) => {
    if (i >= n) return;
    const t = day((i + k) % 30, 11, k);
    if (name === 'uncommon4.net') {
      // learned through a DNS answer, not the record's own field
      history.push({ type: 'dns', time: t - 1000, host: { id: h, org: 'o1' }, query: `api.${name}`, answers: [{ ip: '198.51.100.4', ttl: 60 }] });
      history.push(conn(t, h, proc(CURL, '/usr/bin/curl'), '198.51.100.4', port));
    } else {
      history.push(conn(t, h, proc(CURL, '/usr/bin/curl'), '203.0.113.20', port, `api.${name}`));
    }
  });
  if (i < 9) history.push(conn(day(i, 12), h, proc(RAREBIN, '/opt/tool/bin/tool'), '203.0.113.10', 443, 'www.popular.com'));
  if (i < 10) history.push(conn(day(i, 13), h, proc(COMMON10, '/usr/bin/wget'), '203.0.113.10', 443, 'www.popular.com'));
});

// ---- today: one case per note; every host enrolled 21 days before (h-new only 6)
const T0 = day(30, 8); // 2026-10-01T08:00Z
const at = (min) => T0 + min * 60_000;
const curl = proc(CURL, '/usr/bin/curl');
const today = [];
for (const h of ['h01', 'h02', 'h03', 'h04']) today.push({ type: 'process', time: new Date(day(9)).toISOString(), host: { id: h, org: 'o1' }, sha256: CURL, path: '/usr/bin/curl', note: 'enrolment: earliest record 21 days before' });
today.push({ type: 'process', time: new Date(day(24)).toISOString(), host: { id: 'h-new', org: 'o1' }, sha256: CURL, path: '/usr/bin/curl', note: 'enrolment: 6 days before the first event' });
const add = (note, rec) => today.push({ ...rec, note });
add('common combo (12 observers): nothing', conn(at(1), 'h01', curl, '203.0.113.10', 443, 'www.popular.com'));
add('boundary: 10 observers is common: nothing', conn(at(2), 'h01', curl, '203.0.113.20', 443, 'api.boundary10.net'));
add('boundary: 9 observers is uncommon: base alert, Informational', conn(at(3), 'h01', curl, '203.0.113.20', 443, 'api.uncommon9.net'));
add('4 observers: uncommon, not rare: Informational', conn(at(4), 'h04', curl, '203.0.113.20', 443, 'x.uncommon4.net'));
add('boundary: 3 observers is rare: Low', conn(at(5), 'h01', curl, '203.0.113.20', 443, 'api.rare3.net'));
add('boundary: 1 observer is very rare: Medium', conn(at(6), 'h01', curl, '203.0.113.20', 443, 'api.veryrare1.net'));
add('never seen combo: very rare: Medium', conn(at(7), 'h01', curl, '203.0.113.30', 443, 'c2.unseen-new.example'));
add('same domain, other port: never seen: Medium', conn(at(8), 'h01', curl, '203.0.113.10', 8443, 'www.popular.com'));
add('injected thread, uncommon combo: High', conn(at(9), 'h02', proc(CURL, '/usr/bin/curl', { injection: { injected: true, indicators: ['anon-exec-frame:0x7f0000001000'] } }), '203.0.113.20', 443, 'api.uncommon4.net'));
add('known vendor (Debian), uncommon combo: Medium', conn(at(10), 'h03', proc(CURL, '/usr/bin/curl', { signer: { status: 'valid', subject: 'Debian package curl 7.88.1', vendor: 'Debian' } }), '203.0.113.20', 443, 'api.uncommon4.net'));
add('known vendor and very rare: very rare wins, both listed', conn(at(11), 'h03', proc(CURL, '/usr/bin/curl', { signer: { status: 'valid', subject: 'Debian package curl 7.88.1', vendor: 'Debian' } }), '203.0.113.30', 443, 'c2.unseen-new.example'));
add('invalid signature from a known vendor: no known-vendor variation', conn(at(12), 'h04', proc(CURL, '/usr/bin/curl', { signer: { status: 'invalid', subject: 'Debian package curl', vendor: 'Debian' } }), '203.0.113.20', 443, 'api.rare3.net'));
add('process seen by 9 hosts is not common: nothing', conn(at(13), 'h01', proc(RAREBIN, '/opt/tool/bin/tool'), '203.0.113.30', 443, 'c2.unseen-new.example'));
add('process seen by 10 hosts is common: Medium', conn(at(14), 'h01', proc(COMMON10, '/usr/bin/wget'), '203.0.113.30', 443, 'c2.unseen-new.example'));
add('private destination: nothing', conn(at(15), 'h01', curl, '10.1.2.3', 443, 'git.unseen-new.example'));
add('private destination 192.168: nothing', conn(at(16), 'h01', curl, '192.168.7.7', 443, 'nas.unseen-new.example'));
add('CGNAT destination: nothing', conn(at(17), 'h01', curl, '100.64.1.1', 443, 'cg.unseen-new.example'));
add('loopback: nothing', conn(at(18), 'h01', curl, '127.0.0.1', 443, 'localhost'));
add('unknown hostname: nothing', conn(at(19), 'h01', curl, '203.0.113.99', 443));
add('hostname is an IP literal: nothing', conn(at(20), 'h01', curl, '203.0.113.50', 443, '203.0.113.50'));
add('internal name (.corp): nothing', conn(at(21), 'h01', curl, '203.0.113.51', 443, 'printer.corp'));
add('single label: nothing', conn(at(22), 'h01', curl, '203.0.113.52', 443, 'intranet'));
add('excluded domain suffix (config): nothing', conn(at(23), 'h01', curl, '203.0.113.53', 443, 'cdn.excluded.example'));
add('inbound: nothing', { ...conn(at(24), 'h01', curl, '203.0.113.54', 443, 'in.unseen-new.example'), direction: 'inbound' });
today.push({ type: 'dns', time: at(25), host: { id: 'h01', org: 'o1' }, query: 'Beacon.Dns-Only.Example.', answers: [{ ip: '198.51.100.77', ttl: 60 }], note: 'DNS answer, TTL 60 s' });
add('name from the DNS answer (upper case, trailing dot normalised): Medium', conn(at(26), 'h01', curl, '198.51.100.77', 443));
add('DNS answer expired (60 s TTL + 5 min grace): nothing', conn(at(40), 'h01', curl, '198.51.100.77', 443));
add('private suffix: evil.github.io is its own root domain: Medium', conn(at(41), 'h01', curl, '203.0.113.60', 443, 'evil.github.io'));
add('common private-suffix domain other.github.io: nothing', conn(at(42), 'h01', curl, '203.0.113.61', 443, 'www.other.github.io'));
add('IDN in Unicode: root domain in punycode: Medium', conn(at(43), 'h01', curl, '203.0.113.62', 443, 'BÜCHER.example.'));
add('activation not reached (host enrolled 6 days ago): nothing', conn(at(44), 'h-new', curl, '203.0.113.30', 443, 'c2.unseen-new.example'));
add('dedup: repeat of the very rare alert within 24 h: count 2', conn(at(60), 'h01', curl, '203.0.113.20', 443, 'api.veryrare1.net'));
add('dedup: repeat within 24 h: count 3', conn(at(23 * 60), 'h01', curl, '203.0.113.20', 443, 'api.veryrare1.net'));
add('escalation: rare combo on h03: Low', conn(at(100), 'h03', curl, '203.0.113.20', 8443, 'api.rare2.net'));
add('escalation: same combo from an injected thread within 24 h: new High alert', conn(at(101), 'h03', proc(CURL, '/usr/bin/curl', { injection: { injected: true, indicators: ['ld-preload-world-writable:/tmp/x.so'] } }), '203.0.113.20', 8443, 'api.rare2.net'));
add('escalation: plain again: repeat of the Low alert', conn(at(102), 'h03', curl, '203.0.113.20', 8443, 'api.rare2.net'));
add('dedup: 25 h after the first very rare alert: a new alert', conn(at(25 * 60 + 6), 'h01', curl, '203.0.113.20', 443, 'api.veryrare1.net'));

const nd = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
writeFileSync(join(here, 'history.jsonl'), nd(history));
writeFileSync(join(here, 'today.jsonl'), nd(today));
writeFileSync(join(here, 'config.yaml'), '# exclusions used by the basic golden case\ndetect:\n  exclusions:\n    domainSuffixes: [excluded.example]\n');
console.log(`history ${history.length} records, today ${today.length} records`);
