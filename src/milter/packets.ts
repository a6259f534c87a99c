/**
 * Milter packet framing: a 32-bit length in network byte order (it counts the code byte and the
 * data), one code byte, the data. Strings in the data end with a NUL byte.
 *
 * PacketReader takes bytes as the socket hands them over, split anywhere, and gives back whole
 * packets; a length that cannot be right (0, or larger than the limit) is an error, and the
 * reader is useless after it (the stream cannot be resynchronised).
 */

export interface Packet {
  /** The code: one ASCII character (`O`, `c`, `h` ...). */
  readonly code: string;
  readonly data: Buffer;
}

const LENGTH_BYTES = 4;
/** The default limit on a packet's data: 1 MB, the largest size libmilter ever uses (MDS_1M). */
export const MAX_PACKET_DATA = 1024 * 1024;

/** One packet on the wire. `data` parts are joined (strings as UTF-8). */
export function encodePacket(code: string, ...data: readonly (Buffer | string)[]): Buffer {
  if (code.length !== 1 || code.charCodeAt(0) > 0x7f) throw new TypeError(`milter packet code must be one ASCII character, not ${JSON.stringify(code)}`);
  const parts = data.map((d) => (typeof d === 'string' ? Buffer.from(d, 'utf8') : d));
  let size = 1;
  for (const p of parts) size += p.length;
  const head = Buffer.allocUnsafe(LENGTH_BYTES + 1);
  head.writeUInt32BE(size, 0);
  head.write(code, LENGTH_BYTES, 'latin1');
  return Buffer.concat([head, ...parts], LENGTH_BYTES + size);
}

/** A string with its terminating NUL, as the protocol writes them. */
export function cstring(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([bytes, NUL], bytes.length + 1);
}
const NUL = Buffer.alloc(1);

/** A 32-bit unsigned integer in network byte order. */
export function uint32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

/**
 * Split `data` into its NUL-terminated strings (decoded as UTF-8). With `exact`, the data must be
 * exactly that many strings, each terminated; otherwise returns as many as there are, and a last
 * unterminated piece counts as an error (undefined).
 */
export function cstrings(data: Buffer, exact?: number): string[] | undefined {
  const out: string[] = [];
  let start = 0;
  while (start < data.length) {
    const end = data.indexOf(0, start);
    if (end === -1) return undefined;
    out.push(data.toString('utf8', start, end));
    start = end + 1;
  }
  if (exact !== undefined && out.length !== exact) return undefined;
  return out;
}

export type ReaderResult = { readonly packets: Packet[]; readonly error?: string };

export class PacketReader {
  private parts: Buffer[] = [];
  private buffered = 0;
  private failed: string | undefined;

  constructor(private readonly maxData = MAX_PACKET_DATA) {}

  /** Feed bytes; returns the packets completed by them, and an error once the stream is broken. */
  push(chunk: Buffer): ReaderResult {
    if (this.failed !== undefined) return { packets: [], error: this.failed };
    if (chunk.length > 0) {
      this.parts.push(chunk);
      this.buffered += chunk.length;
    }
    const packets: Packet[] = [];
    while (this.buffered >= LENGTH_BYTES) {
      const size = this.peekLength();
      if (size === 0 || size - 1 > this.maxData) {
        this.failed = size === 0 ? 'a milter packet of length 0' : `a milter packet of ${size} bytes (the limit is ${this.maxData + 1})`;
        this.parts = [];
        this.buffered = 0;
        return { packets, error: this.failed };
      }
      if (this.buffered < LENGTH_BYTES + size) break;
      const whole = this.take(LENGTH_BYTES + size);
      packets.push({ code: String.fromCharCode(whole[LENGTH_BYTES]!), data: whole.subarray(LENGTH_BYTES + 1) });
    }
    return { packets };
  }

  /** Bytes held that do not make a whole packet yet. */
  get pending(): number {
    return this.buffered;
  }

  private peekLength(): number {
    const first = this.parts[0]!;
    if (first.length >= LENGTH_BYTES) return first.readUInt32BE(0);
    const joined = Buffer.concat(this.parts, this.buffered);
    this.parts = [joined];
    return joined.readUInt32BE(0);
  }

  /** Remove and return the first `n` bytes (one copy at most). */
  private take(n: number): Buffer {
    const first = this.parts[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.parts, this.buffered);
      out = joined.subarray(0, n);
      this.parts = joined.length > n ? [joined.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}
