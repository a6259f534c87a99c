/**
 * The PROXY protocol header a load balancer (HAProxy, stunnel, nginx) sends before anything else,
 * naming the real client (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
 *
 *   v1:  "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF   (at most 107 bytes)
 *        "PROXY UNKNOWN" ... CRLF                                          (addresses unknown)
 *   v2:  \r\n\r\n\0\r\nQUIT\n, version/command byte (0x2_: 0 LOCAL, 1 PROXY), family byte
 *        (0x11 TCP over IPv4, 0x21 TCP over IPv6, 0x00 unspecified), 2-byte length, then the
 *        addresses (4+4+2+2 or 16+16+2+2 bytes) and optional TLVs, which are skipped.
 *
 * LOCAL, UNKNOWN and unspecified mean "no client to report" (health checks): the connection keeps
 * its own addresses.
 */
import { compressIPv6 } from './ipv6-text.ts';

export interface ProxiedAddresses {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly localIp: string;
  readonly localPort: number;
}

export type ProxyParse =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `addresses` undefined: a header that names no client (LOCAL, UNKNOWN). */
  | { readonly kind: 'ok'; readonly version: 1 | 2; readonly addresses: ProxiedAddresses | undefined; readonly length: number };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
const V1_MAX = 107;
const V2_MAX_BODY = 2048;

/** Parse the header at the start of `data` (everything received so far). */
export function parseProxyHeader(data: Buffer): ProxyParse {
  const head = data.subarray(0, Math.min(data.length, V2_SIGNATURE.length));
  if (V2_SIGNATURE.subarray(0, head.length).equals(head)) {
    return head.length < V2_SIGNATURE.length ? { kind: 'incomplete' } : parseV2(data);
  }
  const start = data.subarray(0, Math.min(data.length, V1_PREFIX.length));
  if (V1_PREFIX.subarray(0, start.length).equals(start)) return parseV1(data);
  return { kind: 'invalid', reason: 'no PROXY header' };
}

function parseV1(data: Buffer): ProxyParse {
  const end = data.indexOf('\r\n');
  if (end === -1) return data.length >= V1_MAX ? { kind: 'invalid', reason: 'PROXY v1 line too long' } : { kind: 'incomplete' };
  if (end + 2 > V1_MAX) return { kind: 'invalid', reason: 'PROXY v1 line too long' };
  const words = data.subarray(0, end).toString('latin1').split(' ');
  const length = end + 2;
  if (words[1] === 'UNKNOWN') return { kind: 'ok', version: 1, addresses: undefined, length };
  if (words.length !== 6 || (words[1] !== 'TCP4' && words[1] !== 'TCP6')) return { kind: 'invalid', reason: 'malformed PROXY v1 line' };
  const [, family, src, dst, sport, dport] = words as [string, string, string, string, string, string];
  const valid = family === 'TCP4' ? isIPv4(src) && isIPv4(dst) : src.includes(':') && dst.includes(':');
  const remotePort = port(sport);
  const localPort = port(dport);
  if (!valid || remotePort === undefined || localPort === undefined) return { kind: 'invalid', reason: 'bad address in PROXY v1 line' };
  return { kind: 'ok', version: 1, addresses: { remoteIp: src, remotePort, localIp: dst, localPort }, length };
}

function parseV2(data: Buffer): ProxyParse {
  if (data.length < 16) return { kind: 'incomplete' };
  const versionCommand = data[12]!;
  const family = data[13]!;
  const bodyLength = data.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: 'unknown PROXY v2 version' };
  if (bodyLength > V2_MAX_BODY) return { kind: 'invalid', reason: 'PROXY v2 header too long' };
  const length = 16 + bodyLength;
  if (data.length < length) return { kind: 'incomplete' };
  const command = versionCommand & 0x0f;
  if (command === 0) return { kind: 'ok', version: 2, addresses: undefined, length };
  if (command !== 1) return { kind: 'invalid', reason: 'unknown PROXY v2 command' };
  const body = data.subarray(16, length);
  if (family === 0x11) {
    if (body.length < 12) return { kind: 'invalid', reason: 'short PROXY v2 IPv4 block' };
    return {
      kind: 'ok',
      version: 2,
      addresses: { remoteIp: ipv4(body, 0), localIp: ipv4(body, 4), remotePort: body.readUInt16BE(8), localPort: body.readUInt16BE(10) },
      length,
    };
  }
  if (family === 0x21) {
    if (body.length < 36) return { kind: 'invalid', reason: 'short PROXY v2 IPv6 block' };
    return {
      kind: 'ok',
      version: 2,
      addresses: { remoteIp: ipv6(body, 0), localIp: ipv6(body, 16), remotePort: body.readUInt16BE(32), localPort: body.readUInt16BE(34) },
      length,
    };
  }
  // Unspecified family (or UDP, unix sockets): nothing we can use as a client address.
  return { kind: 'ok', version: 2, addresses: undefined, length };
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** The compressed text form (RFC 5952). */
function ipv6(b: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + i * 2));
  return compressIPv6(groups);
}

function isIPv4(text: string): boolean {
  return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(text);
}

function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}
