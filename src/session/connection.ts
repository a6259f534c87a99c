/** What is known about the client for the whole session: `this.qp.connection` for plugins. */

export interface Endpoints {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly localIp: string;
  readonly localPort: number;
  /** The client's host name when the transport knows it (tcpserver's TCPREMOTEHOST). */
  readonly remoteHost?: string;
  /** tcpserver's TCPREMOTEINFO (ident), when known. */
  readonly remoteInfo?: string;
  /** The listener speaks TLS from the first byte (port 465, `--listen-tls`). */
  readonly implicitTls?: boolean;
}

export interface TlsInfo {
  /** `TLSv1.3` ... */
  readonly protocol: string;
  /** The cipher suite's standard name. */
  readonly cipher: string;
  /** The host name the client asked for (SNI), if any. */
  readonly servername?: string;
}

export class Connection {
  /** Unique in this process; prefixes log lines and transaction ids. */
  readonly id: string;
  /** The client (the one a trusted proxy named, when the connection came through one). */
  remoteIp: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  /** The trusted proxy the connection came through (its PROXY header named the client). */
  proxiedBy: string | undefined;
  /** The connection came in on an implicit-TLS listener: TLS must start before the greeting. */
  readonly implicitTls: boolean;
  /** The client's name: its reverse DNS name when a plugin or the transport found one, else `[ip]`. */
  remoteHost: string;
  /** `ident@host` when known, else the host (used in the greeting reply and Received header). */
  remoteInfo: string;
  /** True when the client may relay: set by `relay`, by successful AUTH, or by any plugin. */
  relayClient = false;
  /** `'helo'` or `'ehlo'` once the client greeted. */
  hello: 'helo' | 'ehlo' | undefined;
  /** The name the client gave in HELO/EHLO. */
  helloHost: string | undefined;
  /** The authenticated user and mechanism, after a successful AUTH. */
  authUser: string | undefined;
  authMechanism: string | undefined;
  /** Set once the link is encrypted. */
  tls: TlsInfo | undefined;
  /** Plain object for plugins to share state for the length of the session. */
  readonly notes: Record<string, unknown> = {};
  /** Fragments for the Authentication-Results header that hold for every message of the session. */
  readonly authResults: string[] = [];
  readonly startedAt = new Date();

  constructor(id: string, endpoints: Endpoints) {
    this.id = id;
    this.remoteIp = endpoints.remoteIp;
    this.remotePort = endpoints.remotePort;
    this.localIp = endpoints.localIp;
    this.localPort = endpoints.localPort;
    this.implicitTls = endpoints.implicitTls === true;
    this.remoteHost = endpoints.remoteHost ?? `[${endpoints.remoteIp}]`;
    this.remoteInfo = endpoints.remoteInfo ? `${endpoints.remoteInfo}@${this.remoteHost}` : this.remoteHost;
  }

  /**
   * Take the addresses a trusted proxy's PROXY header names: from here on every plugin sees the
   * real client, and `proxiedBy` says which proxy it came through.
   */
  adoptProxied(addresses: { remoteIp: string; remotePort: number; localIp: string; localPort: number }): void {
    this.proxiedBy = this.remoteIp;
    this.remoteIp = addresses.remoteIp;
    this.remotePort = addresses.remotePort;
    this.localIp = addresses.localIp;
    this.localPort = addresses.localPort;
    this.remoteHost = `[${addresses.remoteIp}]`;
    this.remoteInfo = this.remoteHost;
  }

  /** `name [ip]`, or `[ip]` while the client's name is not known (RFC 5321 TCP-info). */
  describe(): string {
    const literal = `[${this.remoteIp}]`;
    return this.remoteInfo === literal ? literal : `${this.remoteInfo} ${literal}`;
  }
}
