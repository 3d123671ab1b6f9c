// The NDJSON fast path must give exactly what the generic parser gives for every
// line it accepts, and decline (null) the lines it does not read, so bad lines
// still get their located error from the generic path.
import { describe, expect, it } from 'vitest';
import { parseRareconLineFast } from '../../../../src/sources/replay/fast/ndjson-fast.js';
import { parseRareconRecord } from '../../../../src/sources/replay/ndjson-reader.js';

const origin = { file: 'f.jsonl', line: 1 };
const SHA = 'ab'.repeat(32);

function both(text: string) {
  const bytes = Buffer.from(text, 'utf8');
  return { fast: parseRareconLineFast(bytes, 0, bytes.length, origin), generic: parseRareconRecord(text, origin) };
}

// A small deterministic generator of lines in the writers' plain shape, with variations.
function* lines(n: number): Generator<string> {
  let x = 12345;
  const rnd = (k: number): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % k;
  for (let i = 0; i < n; i++) {
    const host = rnd(3) === 0 ? `{"id":"h${i}"}` : `{"id":"h${i}","org":"o${rnd(5)}","name":"n${i}.example"}`;
    const time = rnd(2) === 0 ? String(1790841780000 + i) : `"2026-10-0${1 + rnd(8)}T10:00:0${rnd(10)}Z"`;
    switch (rnd(3)) {
      case 0:
        yield `{"type":"dns","time":${time},"host":${host},"query":"q${i}.example.com","answers":[{"ip":"203.0.113.${rnd(250)}","ttl":${rnd(600)}}]}`;
        break;
      case 1:
        yield `{"type":"process","time":${time},"host":${host},"sha256":"${SHA}","path":"/usr/bin/p${i}"}`;
        break;
      default: {
        const signer =
          rnd(2) === 0 ? '{"status":"valid","subject":"Debian","vendor":"Debian"}' : '{"status":"unsigned","subject":null,"vendor":null}';
        const inj = rnd(4) === 0 ? '{"injected":true,"indicators":["memfd-exe:x"]}' : '{"injected":false,"indicators":[]}';
        const remote =
          rnd(3) === 0
            ? `{"ip":"198.51.100.${rnd(250)}","port":${rnd(65536)}}`
            : `{"ip":"203.0.113.${rnd(250)}","port":${rnd(65536)},"hostname":"c${i}.example.org"}`;
        yield `{"type":"connection","time":${time},"host":${host},"process":{"pid":${rnd(99999)},"tid":${rnd(99999)},"path":"/usr/bin/x","sha256":"${SHA}","signer":${signer},"injection":${inj},"cmdline":"x --a \\"q\\"","user":"u"},"protocol":"${rnd(2) === 0 ? 'tcp' : 'udp'}","remote":${remote}}`;
      }
    }
  }
}

describe('NDJSON fast path', () => {
  it('agrees with the generic parser on every line it reads', () => {
    let accepted = 0;
    for (const text of lines(3000)) {
      const { fast, generic } = both(text);
      if (fast === null) continue;
      accepted++;
      expect(JSON.parse(JSON.stringify(fast))).toEqual(JSON.parse(JSON.stringify(generic)));
    }
    // the plain shape is what it exists for: it must take most of these lines
    expect(accepted).toBeGreaterThan(2500);
  });

  it('does not take a key or value that only starts like the one it expects next, nor one spelled with escapes', () => {
    const plain = `{"type":"connection","time":1790841780000,"host":{"id":"h1"},"process":{"pid":1,"sha256":"${SHA}"},"protocol":"tcp","remote":{"ip":"203.0.113.9","port":443,"hostname":"c.example.org"}}`;
    // Read once so the key tables expect this order.
    expect(both(plain).fast).not.toBeNull();
    const longerKeys = plain.replace('"time":', '"timeZone":"UTC","time":').replace('"host":', '"hostx":1,"host":');
    const longer = both(longerKeys);
    expect(longer.fast).not.toBeNull();
    expect(JSON.parse(JSON.stringify(longer.fast))).toEqual(JSON.parse(JSON.stringify(longer.generic)));
    // An escaped key may spell a known one: JSON.parse decides, so the fast path declines it.
    expect(both(plain.replace('"type":', '"ty\\u0070e":')).fast).toBeNull();
    // A value that extends a known one is not that value: declined, and the generic path reports it.
    const badProtocol = both(plain.replace('"tcp"', '"tcpx"'));
    expect(badProtocol.fast).toBeNull();
    expect(badProtocol.generic.type).toBe('error');
  });

  it('agrees on lines whose keys come in varying orders, with values repeated across lines and values too long to share', () => {
    // Key order changes from line to line (the key table's guess misses), and
    // the same host, name and sha256 recur (the interner hands back shared strings).
    const longCmd = 'run ' + 'z'.repeat(300);
    const members = (i: number): string[] => [
      '"type":"connection"',
      `"time":${1790841780000 + i}`,
      `"host":{"org":"o${i % 2}","id":"h${i % 3}"}`,
      `"process":{"sha256":"${i % 2 === 0 ? SHA : 'CD'.repeat(32)}","pid":${i},"cmdline":"${i % 4 === 0 ? longCmd : 'short'}","signer":{"vendor":"V","status":"valid","subject":"S"}}`,
      '"protocol":"tcp"',
      `"remote":{"port":${443 + (i % 2)},"hostname":"api.r${i % 5}.example.com","ip":"203.0.113.${i % 7}"}`,
    ];
    let x = 7;
    const rnd = (k: number): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % k;
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      const m = members(i);
      for (let j = m.length - 1; j > 0; j--) {
        const k = rnd(j + 1);
        [m[j], m[k]] = [m[k]!, m[j]!];
      }
      const { fast, generic } = both(`{${m.join(',')}}`);
      expect(fast).not.toBeNull();
      accepted++;
      expect(JSON.parse(JSON.stringify(fast))).toEqual(JSON.parse(JSON.stringify(generic)));
    }
    expect(accepted).toBe(400);
  });

  it.each([
    ['truncated', '{"type":"dns","time":1,"host":{"id":"h"},"query":"a.b","answers":[{"ip":"1.2.3.4","ttl":3'],
    ['wrong type', '{"type":"process","time":{},"host":{"id":"h"},"sha256":"' + SHA + '","path":"/x"}'],
    [
      'bad port',
      '{"type":"connection","time":1,"host":{"id":"h"},"process":{"pid":1,"sha256":"' +
        SHA +
        '"},"protocol":"tcp","remote":{"ip":"1.2.3.4","port":70000}}',
    ],
    ['missing field', '{"type":"connection","time":1,"host":{"id":"h"},"process":{"pid":1},"remote":{"ip":"1.2.3.4","port":1}}'],
  ])('declines a bad line (%s) so the generic path reports it', (_name, text) => {
    const { fast, generic } = both(text);
    expect(fast).toBeNull();
    expect(generic.type).toBe('error');
  });
});
