/**
 * The socket and process modules the usual path never needs, loaded on first use (see
 * src/util/builtin.ts for why): node:tls for STARTTLS, node:dgram for DNS over UDP, node:cluster
 * for --workers. Here because only src/transport opens sockets or forks.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export const lazyTls = (): typeof import('node:tls') => load('node:tls') as typeof import('node:tls');
export const lazyDgram = (): typeof import('node:dgram') => load('node:dgram') as typeof import('node:dgram');
export const lazyCluster = (): typeof import('node:cluster').default => load('node:cluster') as typeof import('node:cluster').default;
