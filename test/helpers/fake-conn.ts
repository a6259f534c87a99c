/**
 * A Conn without a socket: the test plays the client. It sends bytes (in any split it likes) and
 * reads the session's replies one at a time.
 */
import type { Conn, InputSink } from '../../src/session/conn.ts';
import type { Endpoints } from '../../src/session/connection.ts';

export interface ParsedReply {
  readonly code: number;
  /** Reply lines without the code and separator. */
  readonly lines: string[];
  /** The text of all lines, joined with \n. */
  readonly text: string;
  /** The reply as it was on the wire. */
  readonly raw: string;
}

export class FakeConn implements Conn {
  readonly endpoints: Endpoints;
  /** Everything the session wrote. */
  written = '';
  /** How many times the session called write(): one per pipelined group. */
  writes = 0;
  closed = false;
  private sink: InputSink | undefined;
  private pendingInput: (Buffer | null)[] = [];
  private cursor = 0;
  private notify: (() => void) | undefined;

  constructor(endpoints: Partial<Endpoints> = {}) {
    this.endpoints = { remoteIp: '192.0.2.10', remotePort: 40000, localIp: '127.0.0.1', localPort: 25, ...endpoints };
  }

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

  readonly needsDrain = false;
  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    this.wake();
    return Promise.resolve();
  }

  destroy(): void {
    this.closed = true;
    this.sink?.end();
    this.wake();
  }

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

  /** The next complete reply; rejects after `timeoutMs` or if the session closed without one. */
  async reply(timeoutMs = 3000): Promise<ParsedReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = this.parseNext();
      if (parsed) return parsed;
      if (this.closed) throw new Error(`connection closed; no further reply (unread: ${JSON.stringify(this.written.slice(this.cursor))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (unread: ${JSON.stringify(this.written.slice(this.cursor))})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Send a line and return the reply to it. */
  async command(text: string, timeoutMs?: number): Promise<ParsedReply> {
    this.line(text);
    return this.reply(timeoutMs);
  }

  /** Wait until the session closed the connection. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Replies written but not read yet. */
  get unread(): string {
    return this.written.slice(this.cursor);
  }

  private parseNext(): ParsedReply | undefined {
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
    const code = Number(lines[0]!.slice(0, 3));
    const texts = lines.map((l) => l.slice(4));
    return { code, lines: texts, text: texts.join('\n'), raw: rest.slice(0, offset) };
  }

  private wake(): void {
    const notify = this.notify;
    this.notify = undefined;
    notify?.();
  }
}
