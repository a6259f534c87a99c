/**
 * The client side of one SMTP or LMTP connection (RFC 5321, RFC 2033), for queue plugins that
 * hand a message on: replies read in order (pipelining works: send several commands, then read
 * their replies), commands, the envelope with or without PIPELINING, the message dot-stuffed
 * with CRLF line ends and the final dot, STARTTLS, QUIT.
 *
 * The plugin opens the socket (node:net or node:tls; in the core only src/transport opens
 * sockets) and passes a function that does it: `SmtpClient.connect(() => net.connect(...), ...)`.
 *
 * Every failure of the link is an SmtpLinkError with an enhanced status code for our client's
 * 4xx: no connection in time (4.4.1), no reply in time, the connection closed, a reply that is
 * not one, the hook's signal aborted (4.4.2), a failed TLS handshake (4.7.0). Once the link has
 * failed every later call fails the same way. What a reply means is the caller's business.
 */
import type { Duplex } from 'node:stream';
import { connectWithin } from './connect.ts';
import { convertStream, DataEncoder } from './line-ends.ts';
import { MailRefusal, ReplyParser, type ServerReply } from './replies.ts';

/** The connection failed, timed out or broke the protocol: always a 4xx for our client. */
export class SmtpLinkError extends Error {
  constructor(
    message: string,
    /** The enhanced status code for our client's 4xx (4.4.1 no connection, 4.4.2 a broken one, ...). */
    readonly enhanced: string,
  ) {
    super(message);
  }
}

const OUT_OF_TIME = 'the hook ran out of time (plugin_timeout)';

/** Error codes that mean the server could not be reached (4.4.1): TCP and name lookup. */
export const CONNECT_FAILURES: readonly string[] = ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'];

/**
 * Any error of a dialogue as an SmtpLinkError: itself if it is one; `the hook ran out of time`
 * when `signal` has aborted; `cannot connect: ...` (4.4.1) for the `connectFailures` codes
 * (add ENOENT and EACCES for unix sockets); else its message (4.4.2).
 */
export function smtpLinkError(err: unknown, signal: AbortSignal, connectFailures: readonly string[] = CONNECT_FAILURES): SmtpLinkError {
  if (err instanceof SmtpLinkError) return err;
  if (signal.aborted) return new SmtpLinkError(OUT_OF_TIME, '4.4.2');
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== undefined && connectFailures.includes(code)) return new SmtpLinkError(`cannot connect: ${message}`, '4.4.1');
  return new SmtpLinkError(message, '4.4.2');
}

/** How a dialogue ended badly, for our client's reply and the log. */
export interface DialogueFailure {
  /** 5xx (true) or 4xx. */
  readonly permanent: boolean;
  /** The reply text for our client. */
  readonly text: string;
  /** What to log. */
  readonly reason: string;
}

/**
 * The result of an error that ended a dialogue: a MailRefusal as it is (its text logged too);
 * anything else as an SmtpLinkError (see smtpLinkError): a 4xx `<enhanced> <unavailable>`
 * (`Next hop unavailable, try again later`), its message logged.
 */
export function dialogueFailure(err: unknown, signal: AbortSignal, unavailable: string, connectFailures: readonly string[] = CONNECT_FAILURES): DialogueFailure {
  if (err instanceof MailRefusal) return { permanent: err.permanent, text: err.text, reason: err.text };
  const link = smtpLinkError(err, signal, connectFailures);
  return { permanent: false, text: `${link.enhanced} ${unavailable}`, reason: link.message };
}

export interface SmtpClientOptions {
  /** How long to wait for the connection, for each reply and for a TLS handshake (ms). */
  readonly timeoutMs: number;
  /** Aborting it fails the link (the hook's signal). */
  readonly signal: AbortSignal;
  /** In error texts: `not an SMTP reply`. Default SMTP. */
  readonly protocol?: string;
  /** In error texts: `the next hop closed the connection`. Default `the server`. */
  readonly peer?: string;
}

interface Waiter {
  resolve(reply: ServerReply): void;
  reject(err: Error): void;
}

export class SmtpClient {
  private socket: Duplex;
  private readonly parser: ReplyParser;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal;
  private readonly peer: string;
  private replies: ServerReply[] = [];
  private waiter: Waiter | undefined;
  private failure: Error | undefined;
  private drainWaiter: ((err: Error) => void) | undefined;
  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onError = (err: Error): void => this.fail(err);
  private readonly onClose = (): void => this.fail(new SmtpLinkError(`${this.peer} closed the connection`, '4.4.2'));
  private readonly onAbort = (): void => this.fail(new SmtpLinkError(OUT_OF_TIME, '4.4.2'));

  private constructor(socket: Duplex, options: SmtpClientOptions) {
    this.socket = socket;
    this.timeoutMs = options.timeoutMs;
    this.signal = options.signal;
    this.peer = options.peer ?? 'the server';
    this.parser = new ReplyParser(options.protocol ?? 'SMTP');
    this.attach();
    this.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * Open the connection with `open` and wait for it (`no connection within N s`, 4.4.1). The
   * greeting is the first reply to read. `open` is not called when the signal has aborted.
   */
  static async connect(open: () => Duplex, options: SmtpClientOptions): Promise<SmtpClient> {
    const { timeoutMs, signal } = options;
    const socket = await connectWithin(open, {
      timeoutMs,
      signal,
      timeoutError: () => new SmtpLinkError(`no connection within ${timeoutMs / 1000} s`, '4.4.1'),
      abortError: () => new SmtpLinkError(OUT_OF_TIME, '4.4.2'),
    });
    return new SmtpClient(socket, options);
  }

  private attach(): void {
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
  }

  private detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
  }

  private received(chunk: Buffer): void {
    const { replies, error } = this.parser.push(chunk);
    for (const reply of replies) {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve(reply);
      } else this.replies.push(reply);
    }
    if (error !== undefined) this.fail(new SmtpLinkError(error, '4.4.2'));
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.waiter?.reject(err);
    this.waiter = undefined;
    this.drainWaiter?.(err);
    this.drainWaiter = undefined;
  }

  /** The next reply (replies that arrived earlier first), within the time limit. */
  read(): Promise<ServerReply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<ServerReply>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new SmtpLinkError(`no reply within ${this.timeoutMs / 1000} s`, '4.4.2')), this.timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Write, waiting for the socket to drain. */
  async send(data: string | Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.socket.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.drainWaiter = undefined;
        resolve();
      };
      this.drainWaiter = (err: Error) => {
        this.socket.off('drain', onDrain);
        reject(err);
      };
      this.socket.once('drain', onDrain);
    });
  }

  /** Send one command line (CRLF added) and read its reply. */
  async command(line: string): Promise<ServerReply> {
    await this.send(line + '\r\n');
    return this.read();
  }

  /**
   * MAIL and the RCPTs. With `pipelining` all in one write, then their replies; without, one at a
   * time, and no RCPT when MAIL is refused (then `rcpts` is empty). DATA is left to the caller:
   * it must not follow refused recipients into a 354 it would have to break off.
   */
  async sendEnvelope(mail: string, rcpts: readonly string[], pipelining: boolean): Promise<{ mail: ServerReply; rcpts: ServerReply[] }> {
    const replies: ServerReply[] = [];
    let mailReply: ServerReply;
    if (pipelining) {
      await this.send([mail, ...rcpts].map((l) => l + '\r\n').join(''));
      mailReply = await this.read();
      for (let i = 0; i < rcpts.length; i++) replies.push(await this.read());
    } else {
      mailReply = await this.command(mail);
      if (mailReply.code === 250) for (const line of rcpts) replies.push(await this.command(line));
    }
    return { mail: mailReply, rcpts: replies };
  }

  /**
   * The message after the 354: CRLF line ends, dots doubled at line starts, then the final dot
   * (a DataEncoder). The hook's signal is checked between chunks; on a failure the message
   * stream is destroyed. The reply (or LMTP's replies) to the dot is left to read().
   */
  async sendMessage(message: AsyncIterable<unknown>): Promise<void> {
    for await (const out of convertStream(message, new DataEncoder(), this.signal)) await this.send(out);
  }

  /**
   * After a 220 to STARTTLS: `upgrade` wraps the plain socket (`tls.connect({ socket, ... })`);
   * replies are read from the secure one once its handshake is done (4.7.0 when it fails or
   * takes longer than the time limit).
   */
  async startTls(upgrade: (plain: Duplex) => Duplex): Promise<void> {
    this.detach();
    const secure = upgrade(this.socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SmtpLinkError('TLS handshake timed out', '4.7.0')), this.timeoutMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new SmtpLinkError(`TLS handshake failed: ${err.message}`, '4.7.0'));
      });
    });
    this.socket = secure;
    this.parser.dropPending();
    this.attach();
  }

  /** QUIT without waiting long for the 221 (5 s at most), then close. Nothing after it works. */
  quit(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    const socket = this.socket;
    if (this.failure || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.failure = new SmtpLinkError('closed', '4.4.2');
    const timer = setTimeout(() => socket.destroy(), 5000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (/^221/m.test(chunk.toString('latin1'))) socket.destroy();
    });
    socket.end('QUIT\r\n');
  }
}
