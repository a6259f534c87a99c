/**
 * The DATA framer: only <CRLF>.<CRLF> ends a message, dot-unstuffing, bare CR/LF accounting, the
 * bytes after the terminator handed back exactly, and the same outcome however the input is split.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataFramer, type BareLineEndPolicy } from '../../src/protocol/data-framer.ts';
import { ByteSearchScanner, VectorScanner, lineScanModule, lineScanner, type LineScanner } from '../../src/protocol/line-scan.ts';
import { cut, threeWaySplits, twoWaySplits } from '../helpers/splits.ts';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

interface Outcome {
  /** Everything the sink received, concatenated. */
  readonly body: string;
  readonly bare: number;
  readonly done: boolean;
  /** The bytes returned after the terminator plus every chunk fed afterwards; undefined while not done. */
  readonly rest: string | undefined;
}

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const str = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/**
 * Feed `chunks` like the session does: until the framer returns the leftover, then everything else
 * belongs to the command reader (collected into `rest`).
 */
function runWith(scanner: LineScanner, chunks: readonly Uint8Array[], policy?: BareLineEndPolicy): Outcome {
  const parts: Buffer[] = [];
  const framer = new DataFramer((part) => {
    assert.ok(Buffer.isBuffer(part), 'sink gets Buffers');
    assert.ok(part.length > 0, 'sink never gets an empty part');
    // Copy: the sink is handed slices of the caller's chunks.
    parts.push(Buffer.from(part));
  }, policy, scanner);
  let rest: Buffer[] | undefined;
  for (const chunk of chunks) {
    if (rest !== undefined) {
      rest.push(Buffer.from(chunk));
      continue;
    }
    const left = framer.feed(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    assert.equal(framer.done, left !== undefined, 'done exactly when feed returned the leftover');
    if (left !== undefined) rest = [left];
  }
  return {
    body: str(Buffer.concat(parts)),
    bare: framer.bareLineEnds,
    done: framer.done,
    rest: rest === undefined ? undefined : str(Buffer.concat(rest)),
  };
}


/**
 * An independent model of RFC 5321 §4.5.2 over the whole input at once, byte by byte: a line
 * starts only after a real CRLF; a line starting with a dot loses it unless it is `.<CRLF>`.
 * Bytes still undecided at the end (a held dot, `.` CR, a trailing CR) are treated like the
 * streaming framer does: the dot is held back, a trailing CR is already content.
 */
function model(input: Uint8Array, policy: BareLineEndPolicy = 'keep'): Outcome {
  const out: number[] = [];
  const lone = (byte: number): void => {
    bare++;
    if (policy === 'normalize') out.push(CR, LF);
    else out.push(byte);
  };
  let bare = 0;
  let lineStart = true;
  let i = 0;
  const n = input.length;
  while (i < n) {
    if (lineStart) {
      lineStart = false;
      if (input[i] === DOT) {
        if (i + 1 >= n) break;
        if (input[i + 1] === CR) {
          if (i + 2 >= n) break;
          if (input[i + 2] === LF) {
            return { body: str(Uint8Array.from(out)), bare, done: true, rest: str(input.subarray(i + 3)) };
          }
        }
        i++;
        continue;
      }
    }
    const c = input[i]!;
    if (c === CR) {
      if (i + 1 >= n) {
        out.push(CR);
        break;
      }
      if (input[i + 1] === LF) {
        out.push(CR, LF);
        i += 2;
        lineStart = true;
        continue;
      }
      lone(CR);
      i++;
      continue;
    }
    if (c === LF) lone(LF);
    else out.push(c);
    i++;
  }
  return { body: str(Uint8Array.from(out)), bare, done: false, rest: undefined };
}

/** Where the message ends, found without any state machine: the first CRLF.CRLF, counting the start as after a CRLF. */
function terminatorEnd(input: Uint8Array): number {
  const k = Buffer.concat([bin('\r\n'), Buffer.from(input)]).indexOf(bin('\r\n.\r\n'));
  return k === -1 ? -1 : k + 3;
}

/** Bare CR/LF in a complete body: CR not followed by LF, LF not preceded by CR. */
function countBare(body: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === CR && body[i + 1] !== LF) n++;
    if (body[i] === LF && (i === 0 || body[i - 1] !== CR)) n++;
  }
  return n;
}

/** Each lone CR or LF written as CRLF. */
function normalizeBody(body: Uint8Array): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === CR && body[i + 1] === LF) {
      out += '\r\n';
      i++;
    } else if (c === CR || c === LF) out += '\r\n';
    else out += String.fromCharCode(c);
  }
  return out;
}

/** What an SMTP client sends: a dot before every line that starts with one, then `.CRLF`. */
function stuff(body: Uint8Array): Buffer {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (lineStart && c === DOT) out.push(DOT);
    out.push(c);
    lineStart = c === LF && i > 0 && body[i - 1] === CR;
  }
  out.push(DOT, CR, LF);
  return Buffer.from(out);
}

/**
 * Every case runs three ways: with the vector scan as the daemon uses it, with loads of 16 bytes
 * (so that short inputs cross the scan's load boundaries too), and with the byte search that serves
 * where WebAssembly cannot run.
 */
const WAYS: ReadonlyArray<readonly [string, LineScanner]> = [
  ['vector scan', lineScanner],
  ['vector scan, 16-byte loads', new VectorScanner(lineScanModule!, 16)],
  ['byte search', new ByteSearchScanner()],
];

test('Node 20 runs the vector scan: the daemon does not fall back to the byte search', () => {
  assert.ok(lineScanner instanceof VectorScanner);
});

for (const [way, scanner] of WAYS) {
  const run = (chunks: readonly Uint8Array[], policy?: BareLineEndPolicy): Outcome => runWith(scanner, chunks, policy);

  /** Run `input` split every way and check the outcome never changes; return it. */
  function splitInvariant(input: Buffer, policy?: BareLineEndPolicy, threeWay = false): Outcome {
    const whole = run([input], policy);
    for (const chunks of twoWaySplits(input)) {
      assert.deepEqual(run(chunks, policy), whole, `split ${JSON.stringify(chunks.map(str))}`);
    }
    if (threeWay) {
      for (const chunks of threeWaySplits(input)) {
        assert.deepEqual(run(chunks, policy), whole, `split ${JSON.stringify(chunks.map(str))}`);
      }
    }
    return whole;
  }

  describe(`DataFramer (${way}): the terminator`, () => {
    test('a plain message ends at CRLF.CRLF and hands back nothing more', () => {
      const r = run([bin('Subject: x\r\n\r\nbody\r\n.\r\n')]);
      assert.deepEqual(r, { body: 'Subject: x\r\n\r\nbody\r\n', bare: 0, done: true, rest: '' });
    });

    test('.CRLF at the very start is an empty message', () => {
      for (const chunks of twoWaySplits(bin('.\r\nQUIT\r\n'))) {
        assert.deepEqual(run(chunks), { body: '', bare: 0, done: true, rest: 'QUIT\r\n' });
      }
    });

    test('feed returns an empty Buffer, not undefined, when the chunk ends with the terminator', () => {
      const framer = new DataFramer(() => undefined, 'keep', scanner);
      const left = framer.feed(bin('x\r\n.\r\n'));
      assert.ok(Buffer.isBuffer(left));
      assert.equal(left.length, 0);
      assert.equal(framer.done, true);
    });

    test('returns undefined while the message goes on', () => {
      const framer = new DataFramer(() => undefined, 'keep', scanner);
      assert.equal(framer.feed(bin('line\r\n')), undefined);
      assert.equal(framer.feed(bin('.')), undefined);
      assert.equal(framer.feed(bin('\r')), undefined);
      assert.equal(framer.done, false);
      assert.deepEqual(framer.feed(bin('\n')), Buffer.alloc(0));
    });

    test('the terminator split across chunks in every way', () => {
      const input = bin('hello\r\n.\r\nQUIT\r\n');
      const r = splitInvariant(input, 'keep', true);
      assert.deepEqual(r, { body: 'hello\r\n', bare: 0, done: true, rest: 'QUIT\r\n' });
      // The exact four pieces of the terminator in separate chunks.
      assert.deepEqual(run(['hello\r', '\n', '.', '\r', '\n', 'QUIT\r\n'].map(bin)), r);
    });

    test('leftover bytes after the terminator are returned exactly (pipelined commands)', () => {
      const after = 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n\x00\xff\r\n';
      const r = splitInvariant(bin(`x\r\n.\r\n${after}`));
      assert.deepEqual(r, { body: 'x\r\n', bare: 0, done: true, rest: after });
      // A second terminator in the leftover belongs to the next message, not to this one.
      const twice = run([bin('a\r\n.\r\nb\r\n.\r\nQUIT\r\n')]);
      assert.deepEqual(twice, { body: 'a\r\n', bare: 0, done: true, rest: 'b\r\n.\r\nQUIT\r\n' });
    });

    test('after the end, feed hands every chunk back unchanged and the sink hears nothing more', () => {
      let calls = 0;
      const framer = new DataFramer(() => calls++, 'keep', scanner);
      assert.deepEqual(framer.feed(bin('a\r\n.\r\n')), Buffer.alloc(0));
      const seen = calls;
      const chunk = bin('.\r\n..\r\n\n.\n');
      assert.equal(framer.feed(chunk), chunk);
      const empty = Buffer.alloc(0);
      assert.equal(framer.feed(empty), empty);
      assert.equal(calls, seen);
      assert.equal(framer.done, true);
      assert.equal(framer.bareLineEnds, 0);
    });

    test('empty chunks change nothing', () => {
      const framer = new DataFramer(() => undefined, 'keep', scanner);
      for (const piece of ['a\r\n', '', '.', '', '\r', '', '\n']) {
        const left = framer.feed(bin(piece));
        if (piece === '\n') assert.deepEqual(left, Buffer.alloc(0));
        else assert.equal(left, undefined);
      }
    });

    test('without a terminator nothing ends, and what came is content', () => {
      const r = splitInvariant(bin('a\r\nb\r\n'));
      assert.deepEqual(r, { body: 'a\r\nb\r\n', bare: 0, done: false, rest: undefined });
    });
  });

  describe(`DataFramer (${way}): smuggling table`, () => {
    // Each input carries a fake end-of-data followed by a real one and a pipelined QUIT: the fake
    // one must be content, the real one must end the message, in both policies and any split.
    type Row = {
      name: string;
      input: string;
      keep: string;
      normalize: string;
      bare: number;
    };
    const TAIL = 'tail\r\n.\r\nQUIT\r\n';
    const rows: Row[] = [
      { name: 'LF . LF', input: 'a\n.\nb\r\n', keep: 'a\n.\nb\r\n', normalize: 'a\r\n.\r\nb\r\n', bare: 2 },
      { name: 'LF . CRLF', input: 'a\n.\r\nb\r\n', keep: 'a\n.\r\nb\r\n', normalize: 'a\r\n.\r\nb\r\n', bare: 1 },
      { name: 'CRLF . LF', input: 'a\r\n.\nb\r\n', keep: 'a\r\n\nb\r\n', normalize: 'a\r\n\r\nb\r\n', bare: 1 },
      { name: 'CR . CR', input: 'a\r.\rb\r\n', keep: 'a\r.\rb\r\n', normalize: 'a\r\n.\r\nb\r\n', bare: 2 },
      { name: 'CR . CRLF', input: 'a\r.\r\nb\r\n', keep: 'a\r.\r\nb\r\n', normalize: 'a\r\n.\r\nb\r\n', bare: 1 },
      { name: 'CRLF . CR', input: 'a\r\n.\rb\r\n', keep: 'a\r\n\rb\r\n', normalize: 'a\r\n\r\nb\r\n', bare: 1 },
      { name: 'CRLF . CR CR LF', input: 'a\r\n.\r\r\nb\r\n', keep: 'a\r\n\r\r\nb\r\n', normalize: 'a\r\n\r\n\r\nb\r\n', bare: 1 },
      { name: 'LF . LF at the start', input: '\n.\nb\r\n', keep: '\n.\nb\r\n', normalize: '\r\n.\r\nb\r\n', bare: 2 },
      { name: 'CR . CR at the start', input: '\r.\rb\r\n', keep: '\r.\rb\r\n', normalize: '\r\n.\r\nb\r\n', bare: 2 },
      { name: '. LF at the start', input: '.\nb\r\n', keep: '\nb\r\n', normalize: '\r\nb\r\n', bare: 1 },
      { name: 'NUL before the dot', input: 'a\r\n\x00.\r\nb\r\n', keep: 'a\r\n\x00.\r\nb\r\n', normalize: 'a\r\n\x00.\r\nb\r\n', bare: 0 },
      { name: 'NUL after the dot', input: 'a\r\n.\x00\r\nb\r\n', keep: 'a\r\n\x00\r\nb\r\n', normalize: 'a\r\n\x00\r\nb\r\n', bare: 0 },
      { name: 'NUL inside the CRLF after the dot', input: 'a\r\n.\r\x00\nb\r\n', keep: 'a\r\n\r\x00\nb\r\n', normalize: 'a\r\n\r\n\x00\r\nb\r\n', bare: 2 },
      { name: 'NUL inside the CRLF before the dot', input: 'a\r\x00\n.\r\nb\r\n', keep: 'a\r\x00\n.\r\nb\r\n', normalize: 'a\r\n\x00\r\n.\r\nb\r\n', bare: 2 },
      { name: 'space after the dot', input: 'a\r\n. \r\nb\r\n', keep: 'a\r\n \r\nb\r\n', normalize: 'a\r\n \r\nb\r\n', bare: 0 },
      { name: 'stuffed lone dot', input: 'a\r\n..\r\nb\r\n', keep: 'a\r\n.\r\nb\r\n', normalize: 'a\r\n.\r\nb\r\n', bare: 0 },
      { name: 'stuffed dot line', input: 'a\r\n..x\r\nb\r\n', keep: 'a\r\n.x\r\nb\r\n', normalize: 'a\r\n.x\r\nb\r\n', bare: 0 },
      { name: 'unstuffed dot line loses its dot', input: 'a\r\n.x\r\nb\r\n', keep: 'a\r\nx\r\nb\r\n', normalize: 'a\r\nx\r\nb\r\n', bare: 0 },
      { name: 'stuffed dots at the start', input: '..x\r\n...\r\n', keep: '.x\r\n..\r\n', normalize: '.x\r\n..\r\n', bare: 0 },
      { name: 'dot after a bare LF is content', input: 'a\n..x\r\n', keep: 'a\n..x\r\n', normalize: 'a\r\n..x\r\n', bare: 1 },
      { name: 'dot in mid-line', input: 'a.\r\n.b.\r\n', keep: 'a.\r\nb.\r\n', normalize: 'a.\r\nb.\r\n', bare: 0 },
    ];
    for (const row of rows) {
      test(`${row.name}: content, not the end`, () => {
        const input = bin(row.input + TAIL);
        const keep = splitInvariant(input, 'keep');
        assert.deepEqual(keep, { body: row.keep + 'tail\r\n', bare: row.bare, done: true, rest: 'QUIT\r\n' });
        const normalize = splitInvariant(input, 'normalize');
        assert.deepEqual(normalize, { body: row.normalize + 'tail\r\n', bare: row.bare, done: true, rest: 'QUIT\r\n' });
        assert.deepEqual(keep, model(input, 'keep'));
        assert.deepEqual(normalize, model(input, 'normalize'));
      });
    }

    test('a fake end alone never ends the message', () => {
      for (const fake of ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r', '\r.\r\n', '\r\n.\r', '\r\n\x00.\r\n', '\r\n.\x00\r\n']) {
        for (const policy of ['keep', 'normalize'] as const) {
          const r = splitInvariant(bin(`x${fake}QUIT\r\n`), policy);
          assert.equal(r.done, false, JSON.stringify(fake));
        }
      }
    });

    test('a real CRLF.CRLF after bare line ends still ends the message', () => {
      assert.deepEqual(splitInvariant(bin('a\n\r\n.\r\nQUIT\r\n')), { body: 'a\n\r\n', bare: 1, done: true, rest: 'QUIT\r\n' });
      assert.deepEqual(splitInvariant(bin('a\r\r\n.\r\nQUIT\r\n')), { body: 'a\r\r\n', bare: 1, done: true, rest: 'QUIT\r\n' });
      assert.deepEqual(splitInvariant(bin('a\r\r\n.\r\nQUIT\r\n'), 'normalize'), {
        body: 'a\r\n\r\n',
        bare: 1,
        done: true,
        rest: 'QUIT\r\n',
      });
    });

    test('the default policy is keep', () => {
      assert.deepEqual(run([bin('a\nb\rc\r\n.\r\n')]), { body: 'a\nb\rc\r\n', bare: 2, done: true, rest: '' });
    });

    test('bareLineEnds counts every lone CR and LF, once each', () => {
      const input = bin('\n\n\r\r\r\n\n\r\r\n.\r\n');
      // \n \n \r \r (CRLF) \n \r (CRLF) -> 6 lone ones
      for (const policy of ['keep', 'normalize'] as const) {
        const r = splitInvariant(input, policy);
        assert.equal(r.bare, 6);
        assert.equal(r.done, true);
      }
      assert.equal(run([input], 'normalize').body, '\r\n'.repeat(8));
      assert.equal(run([input]).body, '\n\n\r\r\r\n\n\r\r\n');
    });

    test('a CR held at a chunk end is resolved by the next chunk', () => {
      for (const policy of ['keep', 'normalize'] as const) {
        const r = run(['a\r', 'b\r', '\n', '.\r', 'x\r\n.\r\n'].map(bin), policy);
        assert.deepEqual(r, model(bin('a\rb\r\n.\rx\r\n.\r\n'), policy));
        assert.equal(r.bare, 2);
      }
    });
  });

  describe(`DataFramer (${way}): output`, () => {
    test('normalize writes lone CR and LF as CRLF and keeps the rest byte for byte', () => {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const input = Buffer.concat([bytes, bin('\r\n.\r\n')]);
      const r = run([input], 'normalize');
      assert.equal(r.body, normalizeBody(Buffer.concat([bytes, bin('\r\n')])));
      assert.equal(r.bare, 2);
      const k = run([input], 'keep');
      assert.equal(k.body, str(Buffer.concat([bytes, bin('\r\n')])));
    });

    test('the sink gets slices of the input, not copies, for plain content', () => {
      const input = bin('no dots here\r\nat all\r\n');
      const parts: Buffer[] = [];
      new DataFramer((p) => parts.push(p), 'keep', scanner).feed(input);
      assert.equal(parts.length, 1);
      assert.equal(parts[0]!.buffer, input.buffer);
    });

    test('a chunk longer than one scan load, with work on both sides of the load edges, matches the model', () => {
      // Lines of every length up to 70, and now and then a stuffed dot, a lone LF or a lone CR,
      // so that some of them straddle offset 65536, where the default scanner loads again.
      let text = '';
      for (let k = 0; text.length < 200_000; k++) {
        if (k % 97 === 0) text += '..dot\r\n';
        else if (k % 89 === 0) text += 'lone\n';
        else if (k % 83 === 0) text += 'c\rr\r\n';
        else text += 'x'.repeat(k % 71) + '\r\n';
      }
      const input = bin(text + '.\r\nQUIT\r\n');
      for (const policy of ['keep', 'normalize'] as const) {
        const expected = model(input, policy);
        assert.equal(expected.done, true);
        assert.deepEqual(run([input], policy), expected);
        assert.deepEqual(run([input.subarray(0, 65535), input.subarray(65535)], policy), expected);
      }
    });

    test('a large message in big chunks is passed through in few parts', () => {
      const line = 'x'.repeat(998) + '\r\n';
      const body = line.repeat(2000);
      const input = bin(body + '.\r\n');
      let parts = 0;
      let size = 0;
      const framer = new DataFramer((p) => {
        parts++;
        size += p.length;
      }, 'keep', scanner);
      let left: Buffer | undefined;
      for (let i = 0; i < input.length; i += 65536) left = framer.feed(input.subarray(i, i + 65536));
      assert.deepEqual(left, Buffer.alloc(0));
      assert.equal(size, body.length);
      assert.ok(parts <= Math.ceil(input.length / 65536) + 1, `${parts} parts`);
    });
  });

  describe(`DataFramer (${way}): properties`, () => {
    const byte = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(CR, LF, DOT) },
      { weight: 1, arbitrary: fc.constantFrom(0x00, 0x20, 0x41, 0x7f, 0xff) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    );
    const bytes = (maxLength: number) => fc.array(byte, { maxLength }).map((a) => Uint8Array.from(a));
    const offsets = fc.array(fc.nat(), { maxLength: 8 });
    const policy = fc.constantFrom<BareLineEndPolicy>('keep', 'normalize');

    test('dot-stuffing round trip: a body ending in CRLF, stuffed and terminated, comes back as it was', () => {
      fc.assert(
        fc.property(bytes(60), offsets, fc.uint8Array({ maxLength: 8 }), (raw, cuts, after) => {
          const body = Uint8Array.from([...raw, CR, LF]);
          const wire = Buffer.concat([stuff(body), Buffer.from(after)]);
          const keep = run(cut(wire, cuts), 'keep');
          assert.deepEqual(keep, { body: str(body), bare: countBare(body), done: true, rest: str(after) });
          const normalize = run(cut(wire, cuts), 'normalize');
          assert.deepEqual(normalize, { body: normalizeBody(body), bare: countBare(body), done: true, rest: str(after) });
        }),
        { numRuns: 400, seed: 0x5317 },
      );
    });

    test('the empty body round-trips too', () => {
      assert.deepEqual(run([stuff(new Uint8Array(0))]), { body: '', bare: 0, done: true, rest: '' });
    });

    test('random streams end at most once, and only right after the first real CRLF.CRLF', () => {
      fc.assert(
        fc.property(bytes(80), offsets, policy, (input, cuts, pol) => {
          const r = run(cut(input, cuts), pol);
          const end = terminatorEnd(input);
          if (end === -1) {
            assert.equal(r.done, false);
            assert.equal(r.rest, undefined);
          } else {
            assert.equal(r.done, true);
            assert.equal(r.rest, str(input.subarray(end)));
          }
          // Same as the byte-by-byte model, and as one single chunk.
          assert.deepEqual(r, model(input, pol));
          assert.deepEqual(r, run([input], pol));
        }),
        { numRuns: 1500, seed: 0xda7a },
      );
    });

    test('random streams split at every offset give the same outcome', () => {
      fc.assert(
        fc.property(bytes(24), policy, (input, pol) => {
          splitInvariant(Buffer.from(input), pol);
        }),
        { numRuns: 150, seed: 7 },
      );
    });

    test('no exception on any input, in any split, and the sink never gets more than the input plus normalized CRs', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), offsets, policy, (input, cuts, pol) => {
          const r = run(cut(input, cuts), pol);
          assert.ok(r.body.length <= input.length * 2);
          if (pol === 'keep') assert.ok(r.body.length <= input.length);
        }),
        { numRuns: 500, seed: 99 },
      );
    });
  });
}
