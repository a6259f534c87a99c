/**
 * An authoritative DNS server on loopback for tests: plugins that look things up (block lists,
 * SPF, DKIM, DMARC, reverse DNS) are tested against real DNS packets, through the daemon's own
 * resolver, without the internet. Point the daemon at it with config `dns_servers` =
 * `server.address`.
 *
 *   const dns = await startDnsServer({ records: [
 *     ['2.0.0.127.zen.test', 'A', '127.0.0.2'],
 *     ['2.0.0.127.zen.test', 'TXT', 'listed, see https://example.test'],
 *     ['example.test', 'MX', '10 mx.example.test'],
 *     ['*.multi.test', 'A', '127.0.0.2'],         // a wildcard: any name under multi.test
 *   ] });
 *
 * A name with records of other types answers NODATA; a name with none, NXDOMAIN (both with an SOA
 * whose minimum is `negativeTtl`, default 0: not cached). Names in `silent` are never answered (a
 * dead server, for time-out tests), names in `servfail` get SERVFAIL. UDP and TCP share one port;
 * answers over 512 bytes come truncated over UDP, so the client must retry over TCP, as with a
 * real server. `queries` lists what was asked, in order.
 */
import Dns2 from 'dns2';

const { Packet } = Dns2;

export type TestRecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'CNAME' | 'NS';

/** `[name, type, value, ttl?]`. MX values are `PRIORITY EXCHANGE`; a TXT value over 255 bytes is split into strings of 255; an array gives the strings as they are. */
export type TestRecord = readonly [name: string, type: TestRecordType, value: string | readonly string[], ttl?: number];

export interface DnsServerOptions {
  readonly records?: readonly TestRecord[];
  /** Names (or `*.suffix`) never answered. */
  readonly silent?: readonly string[];
  /** Names (or `*.suffix`) answered with SERVFAIL. */
  readonly servfail?: readonly string[];
  /** The SOA minimum of negative answers (seconds); 0 by default. */
  readonly negativeTtl?: number;
  /** TTL of records given without one (default 300). */
  readonly defaultTtl?: number;
}

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, the value for config `dns_servers`. */
  readonly address: string;
  readonly port: number;
  /** What was asked, in order: `TYPE name`. */
  readonly queries: string[];
  add(...records: TestRecord[]): void;
  /** Remove a name's records (of one type, or all). */
  remove(name: string, type?: TestRecordType): void;
  silence(name: string): void;
  close(): Promise<void>;
}

const ZONE_SOA = { primary: 'ns.test', admin: 'hostmaster.test', serial: 1, refresh: 3600, retry: 600, expiration: 86400 };

export async function startDnsServer(options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const records = new Map<string, TestRecord[]>();
  const silent = new Set((options.silent ?? []).map(lower));
  const servfail = new Set((options.servfail ?? []).map(lower));
  const queries: string[] = [];
  const defaultTtl = options.defaultTtl ?? 300;
  const negativeTtl = options.negativeTtl ?? 0;

  const add = (...more: TestRecord[]): void => {
    for (const record of more) {
      const key = lower(record[0]);
      records.set(key, [...(records.get(key) ?? []), record]);
    }
  };
  add(...(options.records ?? []));

  const handle = (request: InstanceType<typeof Packet>, send: (response: InstanceType<typeof Packet>) => unknown): void => {
    const question = request.questions[0];
    if (question === undefined) return;
    const name = lower(question.name);
    const typeName = Object.entries(Packet.TYPE).find(([, code]) => code === question.type)?.[0] ?? String(question.type);
    queries.push(`${typeName} ${name}`);
    if (matches(silent, name)) return;
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    if (matches(servfail, name)) {
      response.header.rcode = 2 /* SERVFAIL */;
      send(response);
      return;
    }
    const atName = records.get(name) ?? records.get(wildcardOf(name, records)) ?? [];
    const answers = atName.filter((r) => r[1] === typeName);
    for (const record of answers) response.answers.push(resourceOf(name, record, defaultTtl));
    if (answers.length === 0) {
      if (atName.length === 0) response.header.rcode = 3 /* NXDOMAIN */;
      response.authorities.push({ name: zoneOf(name), type: Packet.TYPE.SOA, class: Packet.CLASS.IN, ttl: negativeTtl, ...ZONE_SOA, minimum: negativeTtl } as never);
    }
    send(response);
  };

  const { udp, tcp, port } = await listenOnOnePort(handle);
  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    add,
    remove(name, type) {
      const key = lower(name);
      const left = (records.get(key) ?? []).filter((r) => type !== undefined && r[1] !== type);
      if (left.length > 0) records.set(key, left);
      else records.delete(key);
    },
    silence(name) {
      silent.add(lower(name));
    },
    async close() {
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => {
          tcp.close(() => resolve());
          // Connections a test left open would keep the server up.
          (tcp as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        }),
      ]);
    },
  };
}

type Handler = Parameters<typeof Dns2.createUDPServer>[0];

/** c-ares and our resolver retry a truncated answer over TCP on the same port: bind both to one. */
async function listenOnOnePort(handle: (request: never, send: never) => void): Promise<{
  udp: ReturnType<typeof Dns2.createUDPServer>;
  tcp: ReturnType<typeof Dns2.createTCPServer>;
  port: number;
}> {
  for (let attempt = 0; ; attempt++) {
    const udp = Dns2.createUDPServer(handle as unknown as Handler);
    await udp.listen(0, '127.0.0.1');
    const port = udp.address().port;
    const tcp = Dns2.createTCPServer(handle as unknown as Parameters<typeof Dns2.createTCPServer>[0]);
    const bound = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) return { udp, tcp, port };
    udp.close();
    if (attempt >= 20) throw new Error('no free port for both UDP and TCP on 127.0.0.1');
  }
}

function resourceOf(name: string, [, type, value, ttl]: TestRecord, defaultTtl: number): never {
  const base = { name, type: Packet.TYPE[type], class: Packet.CLASS.IN, ttl: ttl ?? defaultTtl };
  const text = typeof value === 'string' ? value : value.join('');
  switch (type) {
    case 'A':
    case 'AAAA':
      return { ...base, address: text } as never;
    case 'MX': {
      const [priority, exchange] = text.trim().split(/\s+/);
      return { ...base, priority: Number(priority), exchange } as never;
    }
    case 'TXT':
      return { ...base, data: typeof value === 'string' ? chunks(value, 255) : [...value] } as never;
    case 'PTR':
    case 'CNAME':
      return { ...base, domain: text } as never;
    case 'NS':
      return { ...base, ns: text } as never;
  }
}

function chunks(text: string, size: number): string[] {
  const bytes = Buffer.from(text);
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size).toString());
  return out.length > 0 ? out : [''];
}

function lower(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function matches(set: ReadonlySet<string>, name: string): boolean {
  if (set.has(name)) return true;
  for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
    if (set.has(`*${name.slice(dot)}`)) return true;
  }
  return false;
}

/** The closest `*.suffix` key with records, for a name that has none of its own. */
function wildcardOf(name: string, records: ReadonlyMap<string, unknown>): string {
  for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
    const key = `*${name.slice(dot)}`;
    if (records.has(key)) return key;
  }
  return '';
}

/** The last two labels: good enough an owner for the SOA of a test zone. */
function zoneOf(name: string): string {
  return name.split('.').slice(-2).join('.');
}
