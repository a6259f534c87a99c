/**
 * Line ends of a message on its way out, converted chunk by chunk as it streams (never held
 * whole). A CR at the end of one chunk and the LF at the start of the next are one line end: the
 * converters hold such a CR back until the next chunk (or the end) shows what follows it.
 *
 * - CrlfToLf: every CRLF becomes LF; a CR that no LF follows is kept. For UNIX mail programs and
 *   Maildir files (qmail-queue, a pipe, maildir).
 * - DataEncoder: the body of SMTP DATA (RFC 5321 §4.5.2): every line end (CRLF, a bare LF, a bare
 *   CR) becomes CRLF, a dot that starts a line is doubled, and the end adds a CRLF if the last
 *   line had none, then the final `.` line. With `'lf'` the same with LF line ends, for Exim's
 *   batched SMTP on a pipe.
 * - convertStream: runs a message (a Readable, or any async iterable of chunks) through one of
 *   them, checking an AbortSignal between chunks.
 */
import { Buffer } from 'node:buffer';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BYTE = Buffer.from([CR]);
const EMPTY = Buffer.alloc(0);

/** Converts a stream of chunks; `end()` gives what is still held and what closes the stream. */
export interface LineEndConverter {
  /** The converted form of the next chunk (empty when all of it is held back). */
  convert(chunk: Buffer): Buffer;
  /** The rest after the last chunk. The converter is ready for a new stream afterwards. */
  end(): Buffer;
}

/** CRLF to LF; a CR that no LF follows is kept as it is. */
export class CrlfToLf implements LineEndConverter {
  private heldCr = false;

  convert(chunk: Buffer): Buffer {
    if (chunk.length === 0) return EMPTY;
    const parts: Buffer[] = [];
    if (this.heldCr) {
      this.heldCr = false;
      if (chunk[0] !== LF) parts.push(CR_BYTE);
    }
    let start = 0;
    for (let i = chunk.indexOf(CR); i !== -1; i = chunk.indexOf(CR, i + 1)) {
      if (i === chunk.length - 1) {
        parts.push(chunk.subarray(start, i));
        this.heldCr = true;
        start = chunk.length;
        break;
      }
      if (chunk[i + 1] === LF) {
        parts.push(chunk.subarray(start, i));
        start = i + 1;
      }
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** A CR still held (the message ended with a bare CR), else nothing. */
  end(): Buffer {
    const held = this.heldCr;
    this.heldCr = false;
    return held ? CR_BYTE : EMPTY;
  }
}

/** SMTP DATA encoding: one kind of line end (CRLF by default), dot-stuffing, the final dot. */
export class DataEncoder implements LineEndConverter {
  protected lineStart = true;
  protected heldCr = false;
  private readonly crlf: boolean;

  constructor(
    lineEnd: 'crlf' | 'lf' = 'crlf',
    /** Double a dot that starts a line (false only for ToCrlf). */
    private readonly dotStuffing = true,
  ) {
    this.crlf = lineEnd === 'crlf';
  }

  encode(chunk: Buffer): Buffer {
    const crlf = this.crlf;
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.heldCr) {
        this.heldCr = false;
        if (crlf) out[n++] = CR;
        out[n++] = LF;
        this.lineStart = true;
        if (byte === LF) continue;
      }
      if (byte === CR) {
        this.heldCr = true;
        continue;
      }
      if (byte === LF) {
        if (crlf) out[n++] = CR;
        out[n++] = LF;
        this.lineStart = true;
        continue;
      }
      if (this.dotStuffing && this.lineStart && byte === DOT) out[n++] = DOT;
      out[n++] = byte;
      this.lineStart = false;
    }
    return out.subarray(0, n);
  }

  /** The same as encode(). */
  convert(chunk: Buffer): Buffer {
    return this.encode(chunk);
  }

  /** What closes the message: a pending line end, a line end if the last line had none, the dot. */
  end(): Buffer {
    const eol = this.crlf ? '\r\n' : '\n';
    const tail = (this.heldCr || !this.lineStart ? eol : '') + '.' + eol;
    this.heldCr = false;
    this.lineStart = true;
    return Buffer.from(tail, 'latin1');
  }
}

/**
 * The chunks of `message` through `converter` (unchanged without one), then the converter's end;
 * empty pieces are left out. Strings are taken as UTF-8. `signal` is checked before each chunk
 * (its reason is thrown). When the consumer stops early or throws, or a check fails, the
 * message is destroyed (a Readable's iterator does that when left).
 */
export async function* convertStream(message: AsyncIterable<unknown>, converter?: LineEndConverter, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined> {
  for await (const raw of message) {
    signal?.throwIfAborted();
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : (raw as Buffer);
    const out = converter === undefined ? chunk : converter.convert(chunk);
    if (out.length > 0) yield out;
  }
  if (converter !== undefined) {
    const tail = converter.end();
    if (tail.length > 0) yield tail;
  }
}

/**
 * Every line end (CRLF, a bare LF, a bare CR) to CRLF, nothing else changed (no dots doubled,
 * no final dot): for a body that comes from elsewhere (a milter's replacement body) into the
 * store, which holds CRLF only.
 */
export class ToCrlf extends DataEncoder {
  constructor() {
    super('crlf', false);
  }

  /** A CR held at the very end becomes a CRLF. */
  override end(): Buffer {
    const held = this.heldCr;
    this.heldCr = false;
    this.lineStart = true;
    return held ? Buffer.from('\r\n', 'latin1') : EMPTY;
  }
}
