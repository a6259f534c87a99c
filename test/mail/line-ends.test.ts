/** src/mail/line-ends.ts: CRLF to LF, SMTP DATA encoding (CRLF or LF), at every chunk split. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { CrlfToLf, DataEncoder, convertStream, type LineEndConverter } from '../../src/mail/line-ends.ts';

/** Every cut of `input` into three pieces, then one byte at a time. */
function* splits(input: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= input.length; i++) {
    for (let j = i; j <= input.length; j++) yield [input.subarray(0, i), input.subarray(i, j), input.subarray(j)];
  }
  yield [...input].map((b) => Buffer.from([b]));
}

function run(converter: LineEndConverter, chunks: readonly Buffer[]): string {
  return Buffer.concat([...chunks.map((c) => converter.convert(c)), converter.end()]).toString('latin1');
}

/** What DataEncoder must give, written the obvious way on the whole text. */
function dataReference(text: string, eol: string): string {
  if (text === '') return '.' + eol;
  const lines = text.split(/\r\n|\r|\n/);
  const ended = /[\r\n]$/.test(text);
  if (ended) lines.pop();
  return lines.map((l) => (l.startsWith('.') ? '.' + l : l) + eol).join('') + '.' + eol;
}

const SAMPLES = ['a\r\nb\rc\r\n\r\n\r\rd\r\r\n\r', '.a\r\n..b\n.\r.\r\n', 'no line end', '.', '\r', '\n', '\r\n.', 'x.y\r\n.z', ''];

describe('CrlfToLf', () => {
  it('turns CRLF into LF and keeps a lone CR, whatever the chunks', () => {
    for (const sample of SAMPLES) {
      const expected = sample.replace(/\r\n/g, '\n');
      for (const chunks of splits(Buffer.from(sample, 'latin1'))) {
        assert.equal(run(new CrlfToLf(), chunks), expected, JSON.stringify({ sample, chunks: chunks.map((c) => c.toString('latin1')) }));
      }
    }
  });

  it('gives a held CR at the end, and is ready for another stream after end()', () => {
    const c = new CrlfToLf();
    assert.equal(c.convert(Buffer.from('a\r')).toString('latin1'), 'a');
    assert.equal(c.end().toString('latin1'), '\r');
    assert.equal(c.convert(Buffer.from('\nb')).toString('latin1'), '\nb');
    assert.equal(c.end().length, 0);
  });
});

describe('DataEncoder', () => {
  for (const [lineEnd, eol] of [
    ['crlf', '\r\n'],
    ['lf', '\n'],
  ] as const) {
    it(`${lineEnd}: one kind of line end, dots doubled at line starts, the final dot, at every split`, () => {
      for (const sample of SAMPLES) {
        const expected = dataReference(sample, eol);
        for (const chunks of splits(Buffer.from(sample, 'latin1'))) {
          assert.equal(run(new DataEncoder(lineEnd), chunks), expected, JSON.stringify({ sample, chunks: chunks.map((c) => c.toString('latin1')) }));
        }
      }
    });
  }

  it('defaults to CRLF; encode() is convert()', () => {
    const e = new DataEncoder();
    assert.equal(e.encode(Buffer.from('.a\nb')).toString('latin1'), '..a\r\nb');
    assert.equal(e.convert(Buffer.from('\r')).toString('latin1'), '');
    assert.equal(e.end().toString('latin1'), '\r\n.\r\n');
    assert.equal(e.end().toString('latin1'), '.\r\n', 'a new stream after end()');
  });

  it('keeps 8-bit bytes as they are', () => {
    const input = Buffer.from([0xe4, 0x0a, 0x2e, 0xff, 0x0d, 0x0a]);
    assert.deepEqual([...Buffer.concat([new DataEncoder().encode(input), new DataEncoder().end()])], [0xe4, 0x0d, 0x0a, 0x2e, 0x2e, 0xff, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]);
  });
});

describe('convertStream', () => {
  const collect = async (source: AsyncIterable<Buffer>): Promise<string> => {
    const parts: Buffer[] = [];
    for await (const chunk of source) parts.push(chunk);
    return Buffer.concat(parts).toString('latin1');
  };

  it('converts a Readable of Buffers and strings, leaving out empty pieces', async () => {
    const pieces: Buffer[] = [];
    for await (const chunk of convertStream(Readable.from([Buffer.from('a\r'), '\nb\r', Buffer.alloc(0), '\r\n']), new CrlfToLf())) pieces.push(chunk);
    assert.ok(pieces.every((p) => p.length > 0));
    assert.equal(Buffer.concat(pieces).toString('latin1'), 'a\nb\r\n');
  });

  it('passes chunks through unchanged without a converter, and ends with the converter end', async () => {
    assert.equal(await collect(convertStream(Readable.from(['a\r\n', 'b']))), 'a\r\nb');
    assert.equal(await collect(convertStream(Readable.from(['.a\r\n', 'b']), new DataEncoder())), '..a\r\nb\r\n.\r\n');
  });

  it('throws the reason of an aborted signal and destroys the source', async () => {
    const controller = new AbortController();
    const source = new Readable({ objectMode: true, read() {} });
    source.push('one\r\n');
    source.push('two\r\n');
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of convertStream(source, new CrlfToLf(), controller.signal)) {
          seen.push(chunk.toString('latin1'));
          controller.abort(new Error('stop here'));
        }
      })(),
      /stop here/,
    );
    assert.equal(seen.length, 1);
    assert.ok(source.destroyed);
  });

  it('destroys the source when the consumer throws', async () => {
    const source = new Readable({ objectMode: true, read() {} });
    source.push('a\n');
    await assert.rejects(
      (async () => {
        for await (const _chunk of convertStream(source, new DataEncoder())) throw new Error('consumer failed');
      })(),
      /consumer failed/,
    );
    assert.ok(source.destroyed);
  });
});
