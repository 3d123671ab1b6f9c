// The README's "Your first hour", run as written (its code block, with /tmp/
// pointed at a folder of this test): the sample fleet gives exactly the three
// alerts the README describes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, REPO } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rarecon-first-hour-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function readmeBlock(heading: string): string[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(`## ${heading}\n`));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error(`README.md has no sh block under "## ${heading}"`);
  return block.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
}

describe("the README's first hour", () => {
  it('scores the sample fleet into the three alerts it describes, with the commands it shows', () => {
    const commands = readmeBlock('Your first hour');
    expect(commands).toHaveLength(2);
    let stderr = '';
    for (const c of commands) {
      const r = spawnSync('sh', ['-c', c.replaceAll('/tmp/', `${tmp}/`)], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${c}\n${r.stderr}`).toBe(0);
      stderr = r.stderr;
    }
    expect(stderr).toMatch(/^ {2}alerts: 3 \(/m);
    const alerts = jsonLines(readFileSync(join(tmp, 'alerts.jsonl'), 'utf8'));
    const seen = alerts.map((a) => [
      a.device.uid,
      a.actor.process.name,
      `${a.evidences[0].dst_endpoint.hostname}:${a.evidences[0].dst_endpoint.port}`,
      a.severity,
    ]);
    expect(seen.sort()).toEqual(
      [
        ['ws03', 'ssh', 'ssh.github.com:443', 'Medium'],
        ['ws07', 'curl', 'update.cdn-mirror-7.example:8443', 'Medium'],
        ['ws12', 'python3.11', 'sync.files-share.example:443', 'High'],
      ].sort(),
    );
    // What the README says of them.
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8').replace(/\s+/g, ' ');
    for (const said of [
      "ws07's curl to `update.cdn-mirror-7.example:8443`",
      "ws03's ssh to `ssh.github.com:443`",
      "ws12's python3 from an injected thread to `sync.files-share.example` (High)",
    ]) {
      expect(readme).toContain(said);
    }
  });

  it('the two commands of the first screen are ./setup.sh run and ./setup.sh test', () => {
    expect(readmeBlock('Two commands')).toEqual([
      './setup.sh run     # set everything up, then run the daemon on the embedded default',
      './setup.sh test    # set everything up, then run the tests',
    ]);
    const r = spawnSync('bash', [join(REPO, 'setup.sh')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('usage: ./setup.sh run|test   (set up, then run the daemon or the tests)\n');
  });
});
