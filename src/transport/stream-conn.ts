/**
 * A Conn over Node streams: a TCP socket (one Duplex) or stdin and stdout (inetd, tcpserver).
 * The only adapter between sessions and real I/O.
 */
import type { Readable, Writable } from 'node:stream';
import type { Endpoints } from '../session/connection.ts';
import type { Conn, InputSink } from '../session/conn.ts';

export class StreamConn implements Conn {
  private closed: Promise<void> | undefined;
  private ended = false;

  constructor(
    readonly endpoints: Endpoints,
    private readonly input: Readable,
    private readonly output: Writable,
  ) {}

  start(sink: InputSink): void {
    const end = (): void => {
      if (this.ended) return;
      this.ended = true;
      sink.end();
    };
    this.input.on('data', (chunk: Buffer) => sink.data(chunk));
    this.input.on('end', end);
    this.input.on('close', end);
    // A reset connection is an end like any other; the session logs and cleans up.
    this.input.on('error', end);
    if (this.output !== (this.input as unknown)) this.output.on('error', end);
  }

  pause(): void {
    this.input.pause();
  }

  resume(): void {
    this.input.resume();
  }

  write(data: string): void {
    if (this.output.writable) this.output.write(data);
  }

  get needsDrain(): boolean {
    return this.output.writableNeedDrain;
  }

  drained(): Promise<void> {
    if (!this.output.writableNeedDrain || !this.output.writable) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.output.off('drain', done);
        this.output.off('close', done);
        this.output.off('error', done);
        resolve();
      };
      this.output.on('drain', done);
      this.output.on('close', done);
      this.output.on('error', done);
    });
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const out = this.output;
      if (out.destroyed || out.writableFinished) {
        this.input.destroy();
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(force);
        this.input.destroy();
        resolve();
      };
      // A client that does not read its last replies must not keep the session alive.
      const force = setTimeout(() => {
        out.destroy();
        done();
      }, 5000);
      out.once('finish', done);
      out.once('close', done);
      out.once('error', done);
      out.end();
    });
    return this.closed;
  }

  destroy(): void {
    this.output.destroy();
    this.input.destroy();
  }
}
