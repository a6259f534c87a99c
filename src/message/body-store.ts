/**
 * The body of a message: kept in memory up to `threshold` bytes, then moved to a spool file, so a
 * 50 MB message never sits in memory. The spool file is removed when the store is discarded.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export interface BodyStoreOptions {
  /** Bytes kept in memory before spooling to disk. */
  readonly threshold: number;
  readonly spoolDir: string;
  /** A file name unique in the spool directory. */
  readonly spoolName: () => string;
  /** Called every few megabytes read back from the spool (see util/memory-relief.ts). */
  readonly relieveMemory?: () => void;
}

const READ_CHUNK = 64 * 1024;
const RELIEF_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * A stream of buffers already in memory: no promise per chunk (Readable.from's async iteration)
 * on the path every message takes, and one chunk per read, so that a reader gets the chunks
 * themselves rather than a copy joining several (what read() returns when more are buffered).
 */
export function readableOf(chunks: readonly Buffer[]): Readable {
  let next = 0;
  return new Readable({
    read() {
      this.push(next < chunks.length ? chunks[next++] : null);
    },
  });
}

async function* prependTo(first: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield first;
  yield* rest;
}

/** The first `size` bytes of a spool file, in chunks, with a memory relief every few megabytes. */
async function* readSpool(path: string, size: number, relieve: (() => void) | undefined): AsyncGenerator<Buffer> {
  if (size === 0) return;
  const file = await open(path, 'r');
  try {
    let sinceRelief = 0;
    for (let position = 0; position < size; ) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - position));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) throw new Error(`spool file ${path} is shorter than its ${size} bytes`);
      position += bytesRead;
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
      sinceRelief += bytesRead;
      if (relieve && sinceRelief >= RELIEF_EVERY_BYTES) {
        sinceRelief = 0;
        relieve();
      }
    }
  } finally {
    await file.close();
  }
}

export class BodyStore {
  private chunks: Buffer[] = [];
  private file: FileHandle | undefined;
  private filePath: string | undefined;
  private bytes = 0;
  /** The last write to the spool file; the next one starts after it. */
  private writes: Promise<void> = Promise.resolve();
  private discarded = false;

  constructor(private readonly options: BodyStoreOptions) {}

  /** Bytes stored. */
  get size(): number {
    return this.bytes;
  }

  /** The spool file, when the body has been moved to disk. */
  get path(): string | undefined {
    return this.filePath;
  }

  /**
   * Append bytes. Returns a promise only when the bytes go to disk; the caller must wait for it
   * before the next append (the session does, which is also its backpressure on the client).
   */
  append(parts: readonly Buffer[]): Promise<void> | void {
    if (this.discarded) throw new Error('append to a discarded message body');
    let added = 0;
    for (const p of parts) added += p.length;
    if (added === 0) return;
    this.bytes += added;
    if (this.file === undefined && this.bytes <= this.options.threshold) {
      for (const p of parts) this.chunks.push(p);
      return;
    }
    return this.writeToFile(parts);
  }

  private writeToFile(parts: readonly Buffer[]): Promise<void> {
    // Writes run one after the other, in append order, whoever waits for them.
    this.writes = this.writes.then(async () => {
      if (this.file === undefined) await this.openSpool();
      await this.file!.writev(parts as Buffer[]);
    });
    return this.writes;
  }

  private async openSpool(): Promise<void> {
    const path = join(this.options.spoolDir, this.options.spoolName());
    const file = await open(path, 'wx+', 0o600);
    this.file = file;
    this.filePath = path;
    const held = this.chunks;
    this.chunks = [];
    if (held.length > 0) await file.writev(held);
  }

  /** Make sure the body is in a file (for scanners that want a path) and return its path. */
  async toFile(): Promise<string> {
    await this.writeToFile([]);
    await this.file!.sync();
    return this.filePath!;
  }

  /** The body as a stream of Buffers; nothing is copied for an in-memory body. */
  stream(prefix?: Buffer): Readable {
    if (this.filePath !== undefined) {
      const spool = readSpool(this.filePath, this.bytes, this.options.relieveMemory);
      return Readable.from(prefix === undefined ? spool : prependTo(prefix, spool), { objectMode: false });
    }
    return readableOf(prefix === undefined ? this.chunks.slice() : [prefix, ...this.chunks]);
  }

  /** The whole body in one Buffer (memory use: the size of the body). */
  async toBuffer(): Promise<Buffer> {
    if (this.filePath === undefined) return Buffer.concat(this.chunks, this.bytes);
    const parts: Buffer[] = [];
    for await (const chunk of this.stream()) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  /** Forget the body and remove the spool file. Safe to call more than once. */
  async discard(): Promise<void> {
    if (this.discarded) return;
    this.discarded = true;
    this.chunks = [];
    await this.writes.catch(() => undefined);
    const file = this.file;
    const path = this.filePath;
    this.file = undefined;
    if (file) await file.close().catch(() => undefined);
    if (path) await rm(path, { force: true }).catch(() => undefined);
  }
}
