/**
 * What a transport gives a session: bytes in, bytes out, the addresses, and a way to close.
 * TCP sockets, stdin/stdout and test doubles implement it; the session knows nothing else of them.
 */
import type { Endpoints, TlsInfo } from './connection.ts';

/**
 * Server-side TLS options, handed through to node:tls (`secureContext`, `SNICallback`,
 * `requestCert` ...). Opaque here: the session never touches TLS itself.
 */
export type TlsServerOptions = object;

export interface InputSink {
  data(chunk: Buffer): void;
  /** The client closed its side (or the link broke). */
  end(): void;
}

export interface Conn {
  readonly endpoints: Endpoints;
  /** Begin delivering input to `sink`; called once. */
  start(sink: InputSink): void;
  /** Stop and restart delivering input (backpressure while a large message is stored). */
  pause(): void;
  resume(): void;
  /** Queue bytes for the client. */
  write(data: string): void;
  /** True when written bytes pile up and the session should wait for `drained()`. */
  readonly needsDrain: boolean;
  drained(): Promise<void>;
  /** Send what is queued, then close; resolves once closed. */
  close(): Promise<void>;
  /** True when `startTls` can work (a TCP socket; not a pair of pipes, not TLS already). */
  readonly canStartTls?: boolean;
  /** Turn the connection into TLS; rejects when the handshake fails (the connection is then gone). */
  startTls?(options: TlsServerOptions): Promise<TlsInfo>;
}
