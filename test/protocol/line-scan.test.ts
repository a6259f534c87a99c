/**
 * The vector scan under the DATA framer: the committed binary is what line-scan.wat compiles to,
 * and it stops exactly where a byte-at-a-time reading of its contract says, whatever the bytes and
 * wherever a load begins and ends. (The framer's own tests run it inside the framer.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ByteSearchScanner, VectorScanner, lineScanModule, type LineScanner } from '../../src/protocol/line-scan.ts';
import { MODULE_PATH, lineScanModuleSource } from '../../scripts/wasm.mjs';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * The contract of `next`, byte by byte: whether `p` stops a scan of `bytes` loaded from offset 0.
 * The byte before the first is taken as an ordinary one, and a CR as the last byte is no stop.
 */
function stopsAt(bytes: Uint8Array, p: number): boolean {
  const before = p > 0 ? bytes[p - 1] : 0x78;
  if (bytes[p] === CR) return p + 1 < bytes.length && bytes[p + 1] !== LF;
  if (bytes[p] === LF) return before !== CR;
  return bytes[p] === DOT && before === LF;
}

/** Where a scan loaded from `at`, at most `window` bytes, stops. */
function expectedStop(bytes: Uint8Array, at: number, window: number): number {
  const loaded = bytes.subarray(at, Math.min(bytes.length, at + window));
  const stop = [...loaded.keys()].find((p) => stopsAt(loaded, p));
  return at + (stop ?? loaded.length);
}

const byte = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(CR, LF, DOT) },
  { weight: 3, arbitrary: fc.constantFrom(0x61, 0x20) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const bytes = fc.array(byte, { maxLength: 300 }).map((a) => Uint8Array.from(a));

test('src/protocol/line-scan-wasm.ts is line-scan.wat compiled (node scripts/wasm.mjs)', async () => {
  assert.equal(readFileSync(MODULE_PATH, 'utf8'), await lineScanModuleSource());
});

test('each stop is the first lone CR, lone LF or dot after a LF, for loads of any size and for the byte search', () => {
  assert.ok(lineScanModule);
  const scanners: Array<[string, LineScanner, number]> = [
    ...[16, 17, 64, 65536].map((window): [string, LineScanner, number] => [`vector scan, window ${window}`, new VectorScanner(lineScanModule!, window), window]),
    ['byte search', new ByteSearchScanner(), Infinity],
  ];
  fc.assert(
    fc.property(bytes, fc.nat(), (input, start) => {
      const at = input.length === 0 ? 0 : start % input.length;
      for (const [name, scanner, window] of scanners) {
        scanner.forget();
        assert.equal(scanner.next(input, at), expectedStop(input, at, window), name);
      }
    }),
    { numRuns: 3000, seed: 0x5ca9 },
  );
});

test('walking a chunk stop by stop uses one load and finds every stop, in order', () => {
  assert.ok(lineScanModule);
  const scanner = new VectorScanner(lineScanModule, 65536);
  fc.assert(
    fc.property(bytes, (input) => {
      scanner.forget();
      // One load from offset 0: from then on the real byte before `at` counts.
      const everyStop = [...input.keys()].filter((p) => stopsAt(input, p));
      const seen: number[] = [];
      for (let at = 0; at < input.length; ) {
        const stop = scanner.next(input, at);
        assert.equal(stop, everyStop.find((p) => p >= at) ?? input.length);
        if (stop < input.length) seen.push(stop);
        at = stop + 1;
      }
      assert.deepEqual(seen, everyStop);
    }),
    { numRuns: 1000, seed: 0x11ae },
  );
});

test('a chunk longer than a load is scanned a load at a time, and a reload follows another caller', () => {
  assert.ok(lineScanModule);
  const scanner = new VectorScanner(lineScanModule, 16);
  const plain = Buffer.from('abcdefgh\r\n'.repeat(10));
  assert.equal(scanner.next(plain, 0), 16);
  assert.equal(scanner.next(plain, 16), 32);
  const other = Buffer.from('x\ny');
  assert.equal(scanner.next(other, 0), 1);
  // Back to the first chunk: its bytes are loaded again, not answered from the other's.
  assert.equal(scanner.next(plain, 32), 48);
  const dotted = Buffer.from('abc\r\n.def\r\n');
  assert.equal(scanner.next(dotted, 0), 5);
});
