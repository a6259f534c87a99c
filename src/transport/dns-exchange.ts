/**
 * The DNS resolver's transport (src/dns/resolver.ts): one question to one name server, over UDP
 * or TCP, bounded by a timeout and an AbortSignal. A fresh UDP socket per question gives every query its own random source port (with the random
 * id, the usual defence against forged answers); datagrams from another address or not matching
 * the question are ignored.
 */
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

export function askUdp<T extends RecordType>(server: NameServer, name: string, type: T, options: ExchangeOptions): Promise<ParsedAnswer<T>> {
  return bounded(name, type, options, (settle, fail) => {
    const { id, bytes } = encodeQuery(name, type);
    const socket = lazyDgram().createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    socket.on('message', (message, from) => {
      if (from.port !== server.port || !sameAddress(from.address, server.host)) return;
      const answer = decodeAnswer(message, id, name, type);
      if (answer !== undefined) settle(answer);
    });
    socket.on('error', (err) => fail(DnsError.fromSocket(err, name, type)));
    socket.send(bytes, server.port, server.host);
    return () => socket.close();
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
