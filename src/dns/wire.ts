/**
 * DNS messages on the wire: a query for one name and type, and what an answer to it says. The
 * byte codec is dns2's Packet (a well-kept RFC 1035 codec); this module only decides what we
 * send and how an answer is read: records of the asked type with their TTLs, the negative-cache
 * TTL from the SOA (RFC 2308), and whether the answer is really ours (id and question match:
 * a spoofed or stray datagram is ignored, not believed).
 */
import { lazyCrypto } from '../util/builtin.ts';
import type Dns2 from 'dns2';

type PacketCodec = typeof Dns2.Packet;
let Packet: PacketCodec | undefined;
let loading: Promise<PacketCodec> | undefined;

/**
 * Loads the codec on first use: dns2 brings its servers and HTTP clients along (about 100 ms),
 * which a daemon without DNS plugins should not pay at start-up.
 */
export function loadCodec(): Promise<PacketCodec> {
  loading ??= import('dns2').then((module) => (Packet = module.default.Packet));
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
  const packet = new Packet();
  packet.header.id = id;
  packet.header.rd = 1;
  packet.questions.push(new Packet.Question(name, Packet.TYPE[type], Packet.CLASS.IN));
  return { id, bytes: packet.toBuffer() };
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
  let packet: InstanceType<PacketCodec>;
  try {
    packet = Packet.parse(bytes);
  } catch {
    return undefined;
  }
  const header = packet.header;
  if (header.id !== id || header.qr !== 1) return undefined;
  const question = packet.questions[0];
  if (question === undefined || canonicalName(question.name) !== canonicalName(name) || question.type !== Packet.TYPE[type]) {
    return undefined;
  }
  const rcode = RCODES[header.rcode] ?? 'OTHER';
  const wanted = Packet.TYPE[type];
  const matching = packet.answers.filter((r) => r !== undefined && r.type === wanted && (r.class === Packet.CLASS.IN || r.class === undefined));
  const records = matching.map((r) => recordOf(type, r as unknown as AnyResource)) as RecordsOf[T];
  let ttl: number | undefined;
  if (matching.length > 0) {
    ttl = Math.min(...matching.map((r) => r.ttl ?? 0));
  } else {
    // RFC 2308 §5: a negative answer lives as long as the lesser of the SOA's TTL and its minimum.
    const soa = (packet.authorities ?? []).find((r) => r !== undefined && r.type === Packet.TYPE.SOA) as
      | (Record<string, unknown> & { ttl?: number; minimum?: number })
      | undefined;
    if (soa !== undefined) ttl = Math.min(soa.ttl ?? 0, soa.minimum ?? 0);
  }
  return { rcode, truncated: header.tc === 1, records, ttl };
}

type AnyResource = Record<string, unknown> & { type: number; ttl?: number };

function recordOf(type: RecordType, r: AnyResource): RecordsOf[RecordType][number] {
  switch (type) {
    case 'A':
    case 'AAAA':
      return String(r['address']);
    case 'MX':
      return { exchange: canonicalName(String(r['exchange'])), priority: Number(r['priority']) };
    case 'TXT': {
      const data = r['data'];
      return Array.isArray(data) ? data.map(String) : [String(data)];
    }
    case 'PTR':
    case 'CNAME':
      return canonicalName(String(r['domain']));
    case 'NS':
      return canonicalName(String(r['ns']));
    case 'SOA':
      return {
        nsname: canonicalName(String(r['primary'])),
        hostmaster: canonicalName(String(r['admin'])),
        serial: Number(r['serial']),
        refresh: Number(r['refresh']),
        retry: Number(r['retry']),
        expire: Number(r['expiration']),
        minttl: Number(r['minimum']),
      };
  }
}

/** A TCP DNS message carries a two-byte length in front (RFC 1035 §4.2.2). */
export function frameForTcp(bytes: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(bytes.length + 2);
  framed.writeUInt16BE(bytes.length, 0);
  bytes.copy(framed, 2);
  return framed;
}
