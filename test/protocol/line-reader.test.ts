/**
 * Command lines: CRLF only, a lone CR or LF makes the whole line one bad line, over-long lines are
 * dropped as they stream in and reported once, and the outcome never depends on how bytes are split.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineReader, type CommandLine } from '../../src/protocol/line-reader.ts';
import { cut, threeWaySplits, twoWaySplits } from '../helpers/splits.ts';

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const ok = (text: string): CommandLine => ({ ok: true, text });
const bad = (error: 'bare-line-end' | 'too-long' | 'not-utf8'): CommandLine => ({ ok: false, error });

interface Outcome {
  readonly lines: CommandLine[];
  /** Bytes left over (an unfinished line), as the reader reports them. */
  readonly buffered: number;
  /** The highest bufferedBytes seen after draining, chunk by chunk. */
  readonly peak: number;
}

/** Push each chunk and read every complete line, like the session's read loop. */
function read(chunks: readonly Uint8Array[], max = 512): Outcome {
  const reader = new LineReader(max);
  const lines: CommandLine[] = [];
  let peak = 0;
  for (const chunk of chunks) {
    reader.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    for (let line = reader.next(); line !== undefined; line = reader.next()) lines.push(line);
    peak = Math.max(peak, reader.bufferedBytes);
  }
  return { lines, buffered: reader.bufferedBytes, peak };
}

/** Every cut into two and into three pieces, then one byte at a time. */
function* lineSplits(input: Buffer): Generator<Buffer[]> {
  yield* twoWaySplits(input);
  yield* threeWaySplits(input);
}

/** The lines alone, for comparisons across splits (the buffered count differs while discarding). */
const linesOf = (chunks: readonly Uint8Array[], max = 512): CommandLine[] => read(chunks, max).lines;


/**
 * The rules over the whole input at once: split at CRLF; a complete line longer than `max` is
 * too-long, else with a CR or LF in it bare-line-end, else not valid UTF-8 not-utf8.
 */
function model(input: Uint8Array, max: number): CommandLine[] {
  const out: CommandLine[] = [];
  const buf = Buffer.from(input);
  let pos = 0;
  for (;;) {
    const end = buf.indexOf('\r\n', pos, 'latin1');
    if (end === -1) return out;
    const line = buf.subarray(pos, end);
    pos = end + 2;
    if (line.length > max) out.push(bad('too-long'));
    else if (line.includes(0x0a) || line.includes(0x0d)) out.push(bad('bare-line-end'));
    else if (!isValidUtf8(line)) out.push(bad('not-utf8'));
    else out.push(ok(line.toString('utf8')));
  }
}

function isValidUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Check every split of `input` gives the same lines; return them. */
function splitInvariant(input: Buffer, max = 512): CommandLine[] {
  const whole = linesOf([input], max);
  for (const chunks of lineSplits(input)) {
    assert.deepEqual(linesOf(chunks, max), whole, `split ${JSON.stringify(chunks.map((c) => c.toString('latin1')))}`);
  }
  assert.deepEqual(whole, model(input, max));
  return whole;
}

describe('LineReader: lines', () => {
  test('CRLF-terminated lines, in any split', () => {
    const lines = splitInvariant(bin('EHLO client.example\r\nMAIL FROM:<a@b>\r\n\r\nQUIT\r\n'));
    assert.deepEqual(lines, [ok('EHLO client.example'), ok('MAIL FROM:<a@b>'), ok(''), ok('QUIT')]);
  });

  test('an unfinished line waits and is counted as buffered', () => {
    const r = read([bin('NOOP\r\nHEL'), bin('O x')]);
    assert.deepEqual(r.lines, [ok('NOOP')]);
    assert.equal(r.buffered, 'HELO x'.length);
    const reader = new LineReader(512);
    assert.equal(reader.next(), undefined);
    assert.equal(reader.bufferedBytes, 0);
    reader.push(Buffer.alloc(0));
    assert.equal(reader.bufferedBytes, 0);
    assert.equal(reader.next(), undefined);
  });

  test('a line ending only in CR or only in LF is not complete', () => {
    for (const text of ['QUIT\n', 'QUIT\r', 'QUIT\n\r']) {
      const r = read([bin(text)]);
      assert.deepEqual(r.lines, [], JSON.stringify(text));
      assert.equal(r.buffered, text.length);
    }
  });

  test('tabs, NUL and other controls except CR/LF pass: deciding about them is the parser’s job', () => {
    assert.deepEqual(splitInvariant(bin('NOOP\tx\x00\x7f\r\n')), [ok('NOOP\tx\x00\x7f')]);
  });
});

describe('LineReader: bare line ends', () => {
  const cases: [string, string][] = [
    ['bare LF between two commands', 'NOOP\nRSET\r\n'],
    ['bare CR between two commands', 'NOOP\rRSET\r\n'],
    ['LF CR between two commands', 'NOOP\n\rRSET\r\n'],
    ['CR before the CRLF', 'NOOP\r\r\n'],
    ['LF before the CRLF', 'NOOP\n\r\n'],
    ['lone LF line', '\n\r\n'],
    ['smuggled MAIL/RCPT/DATA', 'NOOP\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\r\n'],
  ];
  for (const [name, input] of cases) {
    test(`${name}: one bad line, never two commands`, () => {
      const lines = splitInvariant(bin(input + 'QUIT\r\n'));
      assert.deepEqual(lines, [bad('bare-line-end'), ok('QUIT')]);
    });
  }

  test('the bad line does not disturb the lines around it', () => {
    assert.deepEqual(splitInvariant(bin('HELO a\r\nNOOP\nRSET\r\nQUIT\r\n')), [ok('HELO a'), bad('bare-line-end'), ok('QUIT')]);
  });
});

describe('LineReader: length limit', () => {
  test('a line of exactly the limit is accepted, one byte more is refused, in any split', () => {
    const max = 10;
    assert.deepEqual(splitInvariant(bin('0123456789\r\nQUIT\r\n'), max), [ok('0123456789'), ok('QUIT')]);
    assert.deepEqual(splitInvariant(bin('0123456789A\r\nQUIT\r\n'), max), [bad('too-long'), ok('QUIT')]);
  });

  test('a line of exactly the limit whose CR arrives before its LF is not refused', () => {
    // Regression: the CR was counted as line content while the LF was still on its way.
    assert.deepEqual(linesOf([bin('0123456789\r'), bin('\nQUIT\r\n')], 10), [ok('0123456789'), ok('QUIT')]);
  });

  test('a too-long line is reported once and the next line is read normally', () => {
    const max = 16;
    const long = 'X'.repeat(20);
    const input = bin(`NOOP\r\n${long}\r\nRSET\r\n${long}\n${long}\r${long}\r\nQUIT\r\n`);
    assert.deepEqual(splitInvariant(input, max), [ok('NOOP'), bad('too-long'), ok('RSET'), bad('too-long'), ok('QUIT')]);
  });

  test('a long line with a bare line end inside is one too-long line', () => {
    assert.deepEqual(splitInvariant(bin(`NOOP\n${'y'.repeat(40)}\r\nQUIT\r\n`), 16), [bad('too-long'), ok('QUIT')]);
  });

  test('memory stays bounded while a long line streams in', () => {
    const max = 512;
    const reader = new LineReader(max);
    const chunk = bin('A'.repeat(1000));
    for (let i = 0; i < 2000; i++) {
      reader.push(chunk);
      assert.equal(reader.next(), undefined);
      assert.ok(reader.bufferedBytes <= max + 1, `${reader.bufferedBytes} bytes buffered`);
    }
    // A CR at a chunk end may be half of the CRLF: it is the one byte kept.
    reader.push(bin('AAA\r'));
    assert.equal(reader.next(), undefined);
    assert.ok(reader.bufferedBytes <= 1);
    reader.push(bin('\nNOOP\r\n'));
    assert.deepEqual(reader.next(), bad('too-long'));
    assert.deepEqual(reader.next(), ok('NOOP'));
    assert.equal(reader.next(), undefined);
    assert.equal(reader.bufferedBytes, 0);
  });

  test('memory stays bounded when the long line comes byte by byte', () => {
    const max = 64;
    const r = read([...bin('B'.repeat(5000) + '\r\nQUIT\r\n')].map((b) => Buffer.from([b])), max);
    assert.deepEqual(r.lines, [bad('too-long'), ok('QUIT')]);
    assert.ok(r.peak <= max + 1, `peak ${r.peak}`);
  });

  test('a CR kept while discarding that turns out to be a bare CR keeps the line refused', () => {
    const max = 8;
    const lines = linesOf(['x'.repeat(20) + '\r', 'x\r', 'y\r\n', 'QUIT\r\n'].map(bin), max);
    assert.deepEqual(lines, [bad('too-long'), ok('QUIT')]);
  });
});

describe('LineReader: UTF-8', () => {
  test('valid UTF-8 is decoded, also when a character is split across chunks', () => {
    const lines = splitInvariant(Buffer.from('MAIL FROM:<jöhn@exämple.org> SMTPUTF8\r\nRCPT TO:<用户@例子.广告>\r\n', 'utf8'));
    assert.deepEqual(lines, [ok('MAIL FROM:<jöhn@exämple.org> SMTPUTF8'), ok('RCPT TO:<用户@例子.广告>')]);
  });

  const invalid: [string, number[]][] = [
    ['a lone continuation byte', [0x80]],
    ['0xff', [0xff]],
    ['a truncated sequence', [0xc3]],
    ['an overlong slash', [0xc0, 0xaf]],
    ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['beyond U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ];
  for (const [name, bytes] of invalid) {
    test(`not-utf8: ${name}`, () => {
      const input = Buffer.concat([bin('NOOP '), Buffer.from(bytes), bin('\r\nQUIT\r\n')]);
      assert.deepEqual(splitInvariant(input), [bad('not-utf8'), ok('QUIT')]);
    });
  }

  test('bare-line-end wins over not-utf8, too-long over both', () => {
    assert.deepEqual(linesOf([bin('\xff\n\r\n')]), [bad('bare-line-end')]);
    assert.deepEqual(linesOf([bin('\xff'.repeat(20) + '\n\r\n')], 8), [bad('too-long')]);
  });
});

describe('LineReader: take and discard', () => {
  test('take() hands over exactly the unread bytes and leaves the reader empty', () => {
    const reader = new LineReader(512);
    reader.push(bin('DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQU'));
    assert.deepEqual(reader.next(), ok('DATA'));
    const rest = reader.take();
    assert.equal(rest.toString('latin1'), 'Subject: x\r\n\r\nbody\r\n.\r\nQU');
    assert.equal(reader.bufferedBytes, 0);
    assert.equal(reader.next(), undefined);
    // The DATA framer gives the leftover back; reading goes on from there.
    reader.push(bin('QUIT\r\n'));
    assert.deepEqual(reader.next(), ok('QUIT'));
    assert.equal(reader.next(), undefined);
  });

  test('take() on an empty reader is an empty Buffer', () => {
    const reader = new LineReader(512);
    assert.equal(reader.take().length, 0);
    reader.push(bin('NOOP\r\n'));
    assert.deepEqual(reader.next(), ok('NOOP'));
    assert.equal(reader.take().length, 0);
  });

  test('take() ends the discarding of a long line', () => {
    const reader = new LineReader(8);
    reader.push(bin('x'.repeat(50)));
    assert.equal(reader.next(), undefined);
    reader.take();
    reader.push(bin('NOOP\r\n'));
    assert.deepEqual(reader.next(), ok('NOOP'));
  });

  test('discard() forgets pipelined plaintext (STARTTLS) and the reader starts afresh', () => {
    const reader = new LineReader(512);
    reader.push(bin('STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@y>\r\nNO'));
    assert.deepEqual(reader.next(), ok('STARTTLS'));
    reader.discard();
    assert.equal(reader.bufferedBytes, 0);
    assert.equal(reader.next(), undefined);
    reader.push(bin('EHLO tls\r\n'));
    assert.deepEqual(reader.next(), ok('EHLO tls'));
    assert.equal(reader.next(), undefined);
  });

  test('discard() in the middle of a too-long line: the next line is not reported too long', () => {
    const reader = new LineReader(8);
    reader.push(bin('z'.repeat(50)));
    assert.equal(reader.next(), undefined);
    reader.discard();
    reader.push(bin('EHLO x\r\n'));
    assert.deepEqual(reader.next(), ok('EHLO x'));
  });
});

describe('LineReader: properties', () => {
  const byte = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0x0d, 0x0a) },
    { weight: 4, arbitrary: fc.constantFrom(0x41, 0x20, 0x2e) },
    { weight: 1, arbitrary: fc.constantFrom(0xc3, 0xa9, 0xff, 0x80) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  );
  const input = fc.array(byte, { maxLength: 120 }).map((a) => Uint8Array.from(a));
  const offsets = fc.array(fc.nat(), { maxLength: 10 });

  test('random byte streams: the same lines in any split, matching the whole-input rules', () => {
    fc.assert(
      fc.property(input, offsets, fc.integer({ min: 1, max: 12 }), (bytes, cuts, max) => {
        const lines = linesOf(cut(bytes, cuts), max);
        assert.deepEqual(lines, model(bytes, max));
        assert.deepEqual(lines, linesOf([bytes], max));
      }),
      { numRuns: 2000, seed: 0x11e },
    );
  });

  test('random byte streams split at every offset', () => {
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 20 }), fc.integer({ min: 1, max: 6 }), (a, max) => {
        splitInvariant(Buffer.from(a), max);
      }),
      { numRuns: 100, seed: 3 },
    );
  });

  test('buffered bytes never exceed the limit plus one after the lines are read', () => {
    fc.assert(
      fc.property(input, offsets, fc.integer({ min: 1, max: 12 }), (bytes, cuts, max) => {
        assert.ok(read(cut(bytes, cuts), max).peak <= max + 1);
      }),
      { numRuns: 500, seed: 5 },
    );
  });

  test('a line of good commands never yields more lines than it has CRLFs', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('NOOP', 'RSET', '\n', '\r', 'QUIT', '.'), { maxLength: 12 }), offsets, (words, cuts) => {
        const text = words.join('') + '\r\n';
        const lines = linesOf(cut(bin(text), cuts));
        assert.equal(lines.length, text.split('\r\n').length - 1);
      }),
      { numRuns: 300, seed: 9 },
    );
  });
});
