/**
 * Turns the un-stuffed bytes of DATA into a message: the header block (parsed once it is complete,
 * while the body still arrives) and the body (into a BodyStore), with the `databytes` limit.
 *
 * The header block ends at the first empty line, or before the first line that is neither a field
 * nor a continuation (that line is then the body's first). Nothing is lost either way: the queued
 * message is the header block, an empty line, and the body.
 */
import { isUtf8 } from 'node:buffer';
import { Header } from './header.ts';
import type { BodyStore } from './body-store.ts';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const EMPTY = Buffer.alloc(0);

export interface AssemblerLimits {
  /** Largest message in bytes; 0 means no limit. */
  readonly maxBytes: number;
  /** Largest header block in bytes. */
  readonly maxHeaderBytes: number;
  /** Most header fields. */
  readonly maxHeaderFields: number;
}

export class MessageAssembler {
  /** Bytes of message data received (after un-stuffing), stored or not. */
  dataSize = 0;
  /** True once more than `maxBytes` arrived: the rest is read but not kept. */
  tooBig = false;
  /** True when the header block passed its limits: the rest is read but not kept. */
  headerTooBig = false;
  /** Set when storing failed (a full spool disk): the rest is read but not kept. */
  storeError: Error | undefined;
  private headerBytes: Buffer = EMPTY;
  private scanPos = 0;
  private fields = 0;
  private header: Header | undefined;
  private bodyParts: Buffer[] = [];

  constructor(
    private readonly body: BodyStore,
    private readonly limits: AssemblerLimits,
  ) {}

  /** The header block, once it is complete. */
  get parsedHeader(): Header | undefined {
    return this.header;
  }

  /** Take un-stuffed bytes (synchronously; call `flush` after each input chunk). */
  write(part: Buffer): void {
    this.dataSize += part.length;
    if (this.tooBig || this.headerTooBig || this.storeError) return;
    if (this.limits.maxBytes > 0 && this.dataSize > this.limits.maxBytes) {
      this.tooBig = true;
      this.bodyParts = [];
      return;
    }
    if (this.header !== undefined) {
      this.bodyParts.push(part);
      return;
    }
    this.headerBytes = this.headerBytes.length === 0 ? part : Buffer.concat([this.headerBytes, part]);
    this.scanHeader();
  }

  /** Store what arrived since the last flush. A failure is kept in `storeError`, never thrown. */
  flush(): Promise<void> | void {
    if (this.bodyParts.length === 0 || this.tooBig || this.headerTooBig || this.storeError) return;
    const parts = this.bodyParts;
    this.bodyParts = [];
    try {
      const pending = this.body.append(parts);
      if (pending) return pending.catch((err: unknown) => this.failed(err));
    } catch (err) {
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    this.storeError = err instanceof Error ? err : new Error(String(err));
    this.bodyParts = [];
  }

  /** The message is complete: close the header block if it never ended, store the rest. */
  finish(): Promise<void> | void {
    if (this.header === undefined && !this.headerTooBig) this.endHeader(this.headerBytes.length, this.headerBytes.length);
    return this.flush();
  }

  private scanHeader(): void {
    const buf = this.headerBytes;
    for (;;) {
      const lf = buf.indexOf(LF, this.scanPos);
      if (lf === -1) break;
      const lineEnd = lf > this.scanPos && buf[lf - 1] === CR ? lf - 1 : lf;
      if (lineEnd === this.scanPos) {
        // The empty line: it separates header and body and belongs to neither.
        this.endHeader(this.scanPos, lf + 1);
        return;
      }
      const first = buf[this.scanPos];
      const continuation = (first === 0x20 || first === 0x09) && this.scanPos > 0;
      if (!continuation && !isFieldStart(buf, this.scanPos, lineEnd)) {
        this.endHeader(this.scanPos, this.scanPos);
        return;
      }
      if (!continuation) this.fields++;
      this.scanPos = lf + 1;
      if (this.overLimits(this.scanPos)) return;
    }
    this.overLimits(buf.length);
  }

  /** Past its limits the header block is not kept: the message will be refused whole. */
  private overLimits(bytes: number): boolean {
    if (bytes <= this.limits.maxHeaderBytes && this.fields <= this.limits.maxHeaderFields) return false;
    this.headerTooBig = true;
    this.headerBytes = EMPTY;
    return true;
  }

  private endHeader(blockEnd: number, bodyStart: number): void {
    const block = this.headerBytes.subarray(0, blockEnd);
    const encoding = isUtf8(block) ? 'utf8' : 'latin1';
    this.header = Header.parse(block.toString(encoding), encoding);
    const rest = this.headerBytes.subarray(bodyStart);
    if (rest.length > 0) this.bodyParts.push(rest);
    this.headerBytes = EMPTY;
  }
}

/** `name:` with a printable-ASCII name (obsolete white space before the colon allowed). */
function isFieldStart(buf: Buffer, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b === COLON) return i > start;
    if (b === 0x20 || b === 0x09) {
      while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
      return i < end && buf[i] === COLON && i > start;
    }
    if (b < 0x21 || b > 0x7e) return false;
    i++;
  }
  return false;
}
