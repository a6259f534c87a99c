/**
 * DNS messages on the wire: a query for one name and type, and what an answer to it says. The
 * byte codec is dns-packet (a well-kept RFC 1035 codec, about 2 µs a message here where dns2's
 * bit reader took 20-50); this module only decides what we send and how an answer is read:
 * records of the asked type with their TTLs, the negative-cache TTL from the SOA (RFC 2308), and
 * whether the answer is really ours (id and question match: a spoofed or stray datagram is
 * ignored, not believed).
 */
import { isIPv4Text, isIPv6Text } from '../net/ip.ts';
import { lazyCrypto } from '../util/builtin.ts';
import type * as DnsPacket from 'dns-packet';

type PacketCodec = typeof DnsPacket;
let Packet: PacketCodec | undefined;
let loading: Promise<PacketCodec> | undefined;

/** Loads the codec on first use: a daemon without DNS plugins does not pay for it at start-up. */
export function loadCodec(): Promise<PacketCodec> {
  loading ??= import('dns-packet').then((module) => (Packet = (module.default ?? module) as PacketCodec));
  return loading;
}

function codec(): PacketCodec {
  if (Packet === undefined) throw new Error('the DNS codec is not loaded yet: await loadCodec() first');
  return Packet;
}

export const RECORD_TYPES = ['A', 'AAAA', 'MX', 'TXT', 'PTR', 'NS', 'CNAME', 'SOA'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

export interface SoaRecord {
  readonly nsname: string;
  readonly hostmaster: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minttl: number;
}

/** The record shapes of node:dns/promises `resolve`, so code written for it (mailauth) fits. */
export interface RecordsOf {
  A: string[];
  AAAA: string[];
  MX: MxRecord[];
  TXT: string[][];
  PTR: string[];
  NS: string[];
  CNAME: string[];
  SOA: SoaRecord[];
}

export type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED' | 'OTHER';

export interface ParsedAnswer<T extends RecordType = RecordType> {
  readonly rcode: Rcode;
  /** The server said the answer did not fit: ask again over TCP. */
  readonly truncated: boolean;
  readonly records: RecordsOf[T];
  /** Smallest TTL of the records (seconds); for an empty answer the SOA's negative TTL, or undefined. */
  readonly ttl: number | undefined;
}

const RCODES: Record<number, Rcode> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

/** A query with a fresh random id (the source port changes with the socket: see transport/dns-exchange.ts). */
export function encodeQuery(name: string, type: RecordType): { id: number; bytes: Buffer } {
  const Packet = codec();
  const id = lazyCrypto().randomInt(0, 0x10000);
  const bytes = Packet.encode({ type: 'query', id, flags: Packet.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
  return { id, bytes };
}

/** Lower case, no trailing dot: names compare equal however a server spelled them. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Reads an answer. Returns undefined when the bytes are not an answer to this query (wrong id,
 * not a response, another question): the caller keeps waiting for the real one.
 */
export function decodeAnswer<T extends RecordType>(bytes: Buffer, id: number, name: string, type: T): ParsedAnswer<T> | undefined {
  const Packet = codec();
  let packet: DnsPacket.DecodedPacket;
  try {
    packet = Packet.decode(bytes);
  } catch {
    return undefined;
  }
  // The codec reads past the end of a short datagram rather than failing: what it then returns is
  // made up of undefined bytes. It says how far it read (NaN when a length field itself was cut).
  if (!(Packet.decode.bytes <= bytes.length)) return undefined;
  if (packet.id !== id || packet.type !== 'response') return undefined;
  const question = packet.questions?.[0];
  if (question === undefined || question.type !== type || canonicalName(question.name) !== canonicalName(name)) return undefined;
  const flags = packet.flags ?? 0;
  const rcode = RCODES[flags & 0x0f] ?? 'OTHER';
  try {
    const matching = (packet.answers ?? []).filter((r) => r.type === type && (r.class === 'IN' || r.class === undefined)) as DataAnswer[];
    const records = matching.map((r) => recordOf(type, r.data)) as RecordsOf[T];
    let ttl: number | undefined;
    if (matching.length > 0) {
      ttl = Math.min(...matching.map((r) => r.ttl ?? 0));
    } else {
      // RFC 2308 §5: a negative answer lives as long as the lesser of the SOA's TTL and its minimum.
      const soa = (packet.authorities ?? []).find((r): r is DnsPacket.SoaAnswer => r.type === 'SOA');
      if (soa !== undefined) ttl = Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
    }
    return { rcode, truncated: (flags & Packet.TRUNCATED_RESPONSE) !== 0, records, ttl };
  } catch {
    // A record whose data does not have its type's shape: not an answer we can use.
    return undefined;
  }
}

interface DataAnswer {
  readonly ttl?: number | undefined;
  readonly data: unknown;
}

function recordOf(type: RecordType, data: unknown): RecordsOf[RecordType][number] {
  switch (type) {
    case 'A':
    case 'AAAA': {
      const address = String(data);
      if (!(type === 'A' ? isIPv4Text(address) : isIPv6Text(address))) throw new Error(`not an ${type === 'A' ? 'IPv4' : 'IPv6'} address`);
      return address;
    }
    case 'MX': {
      const mx = data as DnsPacket.MxData;
      return { exchange: canonicalName(String(mx.exchange)), priority: Number(mx.preference) };
    }
    case 'TXT': {
      // The character-strings of one record, each as text (node:dns gives the same shape).
      const parts = Array.isArray(data) ? data : [data];
      return parts.map((part) => (Buffer.isBuffer(part) ? part.toString('utf8') : String(part)));
    }
    case 'PTR':
    case 'CNAME':
    case 'NS':
      return canonicalName(String(data));
    case 'SOA': {
      const soa = data as DnsPacket.SoaData;
      return {
        nsname: canonicalName(soa.mname),
        hostmaster: canonicalName(soa.rname),
        serial: Number(soa.serial),
        refresh: Number(soa.refresh),
        retry: Number(soa.retry),
        expire: Number(soa.expire),
        minttl: Number(soa.minimum),
      };
    }
  }
}

/** A TCP DNS message carries a two-byte length in front (RFC 1035 §4.2.2). */
export function frameForTcp(bytes: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(bytes.length + 2);
  framed.writeUInt16BE(bytes.length, 0);
  bytes.copy(framed, 2);
  return framed;
}
