/**
 * Command lines out of a byte stream.
 *
 * A command line ends at CRLF and nowhere else (RFC 5321 §2.3.8). A lone LF or CR inside it does
 * not end it: the whole line up to the CRLF is refused, so `NOOP\nRSET\r\n` is one bad line and
 * never two commands (the command-side half of SMTP smuggling). Bytes are kept as Buffers until a
 * line is complete; a line longer than the limit is dropped as it arrives, so a client cannot
 * make us buffer without bound.
 */
import { isUtf8 } from 'node:buffer';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

export type LineError = 'bare-line-end' | 'too-long' | 'not-utf8';
export type CommandLine = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly error: LineError };

export class LineReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** True while the bytes of an over-long line are being skipped up to its CRLF. */
  private discarding = false;

  constructor(private readonly maxLength: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.pos >= this.buf.length) {
      this.buf = chunk;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    }
    this.pos = 0;
  }

  /** Bytes received but not yet returned as lines. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos;
  }

  /** The next complete line, or undefined when more bytes are needed. */
  next(): CommandLine | undefined {
    const end = this.buf.indexOf(CRLF, this.pos);
    if (end === -1) {
      this.limitPartialLine();
      return undefined;
    }
    const line = this.buf.subarray(this.pos, end);
    this.pos = end + 2;
    if (this.discarding) {
      this.discarding = false;
      return { ok: false, error: 'too-long' };
    }
    if (line.length > this.maxLength) return { ok: false, error: 'too-long' };
    if (line.indexOf(LF) !== -1 || line.indexOf(CR) !== -1) return { ok: false, error: 'bare-line-end' };
    if (!isUtf8(line)) return { ok: false, error: 'not-utf8' };
    return { ok: true, text: line.toString('utf8') };
  }

  /** Hand over everything buffered (for the DATA framer) and start empty. */
  take(): Buffer {
    const rest = this.buf.subarray(this.pos);
    this.buf = EMPTY;
    this.pos = 0;
    this.discarding = false;
    return rest;
  }

  /** Forget everything buffered: after STARTTLS nothing sent in plaintext may be executed. */
  discard(): void {
    this.take();
  }

  private limitPartialLine(): void {
    const last = this.buf[this.buf.length - 1];
    // A trailing CR may be the first half of the CRLF that ends the line: it is not line content,
    // so a line of exactly maxLength bytes is not refused because its CR arrived before its LF.
    const pending = this.buf.length - this.pos - (last === CR ? 1 : 0);
    if (!this.discarding && pending <= this.maxLength) return;
    // Keep a trailing CR: it may be the first half of the CRLF that ends the long line.
    this.discarding = true;
    this.buf = last === CR ? this.buf.subarray(this.buf.length - 1) : EMPTY;
    this.pos = 0;
  }
}
