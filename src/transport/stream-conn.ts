/**
 * A Conn over Node streams: a TCP socket (one Duplex) or stdin and stdout (inetd, tcpserver).
 * The only adapter between sessions and real I/O, and the only place a connection turns into TLS.
 */
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { TLSSocket, TLSSocketOptions } from 'node:tls';
import { lazyTls } from './lazy-builtins.ts';
import type { Endpoints, TlsInfo } from '../session/connection.ts';
import type { Conn, InputSink, TlsServerOptions } from '../session/conn.ts';

/** How long a TLS handshake may take. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

export class StreamConn implements Conn {
  private closed: Promise<void> | undefined;
  private ended = false;
  private sink: InputSink | undefined;
  /**
   * Between STARTTLS and the end of the handshake. Nothing may be written then: the link is neither
   * plaintext any more nor TLS yet. (A hook that outlives plugin_timeout while the handshake runs
   * lets the session answer something; that reply is dropped, never sent in plaintext.)
   */
  private handshaking = false;
  private readonly onData = (chunk: Buffer): void => this.sink?.data(chunk);
  private readonly onEnd = (): void => {
    if (this.ended) return;
    this.ended = true;
    this.sink?.end();
  };

  constructor(
    readonly endpoints: Endpoints,
    private input: Readable,
    private output: Writable,
  ) {}

  start(sink: InputSink): void {
    this.sink = sink;
    this.listen(this.input);
    if (this.output !== (this.input as unknown)) this.output.on('error', this.onEnd);
  }

  private listen(input: Readable): void {
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('close', this.onEnd);
    // A reset connection is an end like any other; the session logs and cleans up.
    input.on('error', this.onEnd);
  }

  private unlisten(input: Readable): void {
    input.off('data', this.onData);
    input.off('end', this.onEnd);
    input.off('close', this.onEnd);
    input.off('error', this.onEnd);
  }

  /** TLS is possible on a socket that carries both directions (TCP), not on a pair of pipes. */
  get canStartTls(): boolean {
    return this.input instanceof Socket && this.output === (this.input as unknown) && (this.input as Partial<TLSSocket>).encrypted !== true;
  }

  /**
   * Turn the connection into TLS, as the server. From here on the raw socket belongs to the TLS
   * layer: bytes it holds are handshake records, never commands.
   */
  startTls(options: TlsServerOptions): Promise<TlsInfo> {
    if (!this.canStartTls) return Promise.reject(new Error('this connection cannot carry TLS'));
    const raw = this.input as Socket;
    this.unlisten(raw);
    raw.pause();
    this.handshaking = true;
    const secure = new (lazyTls().TLSSocket)(raw, { ...(options as TLSSocketOptions), isServer: true });
    return new Promise<TlsInfo>((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        secure.destroy();
        raw.destroy();
        reject(err);
        // The raw socket's events no longer reach the session: tell it the input is over, so a
        // session that stopped waiting for the handshake does not sit until its idle timeout.
        this.onEnd();
      };
      const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), HANDSHAKE_TIMEOUT_MS);
      secure.once('error', fail);
      secure.once('secure', () => {
        clearTimeout(timer);
        secure.off('error', fail);
        this.handshaking = false;
        this.input = secure;
        this.output = secure;
        this.listen(secure);
        const cipher = secure.getCipher();
        // `servername` is set by the SNI extension; @types/node does not declare it.
        const servername = (secure as TLSSocket & { servername?: unknown }).servername;
        resolve({
          protocol: secure.getProtocol() ?? 'TLS',
          cipher: cipher.standardName ?? cipher.name,
          ...(typeof servername === 'string' ? { servername } : {}),
        });
      });
    });
  }

  pause(): void {
    this.input.pause();
  }

  resume(): void {
    this.input.resume();
  }

  write(data: string): void {
    if (this.handshaking) return;
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
