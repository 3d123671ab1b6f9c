import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SINK_DEFAULTS } from '../../src/config/defaults.js';
import { FileSink } from '../../src/report/file-sink.js';
import { StdoutSink } from '../../src/report/stdout-sink.js';
import { detection } from '../support/alerts.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rarecon-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const signal = new AbortController().signal;

function uids(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { metadata: { uid: string } }).metadata.uid);
}

describe('file sink', () => {
  it('appends NDJSON and rotates by size, keeping N files, oldest dropped', async () => {
    const path = join(dir, 'sub', 'alerts.ndjson');
    const oneLine = Buffer.byteLength(`${JSON.stringify((await import('../../src/model/ocsf.js')).toOcsf(detection(0)))}\n`);
    // Two alerts fit a file; keep two rotated files.
    const sink = new FileSink({ ...SINK_DEFAULTS.file, name: 'file', path, maxBytes: oneLine * 2 + 10, maxFiles: 2 });
    for (let i = 0; i < 9; i++) expect(await sink.send([detection(i)], signal)).toEqual({ status: 'success' });
    await sink.close();
    await sink.close();
    // 9 alerts, 2 a file: [0,1] [2,3] [4,5] [6,7] [8]; the two oldest files are gone.
    expect(uids(path)).toEqual([detection(8).uid]);
    expect(uids(`${path}.1`)).toEqual([detection(6).uid, detection(7).uid]);
    expect(uids(`${path}.2`)).toEqual([detection(4).uid, detection(5).uid]);
    expect(existsSync(`${path}.3`)).toBe(false);
    for (const f of [path, `${path}.1`, `${path}.2`]) expect(statSync(f).size).toBeLessThanOrEqual(oneLine * 2 + 10);
  });

  it('carries on from an existing file after a restart, and writes ECS when asked', async () => {
    const path = join(dir, 'alerts.ndjson');
    const a = new FileSink({ ...SINK_DEFAULTS.file, name: 'file', path, format: 'ecs' });
    await a.send([detection(1), detection(2)], signal);
    await a.close();
    const b = new FileSink({ ...SINK_DEFAULTS.file, name: 'file', path, format: 'ecs' });
    await b.send([detection(3)], signal);
    await b.close();
    const docs = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: { id: string; kind: string } });
    expect(docs.map((d) => d.event.id)).toEqual([1, 2, 3].map((i) => detection(i).uid));
    expect(docs[0]!.event.kind).toBe('alert');
  });

  it('reports a write it cannot do as retryable', async () => {
    writeFileSync(join(dir, 'not-a-folder'), '');
    const sink = new FileSink({ ...SINK_DEFAULTS.file, name: 'file', path: join(dir, 'not-a-folder', 'alerts.ndjson') });
    const r = await sink.send([detection(1)], signal);
    expect(r.status).toBe('retryable');
    await sink.close();
  });
});

describe('stdout sink', () => {
  it('writes one OCSF document a line', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (b: Buffer) => chunks.push(b.toString('utf8')));
    const sink = new StdoutSink({ ...SINK_DEFAULTS.stdout, name: 'stdout' }, out);
    expect(await sink.send([detection(1), detection(2)], signal)).toEqual({ status: 'success' });
    const lines = chunks
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { class_uid: number; finding_info: { uid: string } });
    expect(lines.map((l) => l.finding_info.uid)).toEqual([detection(1).uid, detection(2).uid]);
    expect(lines[0]!.class_uid).toBe(2004);
  });
});
