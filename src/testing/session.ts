/** One SMTP session of a TestServer, driven by the test as the client. */
import type { Connection } from '../session/connection.ts';
import type { SessionApi } from '../session/session-api.ts';
import type { Transaction } from '../session/transaction.ts';
import { ConnectionClosedError, type TestConn } from './conn.ts';
import { toPath, toWire } from './message.ts';
import { toSmtpReply, type SmtpReply } from './reply.ts';
import type { QueuedMessage } from './server.ts';

export interface SendMailOptions {
  /** The EHLO name, when the session has not greeted yet (default `client.example.test`). */
  readonly helo?: string;
  /** Parameters after `MAIL FROM:<...>`, e.g. `SIZE=1000 BODY=8BITMIME`. */
  readonly mailParams?: string;
}

/** How a `sendMail` went: the reply that ended it, and every reply on the way. */
export interface MailResult extends SmtpReply {
  /** The step the reply answers: `message` when the message was sent, else the step that was refused. */
  readonly step: 'ehlo' | 'mail' | 'rcpt' | 'data' | 'message';
  /** True when the reply to the final dot is a 2xx. */
  readonly accepted: boolean;
  /** Every reply, in order (EHLO if it was sent, MAIL, each RCPT, DATA, the final one). */
  readonly replies: readonly SmtpReply[];
  /** The recipients a RCPT was refused for, with the reply. */
  readonly refusedRecipients: readonly { readonly recipient: string; readonly reply: SmtpReply }[];
  /** What the kit's capturing queue took from this message, if it took it. */
  readonly queued: QueuedMessage | undefined;
}

/** What the session needs from its server. */
export interface SessionHost {
  readonly queued: readonly QueuedMessage[];
  readonly replyTimeoutMs: number;
}

const is2xx = (r: SmtpReply): boolean => r.code >= 200 && r.code < 300;

export class TestSession {
  /** The first reply (the greeting, or a refusal); set by `TestServer.connect`, or by the first `reply()`. */
  greeting: SmtpReply | undefined;
  /** Resolves when the session has ended (the server side is finished: disconnect and post-connection ran). */
  readonly ended: Promise<void>;

  constructor(
    /** The wire: send raw bytes, see everything written. */
    readonly conn: TestConn,
    ended: Promise<void>,
    private readonly api: () => SessionApi,
    private readonly host: SessionHost,
  ) {
    this.ended = ended;
  }

  /** The live Connection as plugins see it: notes, relayClient, hello, tls, authUser ... */
  get connection(): Connection {
    return this.api().connection;
  }

  /** The current Transaction as plugins see it (a fresh one between messages). */
  get transaction(): Transaction {
    return this.api().transaction;
  }

  /** True once the server closed the connection. */
  get closed(): boolean {
    return this.conn.closed;
  }

  /** Send raw bytes, as they are (no CRLF added). */
  send(data: string | Buffer): void {
    this.conn.send(data);
  }

  /** The next reply. Rejects when none comes in time, or when the server closed the connection. */
  async reply(timeoutMs = this.host.replyTimeoutMs): Promise<SmtpReply> {
    const reply = toSmtpReply(await this.conn.readReply(timeoutMs));
    this.greeting ??= reply;
    return reply;
  }

  /** Send one command line (CRLF added) and return the reply to it. */
  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    if (/[\r\n]/.test(line)) throw new TypeError('command(): one line, without CR or LF (use send() for raw bytes)');
    this.conn.line(line);
    return this.reply(timeoutMs);
  }

  /** `EHLO host`. */
  ehlo(host = 'client.example.test'): Promise<SmtpReply> {
    return this.command(`EHLO ${host}`);
  }

  /**
   * One message: EHLO first if the session has not greeted, then MAIL, a RCPT for each recipient,
   * DATA and the message (line ends made CRLF, dots stuffed, the final dot added). Stops at the
   * first step that is refused (a MAIL refusal, every RCPT refused, DATA not 354) and returns that
   * reply; refusals are results, not errors. `from` may be `''` (the null sender).
   */
  async sendMail(from: string, to: string | readonly string[], message: string | Buffer, options: SendMailOptions = {}): Promise<MailResult> {
    const recipients = typeof to === 'string' ? [to] : to;
    if (recipients.length === 0) throw new TypeError('sendMail(): at least one recipient');
    const replies: SmtpReply[] = [];
    const refused: { recipient: string; reply: SmtpReply }[] = [];
    const result = (step: MailResult['step'], reply: SmtpReply, queued?: QueuedMessage): MailResult => ({
      ...reply,
      step,
      accepted: step === 'message' && is2xx(reply),
      replies,
      refusedRecipients: refused,
      queued,
    });
    const send = async (line: string): Promise<SmtpReply | undefined> => {
      try {
        const reply = await this.command(line);
        replies.push(reply);
        return reply;
      } catch (err) {
        // The server hung up after the previous reply (a DISCONNECT result): that reply is the answer.
        if (err instanceof ConnectionClosedError && replies.length > 0) return undefined;
        throw err;
      }
    };
    const last = (): SmtpReply => replies[replies.length - 1]!;

    if (this.connection.hello === undefined) {
      const ehlo = await send(`EHLO ${options.helo ?? 'client.example.test'}`);
      if (ehlo === undefined || ehlo.code !== 250) return result('ehlo', ehlo ?? last());
    }
    const mail = await send(`MAIL FROM:${toPath(from)}${options.mailParams ? ' ' + options.mailParams : ''}`);
    if (mail === undefined) return result(replies.length > 1 ? 'ehlo' : 'mail', last());
    if (!is2xx(mail)) return result('mail', mail);
    let accepted = 0;
    for (const recipient of recipients) {
      const reply = await send(`RCPT TO:${toPath(recipient)}`);
      if (reply === undefined) return result('rcpt', last());
      if (is2xx(reply)) accepted++;
      else refused.push({ recipient, reply });
    }
    if (accepted === 0) return result('rcpt', last());
    const data = await send('DATA');
    if (data === undefined) return result('rcpt', last());
    if (data.code !== 354) return result('data', data);
    const before = this.host.queued.length;
    this.conn.send(Buffer.concat([toWire(message), Buffer.from('.\r\n')]));
    const final = await this.reply();
    replies.push(final);
    const queued = is2xx(final) && this.host.queued.length > before ? this.host.queued[this.host.queued.length - 1] : undefined;
    return result('message', final, queued);
  }

  /** QUIT, and wait for the session to end. Returns the reply to QUIT. */
  async quit(): Promise<SmtpReply> {
    const reply = await this.command('QUIT');
    await this.ended;
    return reply;
  }

  /** The client hangs up; resolves when the session has ended. */
  async hangUp(): Promise<void> {
    this.conn.hangUp();
    await this.ended;
  }
}
