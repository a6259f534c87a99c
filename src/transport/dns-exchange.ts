/**
 * The DNS resolver's transport (src/dns/resolver.ts): one question to one name server, over UDP
 * or TCP, bounded by a timeout and an AbortSignal.
 *
 * UDP questions share a socket, up to QUESTIONS_PER_SOCKET of them or SOCKET_LIFETIME_MS, and then
 * a fresh socket (a fresh random source port) takes over: a socket per question cost more than the
 * rest of the lookup. What keeps forged answers out: a random id per question, unique on its
 * socket; the answer must come from the server's address and port and repeat the question; the
 * source port changes often. Datagrams that fail any of these are ignored.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import { lazyDgram } from './lazy-builtins.ts';
import { connect, isIPv6 } from 'node:net';
import { decodeAnswer, encodeQuery, frameForTcp, type ParsedAnswer, type RecordType } from '../dns/wire.ts';
import { DnsError } from '../dns/errors.ts';
import type { NameServer } from '../dns/servers.ts';

export interface ExchangeOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** Largest DNS message over TCP. */
const MAX_TCP_MESSAGE = 65535;

/** Questions one UDP socket carries before a fresh one takes over... */
const QUESTIONS_PER_SOCKET = 100;
/** ...or the time after which it does, however few it carried. */
const SOCKET_LIFETIME_MS = 10_000;

interface Waiting {
  readonly server: NameServer;
  /** A datagram that may be the answer (its id matched). */
  readonly offer: (message: Buffer) => void;
  readonly fail: (err: Error) => void;
}

/** A UDP socket and the questions waiting on it, by id. */
class QuerySocket {
  readonly waiting = new Map<number, Waiting>();
  private readonly socket: UdpSocket;
  private readonly born = Date.now();
  private sent = 0;
  /** A socket error: it takes no more questions. */
  private failed = false;
  private closed = false;

  constructor(family: 'udp4' | 'udp6') {
    this.socket = lazyDgram().createSocket(family);
    // Waiting questions have their own timers; an idle socket must not keep the process alive.
    this.socket.unref();
    this.socket.on('message', (message: Buffer, from) => {
      const waiting = message.length >= 2 ? this.waiting.get(message.readUInt16BE(0)) : undefined;
      if (waiting === undefined || from.port !== waiting.server.port || !sameAddress(from.address, waiting.server.host)) return;
      waiting.offer(message);
    });
    this.socket.on('error', (err) => {
      this.failed = true;
      for (const waiting of [...this.waiting.values()]) waiting.fail(err);
      this.closeIfDone();
    });
  }

  /** Takes new questions: not closed, not worn out by count or age. */
  get fresh(): boolean {
    return !this.closed && !this.failed && this.sent < QUESTIONS_PER_SOCKET && Date.now() - this.born < SOCKET_LIFETIME_MS;
  }

  /** Send a question; the id is free on this socket (the caller checked `waiting`). */
  send(id: number, bytes: Buffer, waiting: Waiting): void {
    this.sent++;
    this.waiting.set(id, waiting);
    try {
      this.socket.send(bytes, waiting.server.port, waiting.server.host, (err) => {
        if (err) waiting.fail(err);
      });
    } catch (err) {
      // The caller fails the question; nothing may stay behind in the map.
      this.release(id);
      throw err;
    }
  }

  /** The question with this id is over (answered, failed, timed out, cancelled). */
  release(id: number): void {
    this.waiting.delete(id);
    this.closeIfDone();
  }

  closeIfDone(): void {
    if (this.closed || this.fresh || this.waiting.size > 0) return;
    this.closed = true;
    try {
      this.socket.close();
    } catch {
      // already closed after an error
    }
  }
}

const sockets: { udp4?: QuerySocket; udp6?: QuerySocket } = {};

function querySocket(family: 'udp4' | 'udp6'): QuerySocket {
  const current = sockets[family];
  if (current?.fresh) return current;
  current?.closeIfDone();
  return (sockets[family] = new QuerySocket(family));
}

export function askUdp<T extends RecordType>(server: NameServer, name: string, type: T, options: ExchangeOptions): Promise<ParsedAnswer<T>> {
  return bounded(name, type, options, (settle, fail) => {
    const socket = querySocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    let query = encodeQuery(name, type);
    while (socket.waiting.has(query.id)) query = encodeQuery(name, type);
    const { id, bytes } = query;
    socket.send(id, bytes, {
      server,
      offer: (message) => {
        const answer = decodeAnswer(message, id, name, type);
        if (answer !== undefined) settle(answer);
      },
      fail: (err) => fail(DnsError.fromSocket(err, name, type)),
    });
    return () => socket.release(id);
  });
}

export function askTcp<T extends RecordType>(server: NameServer, name: string, type: T, options: ExchangeOptions): Promise<ParsedAnswer<T>> {
  return bounded(name, type, options, (settle, fail) => {
    const { id, bytes } = encodeQuery(name, type);
    const socket = connect({ host: server.host, port: server.port });
    let received: Buffer = Buffer.alloc(0);
    socket.on('connect', () => socket.write(frameForTcp(bytes)));
    socket.on('data', (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      while (received.length >= 2) {
        const length = received.readUInt16BE(0);
        if (received.length < length + 2) {
          if (received.length > MAX_TCP_MESSAGE + 2) fail(new DnsError('EBADRESP', name, type));
          return;
        }
        const message = received.subarray(2, length + 2);
        received = received.subarray(length + 2);
        const answer = decodeAnswer(message, id, name, type);
        if (answer !== undefined) return settle(answer);
      }
    });
    socket.on('error', (err) => fail(DnsError.fromSocket(err, name, type)));
    socket.on('close', () => fail(new DnsError('ECONNREFUSED', name, type, 'connection closed before an answer')));
    return () => socket.destroy();
  });
}

/**
 * Runs `start` until it settles, the timeout passes or the signal aborts; its cleanup always runs
 * once, whichever comes first.
 */
function bounded<A>(
  name: string,
  type: RecordType,
  options: ExchangeOptions,
  start: (settle: (answer: A) => void, fail: (err: DnsError) => void) => () => void,
): Promise<A> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new DnsError('ECANCELLED', name, type));
  return new Promise<A>((resolvePromise, rejectPromise) => {
    let done = false;
    let cleanup: (() => void) | undefined;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        cleanup?.();
      } catch {
        // Closing an already closed socket: nothing to undo.
      }
    };
    const settle = (answer: A): void => {
      if (done) return;
      finish();
      resolvePromise(answer);
    };
    const fail = (err: DnsError): void => {
      if (done) return;
      finish();
      rejectPromise(err);
    };
    const onAbort = (): void => fail(new DnsError('ECANCELLED', name, type));
    const timer = setTimeout(() => fail(new DnsError('ETIMEOUT', name, type)), options.timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = start(settle, fail);
    } catch (err) {
      fail(DnsError.fromSocket(err as Error, name, type));
    }
    if (done) cleanup?.();
  });
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (ip: string): string => ip.replace(/^::ffff:/i, '').toLowerCase();
  return strip(a) === strip(b);
}
