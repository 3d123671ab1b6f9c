import Database from 'better-sqlite3';
import { shaHex, comboParts } from '/work/main/dist/bench/baseline-data.js';
import { hashCombo, comboHash, comboKey, comboCheck } from '/work/main/dist/src/baseline/combo-key.js';
const db = new Database('/tmp/rarecon-bench/score-baseline-10000000.db', { readonly: true });
db.pragma('mmap_size = 0'); db.pragma(`cache_size = -${process.argv[2] ?? 8192}`); db.pragma('query_only = 1');
const bits = Number(db.prepare("SELECT value FROM meta WHERE key='comboKeyBits'").pluck().get() ?? 0);
console.log('bits', bits, db.prepare("SELECT key FROM meta").pluck().all().join(','));
const { observersOf } = await import('/work/main/dist/bench/baseline-data.js');
const ps = db.prepare('SELECT observers FROM process WHERE sha = ?').pluck();
const cs = db.prepare('SELECT observers FROM combo WHERE key = ? AND (chk = ? OR observers < 0)').pluck();
const parts = { sha: 0, root: 0, port: 0 };
const rootOf = (r) => `r${r.toString(36)}.example${r % 10}.com`;
const list = [];
for (let i = 0; i < 10_000_000 && list.length < 70000; i++) { if (observersOf(i) >= 21 || (observersOf(i) === 1 && list.length % 2)) list.push(i); }
const q = list.map((i) => { comboParts(i, 10_000_000, parts); const shaHexS = shaHex(parts.sha); hashCombo(shaHexS, rootOf(parts.root), parts.port); return [Buffer.from(shaHexS, 'hex'), comboKey(comboHash[0], comboHash[1], bits), comboCheck(comboHash[1])]; });
// shuffle
for (let i = q.length - 1; i > 0; i--) { const j = (i * 2654435761) % (i + 1); [q[i], q[j]] = [q[j], q[i]]; }
const begin = db.prepare('BEGIN'), commit = db.prepare('COMMIT');
for (const mode of ['process only', 'combo only', 'interleaved', 'interleaved+tx/256']) {
  const t = process.hrtime.bigint(); let n = 0;
  if (!mode.includes('tx')) begin.run();
  for (let k = 0; k < q.length; k++) {
    if (mode.includes('tx') && (k & 255) === 0) { if (k) commit.run(); begin.run(); }
    if (mode !== 'combo only') { ps.get(q[k][0]); n++; }
    if (mode !== 'process only') { cs.get(q[k][1], q[k][2]); n++; }
  }
  commit.run();
  console.log(mode, (Number(process.hrtime.bigint() - t) / 1e3 / n).toFixed(2), 'us/read');
}
