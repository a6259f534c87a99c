/**
 * A scripted milter for the tests, written against our codec: it listens on a random loopback
 * port, records every command of every connection, and answers as the test says — including
 * what no real milter can be made to do on demand (quarantine, a new body, CHGFROM, reply codes,
 * garbage, silence, a closed connection).
 *
 * By default it negotiates the given actions and protocol flags, and answers `continue` to every
 * command that wants an answer (none where its own NR_* flags say so). `on` can answer anything
 * else for any command.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { decodeCommand, type MilterCommand } from '../../../src/milter/commands.ts';
import { PacketReader } from '../../../src/milter/packets.ts';
import { Proto } from '../../../src/milter/protocol.ts';
import { encodeResponse, type MilterResponse } from '../../../src/milter/responses.ts';

/** What the milter does about one command. */
export type Answer =
  | readonly MilterResponse[]
  /** Bytes as they are (garbage, a torn packet). */
  | { readonly raw: Buffer }
  /** No answer at all. */
  | 'silence'
  /** Hang up. */
  | 'close';

export interface FakeMilterOptions {
  readonly version?: number;
  readonly actions?: number;
  readonly protocol?: number;
  readonly macros?: ReadonlyMap<number, readonly string[]>;
  /** Listen on this unix socket instead of a loopback port. */
  readonly path?: string;
  /** The answer to a command; undefined: the default. May wait (a slow milter). */
  readonly on?: (cmd: MilterCommand, conn: FakeConnection) => Answer | undefined | Promise<Answer | undefined>;
}

/** One connection from the MTA, as the milter saw it. */
export class FakeConnection {
  readonly commands: MilterCommand[] = [];
  closed = false;
  readonly ended: Promise<void>;
  private endedResolve!: () => void;

  constructor(readonly socket: Socket) {
    this.ended = new Promise((resolve) => (this.endedResolve = resolve));
    socket.once('close', () => {
      this.closed = true;
      this.endedResolve();
    });
  }

  /** The command types in order, macros and all (`macro:C`, `connect`, ...). */
  get types(): string[] {
    return this.commands.map((c) => (c.type === 'macro' ? `macro:${c.command}` : c.type));
  }

  /** The macros sent before the command with this code (`C`, `M`, `R`, ...), the last time. */
  macros(command: string): Record<string, string> {
    const found = [...this.commands].reverse().find((c) => c.type === 'macro' && c.command === command);
    return found?.type === 'macro' ? Object.fromEntries(found.macros) : {};
  }

  of<T extends MilterCommand['type']>(type: T): Extract<MilterCommand, { type: T }>[] {
    return this.commands.filter((c): c is Extract<MilterCommand, { type: T }> => c.type === type);
  }
}

/** Which protocol flag means "no reply" for each command. */
const NO_REPLY: Partial<Record<MilterCommand['type'], number>> = {
  connect: Proto.NR_CONN,
  helo: Proto.NR_HELO,
  mail: Proto.NR_MAIL,
  rcpt: Proto.NR_RCPT,
  data: Proto.NR_DATA,
  header: Proto.NR_HDR,
  eoh: Proto.NR_EOH,
  body: Proto.NR_BODY,
  unknown: Proto.NR_UNKN,
};
const ANSWERED = new Set(['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'eob', 'unknown']);

export class FakeMilter {
  readonly connections: FakeConnection[] = [];
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly path: string | undefined,
  ) {}

  static async start(options: FakeMilterOptions = {}): Promise<FakeMilter> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      const listening = (): void => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      };
      if (options.path !== undefined) server.listen(options.path, listening);
      else server.listen(0, '127.0.0.1', listening);
    });
    const milter = new FakeMilter(server, port, options.path);
    server.on('connection', (socket) => milter.serve(socket, options));
    return milter;
  }

  /** The plugin's socket argument. */
  get socket(): string {
    return this.path !== undefined ? `unix:${this.path}` : `inet:${this.port}@127.0.0.1`;
  }

  /** The last connection (the one of the test's session). */
  get last(): FakeConnection {
    const conn = this.connections[this.connections.length - 1];
    if (conn === undefined) throw new Error('the milter got no connection');
    return conn;
  }

  private serve(socket: Socket, options: FakeMilterOptions): void {
    const conn = new FakeConnection(socket);
    this.connections.push(conn);
    const reader = new PacketReader();
    const protocol = options.protocol ?? 0;
    let queue = Promise.resolve();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      const { packets, error } = reader.push(chunk);
      if (error !== undefined) socket.destroy();
      for (const packet of packets) {
        const cmd = decodeCommand(packet);
        if ('error' in cmd) throw new Error(`fake milter: ${cmd.error}`);
        conn.commands.push(cmd);
        // One command after the other, as a milter works (an answer may take its time).
        queue = queue.then(async () => {
          if (socket.destroyed) return;
          let answer = await options.on?.(cmd, conn);
          if (answer === undefined) {
            if (cmd.type === 'optneg') {
              answer = [{ type: 'optneg', version: options.version ?? 6, actions: options.actions ?? 0, protocol, macros: options.macros ?? new Map() }];
            } else if (ANSWERED.has(cmd.type) && (protocol & (NO_REPLY[cmd.type] ?? 0)) === 0) {
              answer = [{ type: 'continue' }];
            } else {
              answer = 'silence';
            }
          }
          if (answer === 'silence') return;
          if (answer === 'close') {
            socket.destroy();
            return;
          }
          socket.write('raw' in answer ? answer.raw : Buffer.concat(answer.map(encodeResponse)));
        });
      }
    });
  }

  async close(): Promise<void> {
    for (const conn of this.connections) conn.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
