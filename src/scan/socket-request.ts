/**
 * One request and one reply over a stream socket, for content scanners (spamd, clamd, rspamd):
 * connect, write the request (the message streamed from the spool, never gathered in memory),
 * read the reply to its end or until it is complete, all within one time limit and
 * cut short when the hook's signal aborts.
 *
 * The reply is read while the request is still being written: a scanner that answers early
 * (clamd's `INSTREAM size limit exceeded`, spamd's refusal of a bad header) and closes is heard.
 * To that end each piece is handed to the kernel before the next is written, with a turn of the
 * event loop between them: an answer that has arrived is read before the next write could run
 * into the closed socket (a write error destroys the socket, and the unread answer with it; the
 * request then fails with the write's error instead, the same outcome for the caller).
 *
 * The plugin opens the socket (`() => net.connect(target)`): in the core only src/transport
 * opens sockets. Every failure is a ScanError; nothing is left open afterwards.
 */
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { connectWithin } from '../mail/connect.ts';

/** Why a scan request failed. */
export type ScanErrorKind =
  /** No connection: refused, no such socket, no route, no connection in time. */
  | 'connect'
  /** The time limit passed before the reply was complete. */
  | 'timeout'
  /** The hook's signal aborted (plugin_timeout). */
  | 'aborted'
  /** The scanner closed or reset the connection before it answered. */
  | 'closed'
  /** The reply is not what the protocol says (too long, malformed: the caller's parsers use this too). */
  | 'protocol'
  /** The message could not be read from the spool. */
  | 'message';

export class ScanError extends Error {
  constructor(
    message: string,
    readonly kind: ScanErrorKind,
  ) {
    super(message);
  }
}

export interface SocketRequestOptions {
  /** Names the scanner in error texts (`clamd at /run/clamav/clamd.ctl`). */
  readonly peer: string;
  /** The time limit for the whole exchange, connection included (ms). */
  readonly timeoutMs: number;
  /** The hook's signal: aborting it ends the exchange at once. */
  readonly signal: AbortSignal;
  /** The request, in pieces; called once connected. */
  readonly request: () => AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
  /**
   * Half-close the socket after the last piece (for protocols where the end of the request is the
   * end of the stream). Default false: spamd, clamd and HTTP say where the request ends, and a
   * scanner must not take our FIN for a hang-up.
   */
  readonly halfClose?: boolean;
  /** The longest reply taken (bytes); a longer one is a protocol error. */
  readonly maxReplyBytes: number;
  /**
   * Tells when the reply is complete without waiting for the scanner to close (clamd's NUL, an
   * HTTP Content-Length). Without it, or when the scanner closes first, the reply is what came
   * before the close (the caller's parser tells a complete one from a cut one).
   */
  readonly replyComplete?: (reply: Buffer) => boolean;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTSOCK']);

/** Send the request and return the reply; throws a ScanError. See the module comment. */
export async function socketRequest(open: () => Duplex, options: SocketRequestOptions): Promise<Buffer> {
  const { peer, signal, timeoutMs } = options;
  const deadline = new AbortController();
  const stopped = (): ScanError =>
    signal.aborted
      ? new ScanError(`${peer}: the hook ran out of time (plugin_timeout)`, 'aborted')
      : new ScanError(`${peer}: no complete answer within ${timeoutMs / 1000} s`, 'timeout');
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const onAbort = (): void => deadline.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal.aborted) throw stopped();
    let socket: Duplex;
    try {
      socket = await connectWithin(open, { timeoutMs, signal: deadline.signal, timeoutError: stopped, abortError: stopped });
    } catch (err) {
      if (err instanceof ScanError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const detail = err instanceof Error ? err.message : String(err);
      throw new ScanError(`${peer}: cannot connect: ${detail}`, code === undefined || CONNECT_CODES.has(code) ? 'connect' : 'closed');
    }
    try {
      return await exchange(socket, options, deadline.signal, stopped);
    } finally {
      socket.destroy();
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** Write the request and collect the reply on a connected socket. */
async function exchange(socket: Duplex, options: SocketRequestOptions, deadline: AbortSignal, stopped: () => ScanError): Promise<Buffer> {
  const { peer, maxReplyBytes, replyComplete } = options;
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  let settle: (err?: Error) => void = () => undefined;
  const reply = new Promise<Buffer>((resolve, reject) => {
    settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      deadline.removeEventListener('abort', onDeadline);
      if (err === undefined) resolve(Buffer.concat(chunks, size));
      else reject(err);
    };
  });
  // Whatever came before an error or the close is the reply: the caller's parser judges it.
  const heardOrFailed = (failure: ScanError): Error | undefined => (size > 0 ? undefined : failure);
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > maxReplyBytes) return settle(new ScanError(`${peer}: reply longer than ${maxReplyBytes} bytes`, 'protocol'));
    chunks.push(chunk);
    if (replyComplete?.(Buffer.concat(chunks, size))) settle();
  };
  const onEnd = (): void => settle(heardOrFailed(new ScanError(`${peer} closed the connection without a reply`, 'closed')));
  const onError = (err: Error): void => settle(heardOrFailed(new ScanError(`${peer}: ${err.message}`, 'closed')));
  const onDeadline = (): void => settle(stopped());
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  // Kept until the socket is destroyed: a late error must never be unhandled.
  socket.on('error', onError);
  deadline.addEventListener('abort', onDeadline, { once: true });

  const done = reply.then(
    () => undefined,
    () => undefined,
  );
  void writeRequest(socket, options, () => settled, done).catch((err: unknown) => {
    settle(new ScanError(`reading the message for ${peer}: ${err instanceof Error ? err.message : String(err)}`, 'message'));
  });
  return reply;
}

/** Write every piece, each flushed before the next; stops once the reply is settled. */
async function writeRequest(socket: Duplex, options: SocketRequestOptions, isSettled: () => boolean, done: Promise<void>): Promise<void> {
  for await (const piece of options.request()) {
    if (isSettled() || socket.destroyed) return; // leaving the loop closes the message stream
    const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
    if (bytes.length === 0) continue;
    await Promise.race([new Promise<void>((resolve) => socket.write(bytes, () => resolve())), done]);
    // Let the event loop poll the socket: an early answer is read before the next write.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (options.halfClose === true && !isSettled() && !socket.destroyed) socket.end();
}
