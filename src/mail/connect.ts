/**
 * Waiting for an outgoing connection, with a time limit and an AbortSignal. The plugin opens the
 * socket itself (`() => net.connect(...)`: in the core only src/transport opens sockets); this
 * waits for its `connect` event and cleans up when there is none.
 */
import type { Duplex } from 'node:stream';

export interface ConnectWithinOptions {
  /** How long to wait for the connection (ms). */
  readonly timeoutMs: number;
  /** Ends the wait (the hook's signal, for instance). */
  readonly signal: AbortSignal;
  /** The error for no connection within timeoutMs (default: `no connection within N s`). */
  readonly timeoutError?: () => Error;
  /** The error when `signal` aborts while waiting (default: `the hook ran out of time (plugin_timeout)`). */
  readonly abortError?: () => Error;
}

/**
 * The socket `open` makes, once it is connected. `signal` is checked before `open` is called (its
 * reason is thrown, and nothing is opened). On a time-out, an abort or an `error` event the socket
 * is destroyed and the promise rejects (with the socket's own error for the last).
 */
export async function connectWithin<S extends Duplex>(open: () => S, options: ConnectWithinOptions): Promise<S> {
  const { timeoutMs, signal } = options;
  signal.throwIfAborted();
  const socket = open();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(options.timeoutError?.() ?? new Error(`no connection within ${timeoutMs / 1000} s`)), timeoutMs);
    const onAbort = (): void => done(options.abortError?.() ?? new Error('the hook ran out of time (plugin_timeout)'));
    const onConnect = (): void => done();
    const onError = (err: Error): void => done(err);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve();
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return socket;
}
