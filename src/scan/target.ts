/**
 * Where a scanner listens, as a plugin argument names it: a unix socket path, or host and port.
 * The result can be handed to `net.connect` as it is.
 */
import { isAbsolute, resolve } from 'node:path';

/** A scanner's socket: `{ path }` (unix) or `{ host, port }` (TCP); `net.connect(target)` takes either. */
export type ScanTarget = { readonly path: string } | { readonly host: string; readonly port: number };

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?|\d{1,3}(?:\.\d{1,3}){3})$/;

/**
 * Parse a socket argument:
 *   /path/to/socket, unix:PATH   a unix socket (a relative PATH is relative to `baseDir`)
 *   HOST:PORT, [IPv6]:PORT       TCP
 *   HOST, [IPv6]                 TCP on `defaultPort`
 * Throws an Error that names the argument when it is none of these.
 */
export function parseScanTarget(text: string, defaultPort: number, baseDir: string, argument = 'socket'): ScanTarget {
  const value = text.trim();
  if (value.startsWith('unix:') || value.includes('/')) {
    const path = value.startsWith('unix:') ? value.slice(5) : value;
    if (path === '') throw new Error(`${argument} "${text}": no socket path after unix:`);
    return { path: isAbsolute(path) ? path : resolve(baseDir, path) };
  }
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(value);
  const plain = bracketed === null ? /^([^:]+)(?::(\d+))?$/.exec(value) : null;
  const host = bracketed?.[1] ?? plain?.[1];
  const portText = bracketed?.[2] ?? plain?.[2];
  if (host === undefined || (bracketed === null && !HOST.test(host))) {
    throw new Error(`${argument} "${text}": expected a socket path, HOST:PORT or [IPv6]:PORT`);
  }
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${argument} "${text}": port must be 1 to 65535`);
  return { host, port };
}

/** `unix:/path` or `host:port` (`[v6]:port`), for log lines and error texts. */
export function describeScanTarget(target: ScanTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}
