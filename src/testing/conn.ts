/**
 * A connection without a socket: the test plays the client. It sends bytes (in any split it likes)
 * and reads the session's replies one at a time. This is what `TestServer` runs its sessions on;
 * it is exported for tests that need the wire itself (pipelining, byte splits).
 */
import type { Conn, InputSink, TlsServerOptions } from '../session/conn.ts';
import type { Endpoints, TlsInfo } from '../session/connection.ts';

/** One reply as it came over the wire: the code, and each line's text after `NNN-` / `NNN `. */
export interface WireReply {
  readonly code: number;
  readonly lines: string[];
  /** The reply as written, CRLFs included. */
  readonly raw: string;
}

/** The server closed the connection before the reply that was waited for. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
}

/** What the simulated STARTTLS handshake reports. */
export const TEST_TLS: TlsInfo = Object.freeze({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });

export interface TestConnOptions {
  /**
   * The connection can be turned into TLS: `startTls` succeeds at once without a handshake (the
   * options a plugin passes, certificates and all, are kept in `tlsOptions` and otherwise ignored).
   */
  readonly canStartTls?: boolean;
}

export const DEFAULT_ENDPOINTS: Endpoints = Object.freeze({ remoteIp: '192.0.2.10', remotePort: 40000, localIp: '127.0.0.1', localPort: 25 });

export class TestConn implements Conn {
  readonly endpoints: Endpoints;
  /** Everything the session wrote. */
  written = '';
  /** How many times the session called write(): one per pipelined group of replies. */
  writes = 0;
  /** The session closed the connection. */
  closed = false;
  readonly canStartTls: boolean;
  /** The options the session passed to `startTls`, once it did. */
  tlsOptions: TlsServerOptions | undefined;
  readonly needsDrain = false;
  private sink: InputSink | undefined;
  private pendingInput: (Buffer | null)[] = [];
  private cursor = 0;
  private notify: (() => void) | undefined;

  constructor(endpoints: Partial<Endpoints> = {}, options: TestConnOptions = {}) {
    this.endpoints = { ...DEFAULT_ENDPOINTS, ...endpoints };
    this.canStartTls = options.canStartTls === true;
  }

  // ---- Conn: the session's side ---------------------------------------------------------------

  start(sink: InputSink): void {
    this.sink = sink;
    for (const chunk of this.pendingInput) {
      if (chunk === null) sink.end();
      else sink.data(chunk);
    }
    this.pendingInput = [];
  }

  pause(): void {}
  resume(): void {}

  write(data: string): void {
    this.written += data;
    this.writes++;
    this.wake();
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    this.wake();
    return Promise.resolve();
  }

  /** Cut the connection (what a stopping daemon does to sessions that outlive the grace period). */
  destroy(): void {
    this.closed = true;
    this.sink?.end();
    this.wake();
  }

  async startTls(options: TlsServerOptions): Promise<TlsInfo> {
    if (!this.canStartTls) throw new Error('this test connection cannot start TLS (open it with canStartTls)');
    this.tlsOptions = options;
    await Promise.resolve();
    return TEST_TLS;
  }

  // ---- the client's side ----------------------------------------------------------------------

  /** The client sends bytes (a string is sent as UTF-8). */
  send(data: string | Buffer): void {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.sink) this.sink.data(chunk);
    else this.pendingInput.push(chunk);
  }

  /** The client sends one command line (CRLF added). */
  line(text: string): void {
    this.send(text + '\r\n');
  }

  /** The client closes its side. */
  hangUp(): void {
    if (this.sink) this.sink.end();
    else this.pendingInput.push(null);
  }

  /**
   * The next complete reply. Rejects after `timeoutMs`, or with a ConnectionClosedError when the
   * session closed the connection without one.
   */
  async readReply(timeoutMs = 3000): Promise<WireReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = this.parseNext();
      if (parsed) return parsed;
      if (this.closed) throw new ConnectionClosedError(`connection closed; no further reply (unread: ${JSON.stringify(this.unread)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (unread: ${JSON.stringify(this.unread)})`);
      await this.sleep(left);
    }
  }

  /** Wait until the session closed the connection. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await this.sleep(20);
    }
  }

  /** Replies written but not read yet. */
  get unread(): string {
    return this.written.slice(this.cursor);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.notify = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private parseNext(): WireReply | undefined {
    const rest = this.written.slice(this.cursor);
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = rest.indexOf('\r\n', offset);
      if (end === -1) return undefined;
      const line = rest.slice(offset, end);
      offset = end + 2;
      lines.push(line);
      if (line.length < 4 || line[3] === ' ') break;
    }
    this.cursor += offset;
    return { code: Number(lines[0]!.slice(0, 3)), lines: lines.map((l) => l.slice(4)), raw: rest.slice(0, offset) };
  }

  private wake(): void {
    const notify = this.notify;
    this.notify = undefined;
    notify?.();
  }
}
