/**
 * Node built-ins that the daemon's usual path never needs, loaded on first use. Loading one costs
 * milliseconds (node:tls, node:cluster and node:crypto 5-10 ms each on a small VM), and every static
 * import is paid at start-up: a daemon on the shipped config/ uses none of these until a client
 * asks for AUTH or a plugin makes a DNS query. (The socket modules are src/transport/lazy-builtins.ts.)
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export const lazyCrypto = (): typeof import('node:crypto') => load('node:crypto') as typeof import('node:crypto');
export const lazyDns = (): typeof import('node:dns') => load('node:dns') as typeof import('node:dns');
export const lazyVm = (): typeof import('node:vm') => load('node:vm') as typeof import('node:vm');
export const lazyV8 = (): typeof import('node:v8') => load('node:v8') as typeof import('node:v8');
