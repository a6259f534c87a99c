/**
 * Where a milter listens, written as Sendmail's and Postfix's configurations write it:
 *   inet:PORT@HOST     Sendmail's form (`inet:8891@127.0.0.1`); `inet6:PORT@HOST` the same
 *   inet:HOST:PORT     Postfix's form (`inet:localhost:8891`, `inet:[::1]:8891`)
 *   unix:PATH          a unix socket; `local:PATH` the same
 * HOST may be a name, an IPv4 address, or an IPv6 address (bare in the `@` form, in brackets in
 * the other). A relative unix PATH is left relative: the caller decides what it is relative to.
 */

export type MilterTarget = { readonly host: string; readonly port: number } | { readonly path: string };

const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const IPV6ISH = /^[0-9A-Fa-f:.]+$/;

export function parseMilterSocket(spec: string): MilterTarget | { readonly error: string } {
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? '' : spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (scheme === 'unix' || scheme === 'local') {
    return rest === '' ? { error: `${scheme}: needs a socket path` } : { path: rest };
  }
  if (scheme !== 'inet' && scheme !== 'inet6') {
    return { error: `"${spec}" is no milter socket: inet:PORT@HOST, inet:HOST:PORT, unix:PATH or local:PATH` };
  }
  let host: string;
  let port: string;
  const at = rest.indexOf('@');
  if (at !== -1) {
    port = rest.slice(0, at);
    host = rest.slice(at + 1);
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  } else if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1 || rest.charAt(close + 1) !== ':') return { error: `"${spec}": write an IPv6 address as inet:[ADDRESS]:PORT or inet:PORT@ADDRESS` };
    host = rest.slice(1, close);
    port = rest.slice(close + 2);
  } else {
    const last = rest.lastIndexOf(':');
    if (last === -1) return { error: `"${spec}" has no port: inet:PORT@HOST or inet:HOST:PORT` };
    host = rest.slice(0, last);
    port = rest.slice(last + 1);
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return { error: `"${spec}": "${port}" is no port number` };
  const ipv6 = host.includes(':');
  if (host === '' || (ipv6 ? !IPV6ISH.test(host) : !HOST_NAME.test(host))) return { error: `"${spec}": "${host}" is no host name or address` };
  return { host, port: Number(port) };
}

/** The target as the log names it (`inet:8891@127.0.0.1`, `unix:/run/milter.sock`). */
export function describeMilterTarget(target: MilterTarget): string {
  return 'path' in target ? `unix:${target.path}` : `inet:${target.port}@${target.host}`;
}
