/** Ways to cut a byte string into chunks, for framers that must not care where TCP cuts. */

/** Every cut into two pieces, then one byte at a time. */
export function* twoWaySplits(input: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= input.length; i++) yield [input.subarray(0, i), input.subarray(i)];
  yield [...input].map((b) => Buffer.from([b]));
}

/** Every cut into three pieces (for short inputs: quadratic). */
export function* threeWaySplits(input: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= input.length; i++) {
    for (let j = i; j <= input.length; j++) yield [input.subarray(0, i), input.subarray(i, j), input.subarray(j)];
  }
}

/** `input` cut at the given offsets (any order, duplicates allowed; taken modulo length + 1). */
export function cut(input: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => o % (input.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    out.push(input.subarray(from, p));
    from = p;
  }
  out.push(input.subarray(from));
  return out;
}
