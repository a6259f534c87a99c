/**
 * IP addresses for plugins: parsing, canonical text, CIDR blocks and qpsmtpd's prefix entries.
 * Pure: strings and bytes in, values out (no DNS, no sockets).
 *
 * Forms understood:
 *   IPv4          `192.0.2.1` (four decimal octets, no leading zeros: `010.0.0.1` is ambiguous)
 *   IPv6          `2001:db8::1`, `2001:0DB8:0:0:0:0:0:1`, `::`, `::ffff:192.0.2.1`, `fe80::1%eth0`
 *                 (the zone is ignored)
 *   CIDR          `10.1.0.0/24`, `2001:db8::/32` (host bits may be set: they are ignored)
 *   prefix entry  qpsmtpd's `relayclients` style: a full address matches itself, `192.168.42.`
 *                 matches 192.168.42.x, `2001:db8:e431:ae06:` matches every address whose first
 *                 four groups are those (leading zeros and case do not matter), and a run of hex
 *                 digits and colons without the final colon (`2001:0db8:e43`) is a prefix of the
 *                 fully expanded address, which is what qpsmtpd's lookup loop effectively does.
 *
 * An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack socket reports an IPv4 client)
 * is treated as the IPv4 address everywhere, except that an IPv6 CIDR block covering
 * `::ffff:0:0/96` still matches it.
 */
import { compressIPv6 } from '../protocol/ipv6-text.ts';

export type IpFamily = 4 | 6;

/** A parsed address: 4 bytes for IPv4, 16 for IPv6, network byte order. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
}

/** A network: the address with its host bits cleared, and the prefix length. */
export interface Cidr {
  readonly family: IpFamily;
  readonly network: Uint8Array;
  readonly prefix: number;
}

const HEX4 = /^[0-9A-Fa-f]{1,4}$/;
const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

// ---- parsing -----------------------------------------------------------------------------------

function parseOctet(text: string): number | undefined {
  if (!OCTET.test(text)) return undefined;
  const n = Number(text);
  return n <= 255 ? n : undefined;
}

function parseV4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = parseOctet(parts[i]!);
    if (n === undefined) return undefined;
    out[i] = n;
  }
  return out;
}

function hexGroups(part: string): number[] | undefined {
  if (part === '') return [];
  const out: number[] = [];
  for (const g of part.split(':')) {
    if (!HEX4.test(g)) return undefined;
    out.push(parseInt(g, 16));
  }
  return out;
}

function parseV6Bytes(input: string): Uint8Array | undefined {
  let text = input;
  const zone = text.indexOf('%');
  if (zone !== -1) {
    if (zone === text.length - 1) return undefined;
    text = text.slice(0, zone);
  }
  const lastColon = text.lastIndexOf(':');
  if (lastColon === -1) return undefined;
  let tail: number[] = [];
  if (text.includes('.', lastColon)) {
    const v4 = parseV4Bytes(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = text.slice(0, lastColon + 1);
    // `1:2:3:4:5:6:` keeps no dangling colon; `::` (or `1::`) keeps its compression mark.
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = hexGroups(halves[0]!);
  if (head === undefined) return undefined;
  let groups: number[];
  if (halves.length === 1) {
    groups = [...head, ...tail];
    if (groups.length !== 8) return undefined;
  } else {
    const rest = hexGroups(halves[1]!);
    if (rest === undefined) return undefined;
    const known = head.length + rest.length + tail.length;
    if (known > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - known).fill(0), ...rest, ...tail];
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Parse an IPv4 or IPv6 address; undefined when the text is neither. */
export function parseIp(text: string): IpAddress | undefined {
  const t = text.trim();
  if (t.includes(':')) {
    const bytes = parseV6Bytes(t);
    return bytes === undefined ? undefined : { family: 6, bytes };
  }
  const bytes = parseV4Bytes(t);
  return bytes === undefined ? undefined : { family: 4, bytes };
}

/** 4, 6, or undefined when the text is no IP address. */
export function ipFamily(text: string): IpFamily | undefined {
  return parseIp(text)?.family;
}

export function isIp(text: string): boolean {
  return parseIp(text) !== undefined;
}

export function isIPv4Text(text: string): boolean {
  return ipFamily(text) === 4;
}

export function isIPv6Text(text: string): boolean {
  return ipFamily(text) === 6;
}

/** True for `::ffff:a.b.c.d`. */
export function isMappedIPv4(ip: IpAddress): boolean {
  return ip.family === 6 && MAPPED_PREFIX.every((b, i) => ip.bytes[i] === b);
}

/** `::ffff:a.b.c.d` becomes `a.b.c.d`; anything else is returned as it is. */
export function unmapIp(ip: IpAddress): IpAddress {
  return isMappedIPv4(ip) ? { family: 4, bytes: ip.bytes.slice(12) } : ip;
}

/** `a.b.c.d` becomes `::ffff:a.b.c.d`; IPv6 is returned as it is. */
export function mapToIPv6(ip: IpAddress): IpAddress {
  if (ip.family === 6) return ip;
  const bytes = new Uint8Array(16);
  bytes.set(MAPPED_PREFIX);
  bytes.set(ip.bytes, 12);
  return { family: 6, bytes };
}

/**
 * The IP of an SMTP address literal: `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3);
 * undefined for anything else (a domain name, a malformed literal).
 */
export function parseAddressLiteral(host: string): IpAddress | undefined {
  if (host.length < 3 || host[0] !== '[' || host[host.length - 1] !== ']') return undefined;
  const inner = host.slice(1, -1);
  if (/^IPv6:/i.test(inner)) {
    const ip = parseIp(inner.slice(5));
    return ip?.family === 6 ? ip : undefined;
  }
  const ip = parseIp(inner);
  return ip?.family === 4 ? ip : undefined;
}

// ---- text forms --------------------------------------------------------------------------------

function groupsOf(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < 16; i += 2) out.push((bytes[i]! << 8) | bytes[i + 1]!);
  return out;
}

/** The canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  if (isMappedIPv4(ip)) return '::ffff:' + Array.from(ip.bytes.slice(12)).join('.');
  return compressIPv6(groupsOf(ip.bytes));
}

/** Canonical text of an address, IPv4-mapped IPv6 shown as IPv4; undefined when it is no address. */
export function normalizeIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip === undefined ? undefined : formatIp(unmapIp(ip));
}

/** All eight groups, four lower-case hex digits each: `2001:0db8:0000:0000:0000:0000:0000:0001`. */
export function expandIPv6(ip: IpAddress | string): string | undefined {
  const parsed = typeof ip === 'string' ? parseIp(ip) : ip;
  if (parsed === undefined) return undefined;
  const v6 = mapToIPv6(parsed);
  return groupsOf(v6.bytes)
    .map((g) => g.toString(16).padStart(4, '0'))
    .join(':');
}

// ---- CIDR --------------------------------------------------------------------------------------

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bits === 0 ? 0 : bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Parse `net/len` (`10.1.0.0/24`, `2001:db8::/32`); undefined when it is not one. */
export function parseCidr(text: string): Cidr | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  if (slash === -1) return undefined;
  const ip = parseIp(t.slice(0, slash));
  const lenText = t.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(lenText)) return undefined;
  const prefix = Number(lenText);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, network: maskBytes(ip.bytes, prefix), prefix };
}

/** `network/prefix` in canonical text. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, bytes: cidr.network })}/${cidr.prefix}`;
}

/** Is the address inside the block? An IPv4 client also matches as `::ffff:a.b.c.d` in an IPv6 block. */
export function cidrContains(cidr: Cidr, address: IpAddress | string): boolean {
  const parsed = typeof address === 'string' ? parseIp(address) : address;
  if (parsed === undefined) return false;
  const ip = cidr.family === 4 ? unmapIp(parsed) : mapToIPv6(parsed);
  if (ip.family !== cidr.family) return false;
  const masked = maskBytes(ip.bytes, cidr.prefix);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== cidr.network[i]) return false;
  return true;
}

/** `ipInCidr('10.1.0.7', '10.1.0.0/24')`; false when either does not parse. */
export function ipInCidr(address: string, cidr: string): boolean {
  const block = parseCidr(cidr);
  return block !== undefined && cidrContains(block, address);
}

// ---- qpsmtpd-style prefix entries --------------------------------------------------------------

/** One entry of an IP list, parsed. */
type Entry =
  | { readonly kind: 'exact'; readonly ip: IpAddress }
  | { readonly kind: 'cidr'; readonly cidr: Cidr }
  | { readonly kind: 'v4prefix'; readonly octets: readonly number[] }
  | { readonly kind: 'v6prefix'; readonly groups: readonly number[] }
  | { readonly kind: 'nibbles'; readonly text: string };

/** Parse a list entry; undefined when it is none of the forms (CIDR only when allowed). */
function parseEntry(raw: string, allowCidr: boolean): Entry | undefined {
  const text = raw.trim().toLowerCase();
  if (text === '') return undefined;
  if (text.includes('/')) {
    if (!allowCidr) return undefined;
    const cidr = parseCidr(text);
    return cidr === undefined ? undefined : { kind: 'cidr', cidr };
  }
  const ip = parseIp(text);
  if (ip !== undefined) return { kind: 'exact', ip: unmapIp(ip) };
  if (text.endsWith('.')) {
    const parts = text.slice(0, -1).split('.');
    if (parts.length > 3) return undefined;
    const octets: number[] = [];
    for (const p of parts) {
      const n = parseOctet(p);
      if (n === undefined) return undefined;
      octets.push(n);
    }
    return { kind: 'v4prefix', octets };
  }
  if (text.endsWith(':')) {
    const groups = hexGroups(text.slice(0, -1));
    if (groups === undefined || groups.length === 0 || groups.length > 7) return undefined;
    return { kind: 'v6prefix', groups };
  }
  if (/^[0-9a-f:]+$/.test(text) && !text.includes('::') && text.length < 39) return { kind: 'nibbles', text };
  return undefined;
}

function entryMatches(entry: Entry, ip: IpAddress): boolean {
  switch (entry.kind) {
    case 'exact':
      return entry.ip.family === ip.family && entry.ip.bytes.every((b, i) => ip.bytes[i] === b);
    case 'cidr':
      return cidrContains(entry.cidr, ip);
    case 'v4prefix':
      return ip.family === 4 && entry.octets.every((o, i) => ip.bytes[i] === o);
    case 'v6prefix': {
      if (ip.family !== 6) return false;
      const groups = groupsOf(ip.bytes);
      return entry.groups.every((g, i) => groups[i] === g);
    }
    case 'nibbles':
      return ip.family === 6 && expandIPv6(ip)!.startsWith(entry.text);
  }
}

/**
 * Does `address` match a qpsmtpd prefix entry: a full address, `a.b.c.` / `a.b.` / `a.`, or
 * IPv6 groups ending in `:`? (No CIDR: see `ipMatches`.)
 */
export function ipMatchesPrefix(address: string, entry: string): boolean {
  const ip = parseIp(address);
  const parsed = parseEntry(entry, false);
  return ip !== undefined && parsed !== undefined && entryMatches(parsed, unmapIp(ip));
}

/** Like `ipMatchesPrefix`, and CIDR blocks too. */
export function ipMatches(address: string, entry: string): boolean {
  const ip = parseIp(address);
  const parsed = parseEntry(entry, true);
  return ip !== undefined && parsed !== undefined && entryMatches(parsed, unmapIp(ip));
}

/**
 * The keys under which a map (a cdb file, a `key value` file) may list this address, most
 * specific first: the address as given, its canonical and (IPv6) fully expanded forms, then its
 * prefixes: `a.b.c.`, `a.b.`, `a.` for IPv4; for IPv6 the group prefixes ending in `:` (short and
 * zero-padded) and the hex-digit prefixes of the expanded form that qpsmtpd looks up.
 * Empty when the text is no address.
 */
export function ipPrefixKeys(address: string): string[] {
  const parsed = parseIp(address);
  if (parsed === undefined) return [];
  const ip = unmapIp(parsed);
  const keys = new Set<string>([address.trim(), address.trim().toLowerCase(), formatIp(ip)]);
  if (ip.family === 4) {
    const o = Array.from(ip.bytes);
    for (let n = 3; n >= 1; n--) keys.add(o.slice(0, n).join('.') + '.');
    return [...keys];
  }
  const expanded = expandIPv6(ip)!;
  keys.add(expanded);
  const groups = groupsOf(ip.bytes);
  for (let n = 7; n >= 1; n--) {
    const head = groups.slice(0, n);
    keys.add(head.map((g) => g.toString(16)).join(':') + ':');
    keys.add(head.map((g) => g.toString(16).padStart(4, '0')).join(':') + ':');
  }
  for (let len = expanded.length - 1; len >= 1; len--) {
    if (expanded[len - 1] !== ':') keys.add(expanded.slice(0, len));
  }
  return [...keys];
}

export interface IpListMatch {
  readonly entry: string;
  readonly kind: 'exact' | 'prefix' | 'cidr';
}

/**
 * A list of entries (`relayclients` and the like) for repeated matching. Each line's first word is
 * the entry; lines that are no valid entry are kept in `invalid` (for a warning) and never match.
 */
export class IpList {
  private readonly parsed: { readonly text: string; readonly entry: Entry }[] = [];
  /** Entries that are not an address, a prefix or (when allowed) a CIDR block. */
  readonly invalid: string[] = [];

  constructor(lines: readonly string[], options: { readonly cidr?: boolean } = {}) {
    const allowCidr = options.cidr !== false;
    for (const line of lines) {
      const text = line.trim().split(/\s+/)[0] ?? '';
      if (text === '') continue;
      const entry = parseEntry(text, allowCidr);
      if (entry === undefined) this.invalid.push(text);
      else this.parsed.push({ text, entry });
    }
  }

  get size(): number {
    return this.parsed.length;
  }

  /**
   * The first entry the address matches, as written in the list, and its kind (`exact` for a full
   * address, `prefix`, `cidr`); undefined when none does or the text is no address.
   */
  match(address: string): IpListMatch | undefined {
    const parsed = parseIp(address);
    if (parsed === undefined) return undefined;
    const ip = unmapIp(parsed);
    for (const { text, entry } of this.parsed) {
      if (!entryMatches(entry, ip)) continue;
      const kind = entry.kind === 'exact' || entry.kind === 'cidr' ? entry.kind : 'prefix';
      return { entry: text, kind };
    }
    return undefined;
  }
}

// ---- reverse DNS names ---------------------------------------------------------------------------

/**
 * The address in the reversed form DNS uses: `192.0.2.1` -> `1.2.0.192`, an IPv6 address as its
 * 32 nibbles backwards (`1.0.0.0. ... .8.b.d.0.1.0.0.2`). An IPv4-mapped IPv6 address counts as
 * IPv4. Block lists are queried as `<reversed>.<zone>`; undefined when the text is no address.
 */
export function reverseIpLabels(text: string): string | undefined {
  const parsed = parseIp(text);
  if (parsed === undefined) return undefined;
  const ip = unmapIp(parsed);
  if (ip.family === 4) return Array.from(ip.bytes).reverse().join('.');
  const nibbles: string[] = [];
  for (const byte of ip.bytes) nibbles.push((byte >> 4).toString(16), (byte & 0x0f).toString(16));
  return nibbles.reverse().join('.');
}

/** The PTR name of an address: `1.2.0.192.in-addr.arpa`, `....ip6.arpa`; undefined for no address. */
export function ptrName(text: string): string | undefined {
  const reversed = reverseIpLabels(text);
  if (reversed === undefined) return undefined;
  return `${reversed}.${ipFamily(text) === 6 && !isMappedIPv4(parseIp(text)!) ? 'ip6' : 'in-addr'}.arpa`;
}
