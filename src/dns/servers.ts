/**
 * Which name servers to ask: config `dns_servers` (one a line: `127.0.0.1`, `127.0.0.1:5353`,
 * `::1`, `[::1]:5353`), or else the system's (/etc/resolv.conf, as node:dns reads it).
 */
import { lazyDns } from '../util/builtin.ts';
import { isIp } from '../net/ip.ts';

export interface NameServer {
  readonly host: string;
  readonly port: number;
}

/** Parses one `dns_servers` line; throws with a message naming what is wrong. */
export function parseNameServer(text: string): NameServer {
  const spec = text.trim();
  let host = spec;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (!isIp(spec)) {
    const withPort = /^([^:]+):(\d+)$/.exec(spec);
    if (withPort) {
      host = withPort[1]!;
      port = Number(withPort[2]);
    }
  }
  if (!isIp(host)) throw new Error(`"${spec}" is not an IP address (name servers are given by address)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`"${spec}": port out of range`);
  return { host, port };
}

/** The system's resolvers, the default when `dns_servers` is empty. */
export function systemNameServers(): NameServer[] {
  return lazyDns().getServers().map(parseNameServer);
}
