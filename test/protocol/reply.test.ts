/**
 * Replies as values and their wire form (RFC 5321 §4.2, RFC 2034/3463 enhanced status codes).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatReply, makeReply, splitLines, type Reply } from '../../src/protocol/reply.ts';

const wire = (code: number, enhanced: string | null, message: string | readonly string[]): string =>
  formatReply(makeReply(code, enhanced, message));

describe('formatReply', () => {
  test('a single line: code, space, enhanced code, text, CRLF', () => {
    assert.equal(wire(250, '2.0.0', 'OK'), '250 2.0.0 OK\r\n');
    assert.equal(wire(550, '5.7.1', 'Go away'), '550 5.7.1 Go away\r\n');
    assert.equal(wire(220, null, 'mx.example ESMTP'), '220 mx.example ESMTP\r\n');
  });

  test('several lines: code-dash on all but the last, the enhanced code on every line', () => {
    assert.equal(wire(250, null, ['mx.example Hi', 'PIPELINING', '8BITMIME']), '250-mx.example Hi\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
    assert.equal(wire(550, '5.7.1', ['one', 'two', 'three']), '550-5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three\r\n');
  });

  test('an empty text still has the space: 334 for an empty AUTH challenge', () => {
    assert.equal(wire(334, null, ''), '334 \r\n');
    assert.equal(wire(334, null, []), '334 \r\n');
    assert.equal(wire(250, null, ['a', '']), '250-a\r\n250 \r\n');
    assert.equal(wire(250, '2.0.0', ''), '250 2.0.0 \r\n');
  });

  test('a hand-made Reply is formatted as it is', () => {
    const reply: Reply = { code: 421, enhanced: '4.3.2', lines: ['bye', 'now'] };
    assert.equal(formatReply(reply), '421-4.3.2 bye\r\n421 4.3.2 now\r\n');
  });
});

describe('makeReply: lines', () => {
  test('a \\n in a message makes several lines; CRLF too', () => {
    assert.deepEqual(makeReply(250, null, 'a\nb\nc').lines, ['a', 'b', 'c']);
    assert.deepEqual(makeReply(250, null, 'a\r\nb').lines, ['a', 'b']);
    assert.deepEqual(makeReply(250, null, ['a\nb', 'c']).lines, ['a', 'b', 'c']);
    assert.equal(wire(451, '4.3.0', 'first\nsecond'), '451-4.3.0 first\r\n451 4.3.0 second\r\n');
  });

  test('control characters are stripped, TAB is kept', () => {
    assert.deepEqual(makeReply(250, null, 'a\rb\x00c\x1bd\x7fe\tf').lines, ['abcde\tf']);
    // A message cannot smuggle a reply line of its own.
    const out = wire(550, '5.1.1', 'no such user\r\n250 2.0.0 OK');
    assert.equal(out, '550-5.1.1 no such user\r\n550 5.1.1 250 2.0.0 OK\r\n');
    assert.equal(out.split('\r\n').length, 3);
    for (const line of out.split('\r\n').slice(0, -1)) assert.match(line, /^550[- ]/);
  });

  test('non-string array entries are turned into text', () => {
    assert.deepEqual(makeReply(250, null, [42 as unknown as string]).lines, ['42']);
  });

  test('splitLines alone', () => {
    assert.deepEqual(splitLines(''), ['']);
    assert.deepEqual(splitLines([]), ['']);
    assert.deepEqual(splitLines(['\x01a', 'b\x02']), ['a', 'b']);
  });
});

describe('makeReply: enhanced status codes', () => {
  test('the default enhanced code is used when the text carries none', () => {
    assert.equal(makeReply(550, '5.7.1', 'denied').enhanced, '5.7.1');
    assert.equal(makeReply(250, null, 'ok').enhanced, null);
  });

  test('a code at the start of the text wins and is taken out of the text', () => {
    const r = makeReply(550, '5.7.1', '5.1.1 no such user');
    assert.equal(r.enhanced, '5.1.1');
    assert.deepEqual(r.lines, ['no such user']);
    assert.equal(formatReply(r), '550 5.1.1 no such user\r\n');
    assert.equal(makeReply(250, null, '2.1.5 ok').enhanced, '2.1.5');
    assert.equal(makeReply(452, '4.0.0', '4.5.3   too many  ').enhanced, '4.5.3');
    assert.deepEqual(makeReply(452, '4.0.0', '4.5.3   too many  ').lines, ['too many  ']);
    assert.equal(makeReply(550, null, '5.123.456 x').enhanced, '5.123.456');
  });

  test('the class digit is forced to match the reply code', () => {
    assert.equal(makeReply(450, null, '5.7.1 go away').enhanced, '4.7.1');
    assert.equal(makeReply(550, null, '4.7.1 go away').enhanced, '5.7.1');
    assert.equal(makeReply(250, null, '5.0.0 fine').enhanced, '2.0.0');
    assert.equal(wire(450, '5.7.1', 'later'), '450 4.7.1 later\r\n');
    assert.equal(makeReply(421, '5.3.2', 'bye').enhanced, '4.3.2');
  });

  test('an enhanced code alone is the whole text', () => {
    const r = makeReply(250, null, '2.0.0');
    assert.equal(r.enhanced, '2.0.0');
    assert.deepEqual(r.lines, ['']);
    assert.equal(formatReply(r), '250 2.0.0 \r\n');
  });

  test('the same code repeated on later lines is not doubled', () => {
    const r = makeReply(550, null, '5.7.1 first\n5.7.1 second\nthird');
    assert.equal(r.enhanced, '5.7.1');
    assert.deepEqual(r.lines, ['first', 'second', 'third']);
    assert.equal(formatReply(r), '550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n');
  });

  test('things that only look like a code stay text', () => {
    for (const text of ['5.7.1go away', '3.0.0 x', '6.1.1 x', '5.7 x', '5.1234.1 x', ' 5.7.1 x', '5.7.1.2 x', 'x 5.7.1']) {
      const r = makeReply(550, '5.0.0', text);
      assert.equal(r.enhanced, '5.0.0', text);
      assert.deepEqual(r.lines, [text], text);
    }
  });

  test('a code on a later line only, with none on the first, stays text', () => {
    assert.deepEqual(makeReply(550, '5.0.0', 'first\n5.7.1 second').lines, ['first', '5.7.1 second']);
  });

  test('no enhanced code for the greeting, AUTH challenges and 354', () => {
    assert.equal(makeReply(220, null, 'mx.example ESMTP').enhanced, null);
    assert.equal(makeReply(334, null, 'VXNlcm5hbWU6').enhanced, null);
    assert.equal(makeReply(354, null, 'go ahead').enhanced, null);
    assert.equal(wire(354, null, 'go ahead'), '354 go ahead\r\n');
  });

  test('a 3xx reply never carries an enhanced code, even when one is offered', () => {
    assert.equal(makeReply(354, '2.0.0', 'go ahead').enhanced, null);
    assert.equal(wire(334, '2.0.0', ''), '334 \r\n');
    // In a 3xx text a leading code is plain text (a base64 challenge could look like anything).
    const r = makeReply(354, null, '2.0.0 go ahead');
    assert.equal(r.enhanced, null);
    assert.deepEqual(r.lines, ['2.0.0 go ahead']);
  });
});

describe('reply properties', () => {
  test('any message gives well-formed wire text: CRLF only at line ends, code on every line', () => {
    const code = fc.constantFrom(220, 221, 250, 251, 334, 354, 421, 450, 451, 550, 554);
    const enhanced = fc.constantFrom(null, '2.0.0', '4.7.1', '5.1.1');
    const ch = fc.oneof(
      fc.constantFrom('\r', '\n', '\t', ' ', '.', '5', '2', '4', '\x00', '\x7f', 'é'),
      fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)),
    );
    const text = fc.array(ch, { maxLength: 40 }).map((a) => a.join(''));
    const message = fc.oneof(text, fc.array(text, { maxLength: 4 }));
    fc.assert(
      fc.property(code, enhanced, message, (c, e, m) => {
        const reply = makeReply(c, e, m);
        const out = formatReply(reply);
        assert.ok(out.endsWith('\r\n'));
        const lines = out.slice(0, -2).split('\r\n');
        assert.equal(lines.length, reply.lines.length);
        lines.forEach((line, i) => {
          assert.equal(line.slice(0, 4), `${c}${i === lines.length - 1 ? ' ' : '-'}`);
          assert.doesNotMatch(line, /[\x00-\x08\x0a-\x1f\x7f]/);
        });
        if (reply.enhanced !== null) {
          assert.match(reply.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/);
          assert.equal(reply.enhanced[0], String(c)[0]);
        }
        if (c >= 300 && c < 400) assert.equal(reply.enhanced, null);
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});
