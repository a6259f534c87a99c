/** TCP listeners: every accepted socket becomes a session of the app. */
import { createServer, type Server, type Socket } from 'node:net';
import type { App } from '../app.ts';
import type { Endpoints } from '../session/connection.ts';
import { StreamConn } from './stream-conn.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** Clients speak TLS from the first byte (SMTPS, RFC 8314): `--listen-tls`, or port 465. */
  readonly implicitTls?: boolean;
}

/**
 * `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (all addresses). Throws with a readable message
 * on anything else.
 */
export function parseListenAddress(spec: string, implicitTls?: boolean): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(spec) ?? /^()()(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`invalid listen address "${spec}": use HOST:PORT, [IPv6]:PORT or :PORT`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '::' : m[2]);
  return { host, port, implicitTls: implicitTls ?? port === 465 };
}

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; plugins want a.b.c.d. */
export function plainIp(address: string | undefined): string {
  if (address === undefined) return '0.0.0.0';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Where a listener accepts: one fixed address, or every address of the host (a wildcard bind). */
interface LocalSide {
  readonly implicitTls: boolean;
  /**
   * The listener's own address and port when it is bound to one address; undefined for a wildcard
   * (and until the listener is bound: the port may be the one the system chose).
   */
  fixed: { readonly ip: string; readonly port: number } | undefined;
}

/**
 * The two ends of an accepted socket. A listener bound to one address accepts only there, so the
 * local end is known without asking the kernel (one system call fewer per connection); behind a
 * wildcard bind (`:25`) each socket is asked.
 */
export function socketEndpoints(socket: Socket, local: LocalSide): Endpoints {
  return {
    remoteIp: plainIp(socket.remoteAddress),
    remotePort: socket.remotePort ?? 0,
    localIp: local.fixed?.ip ?? plainIp(socket.localAddress),
    localPort: local.fixed?.port ?? socket.localPort ?? 0,
    implicitTls: local.implicitTls,
  };
}

/** The fixed local end of a bound listener, or undefined when it listens on every address. */
export function fixedLocal(bound: ReturnType<Server['address']>): LocalSide['fixed'] {
  if (bound === null || typeof bound !== 'object') return undefined;
  const ip = plainIp(bound.address);
  return ip === '0.0.0.0' || ip === '::' ? undefined : { ip, port: bound.port };
}

export class TcpListeners {
  private readonly implicit = new Map<Server, boolean>();

  private constructor(
    private readonly servers: Server[],
    implicit: readonly boolean[],
  ) {
    servers.forEach((s, i) => this.implicit.set(s, implicit[i] === true));
  }

  /** Listen on every address; rejects (closing what was opened) if one cannot be bound. */
  static async open(app: App, addresses: readonly ListenAddress[]): Promise<TcpListeners> {
    const servers: Server[] = [];
    try {
      for (const address of addresses) servers.push(await listenOne(app, address));
    } catch (err) {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      throw err;
    }
    return new TcpListeners(
      servers,
      addresses.map((a) => a.implicitTls === true),
    );
  }

  /** The addresses actually bound (a port 0 becomes the port the system chose). */
  bound(): ListenAddress[] {
    return this.servers.map((s) => {
      const a = s.address();
      const implicitTls = this.implicit.get(s) === true;
      return typeof a === 'object' && a !== null ? { host: a.address, port: a.port, implicitTls } : { host: String(a), port: 0, implicitTls };
    });
  }

  /** Stop accepting; sessions in progress go on. */
  close(): Promise<void> {
    return Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
  }
}

function listenOne(app: App, address: ListenAddress): Promise<Server> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client that sends its last commands and then shuts down its sending side
    // (QUIT, then FIN) still gets the replies to them; the session closes the socket when it ends.
    const local: LocalSide = { implicitTls: address.implicitTls === true, fixed: undefined };
    const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      void app.handle(new StreamConn(socketEndpoints(socket, local), socket, socket));
    });
    const fail = (err: Error): void => reject(new Error(`cannot listen on ${address.host}:${address.port}: ${err.message}`));
    server.once('error', fail);
    server.listen({ host: address.host, port: address.port, ipv6Only: false }, () => {
      server.off('error', fail);
      server.on('error', () => undefined);
      local.fixed = fixedLocal(server.address());
      resolve(server);
    });
  });
}
