/**
 * queue/lmtp: deliver each accepted message to an LMTP server (RFC 2033) — Dovecot, Cyrus, or
 * Postfix's and Exim's LMTP listeners — which answers for every recipient separately after the
 * final dot. New here: qpsmtpd had no LMTP plugin.
 *
 *   queue/lmtp HOST PORT [timeout SECONDS] [remember HOURS]
 *   queue/lmtp unix:PATH [timeout SECONDS] [remember HOURS]
 *
 * HOST PORT  the LMTP server over TCP (LMTP has no standard port; Dovecot's is often 24). HOST may
 *            be a name, an IPv4 or an IPv6 address (`::1` or `[::1]`).
 * unix:PATH  the LMTP server's unix socket (Dovecot: /var/run/dovecot/lmtp). A relative PATH is
 *            relative to the folder that holds the config directory.
 * timeout    seconds to wait for each reply (default 60). The core's `plugin_timeout` (default
 *            30 s) bounds the whole hook too: raise it for this plugin if deliveries are slow.
 * remember   hours to remember the recipients a message already reached when the message had to
 *            be deferred for the others (default 72; 0 turns it off); see below.
 *
 * The dialogue: greeting, LHLO (our `me`), MAIL FROM with SIZE, BODY=8BITMIME and SMTPUTF8 where
 * the client sent them and the server offers them, one RCPT per recipient (in one write with
 * PIPELINING), DATA, the message (CRLF line ends, dots doubled at line starts), then one reply per
 * accepted recipient, QUIT.
 *
 * What the client gets (it got 250 for every recipient at RCPT time; now it can only hear about
 * the message as a whole):
 *   - Every recipient delivered: 250 `Delivered to N recipient(s)`.
 *   - Refusals at RCPT time (unknown user, ...): nothing is delivered yet, so as queue/smtp-forward:
 *     any 4xx defers the message (4xx), otherwise any 5xx refuses it (5xx) naming who and why.
 *   - Refusals after the final dot, nobody delivered: 4xx if any refusal was temporary, else 5xx.
 *   - Some delivered, some refused after the final dot (a full mailbox, a broken one): if any
 *     refusal was temporary, the message is deferred (4xx) and the recipients it reached are
 *     remembered (by sender, Message-ID and recipient, for `remember` hours), so that the client's
 *     retry goes only to the others and nobody gets it twice. If every refusal was permanent,
 *     the message is refused (5xx) with a text that says who got it and who did not
 *     (`delivered to <a@x>; <b@x>: 5.2.2 Quota exceeded`): the sender's bounce tells the truth,
 *     and no retry is provoked that could only fail again. The alternative — 250 and a silent
 *     loss for the refused — is never chosen; this plugin cannot send bounces itself.
 *   - The server down, silent, or breaking the protocol: 4xx (the client retries). A lost
 *     connection after the final dot may leave some recipients delivered: the retry may then
 *     deliver to them twice (nothing can tell which got it).
 * The memory is per process (with --workers N a retry may reach another worker) and only used for
 * messages with a Message-ID; it holds at most 10 000 recipients.
 *
 * tx.notes['lmtp'] holds the per-recipient results ({ recipient, code, text }) for later plugins.
 *
 * Config files: me (the LHLO name). Hooks: queue.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const MAX_REPLY_LINE = 8192;
const MAX_REPLY_LINES = 200;
const MAX_REMEMBERED = 10_000;

interface Reply {
  readonly code: number;
  readonly lines: readonly string[];
}

/** What happened to one recipient. */
export interface LmtpResult {
  readonly recipient: string;
  readonly code: number;
  readonly text: string;
}

class Outcome extends Error {
  constructor(
    readonly result: typeof DENY | typeof DENYSOFT,
    readonly text: string,
  ) {
    super(text);
  }
}

class LinkError extends Error {
  constructor(
    message: string,
    readonly enhanced: string,
  ) {
    super(message);
  }
}

type Target = { readonly host: string; readonly port: number } | { readonly path: string };

export default class Lmtp extends Plugin {
  private target: Target = { path: '' };
  private timeoutMs = 60_000;
  private rememberMs = 72 * 3600_000;
  /** Recipients a deferred message already reached: key to expiry (ms). Shared by all sessions. */
  private readonly delivered = new Map<string, number>();

  register(qp: PluginHost, ...args: string[]): void {
    const [first, ...rest] = args;
    if (first === undefined || first === '') throw new Error('no LMTP server: queue/lmtp HOST PORT | unix:PATH [timeout SECONDS] [remember HOURS]');
    if (first.startsWith('unix:')) {
      const path = first.slice(5);
      if (path === '') throw new Error('unix: needs a socket path');
      this.target = { path: resolve(dirname(qp.configDir), path) };
    } else {
      const host = first.startsWith('[') && first.endsWith(']') ? first.slice(1, -1) : first;
      if (isIP(host) === 0 && !/^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(host)) throw new Error(`"${first}" is not a host name or an IP address`);
      const port = rest.shift();
      if (port === undefined || !/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
        throw new Error('LMTP over TCP needs a PORT (there is no standard one): queue/lmtp HOST PORT');
      }
      this.target = { host, port: Number(port) };
    }
    while (rest.length > 0) {
      const key = rest.shift()!.toLowerCase();
      const value = rest.shift();
      if (key === 'loglevel') continue;
      if (value === undefined || !/^\d+(\.\d+)?$/.test(value)) throw new Error(`${key} needs a number`);
      if (key === 'timeout' && Number(value) > 0) this.timeoutMs = Number(value) * 1000;
      else if (key === 'remember') this.rememberMs = Number(value) * 3600_000;
      else throw new Error(`unknown argument "${key}" (known: timeout SECONDS, remember HOURS)`);
    }
  }

  private describeTarget(): string {
    return 'path' in this.target ? `unix:${this.target.path}` : `${this.target.host}:${this.target.port}`;
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const where = this.describeTarget();
    const keys = this.keysFor(tx);
    const todo = tx.recipients.filter((_r, i) => !this.wasDelivered(keys[i]));
    const skipped = tx.recipients.length - todo.length;
    if (skipped > 0) this.log(LOGINFO, `${skipped} recipient(s) already got this message on an earlier try: skipping them`);
    if (todo.length === 0) return [OK, `Delivered to ${tx.recipients.length} recipient(s)`];

    let lmtp: LmtpClient | undefined;
    try {
      lmtp = await LmtpClient.open(this.target, this.timeoutMs, this.signal);
      const results = await this.dialogue(lmtp, tx, todo);
      tx.notes['lmtp'] = results;
      return this.verdict(tx, todo, results, skipped, keys);
    } catch (err) {
      if (err instanceof Outcome) {
        this.log(err.result === DENY ? LOGWARN : LOGERROR, `${where}: ${err.text}`);
        return [err.result, err.text];
      }
      const link = err instanceof LinkError ? err : linkError(err, this.signal);
      this.log(LOGERROR, `${where}: ${link.message}`);
      return [DENYSOFT, `${link.enhanced} Mail store unavailable, try again later`];
    } finally {
      lmtp?.quit();
    }
  }

  /** Greeting to the per-recipient replies after the final dot (one per accepted recipient). */
  private async dialogue(lmtp: LmtpClient, tx: Transaction, recipients: readonly Address[]): Promise<LmtpResult[]> {
    const greeting = await lmtp.read();
    if (greeting.code !== 220) throw new LinkError(`greeting ${describe(greeting)}`, '4.4.1');
    const lhlo = await lmtp.command(`LHLO ${this.config('me') ?? 'localhost'}`);
    if (lhlo.code !== 250) throw new LinkError(`LHLO: ${describe(lhlo)}`, '4.4.1');
    const caps = new Set<string>();
    for (const line of lhlo.lines.slice(1)) caps.add(line.trim().split(/[ =]/)[0]!.toUpperCase());

    const sender = tx.sender;
    const params: string[] = [];
    if (caps.has('SIZE')) params.push(`SIZE=${tx.header.toBuffer().length + 2 + tx.bodyLength}`);
    const body = tx.mailParams['body'];
    if (typeof body === 'string' && body.toUpperCase() === '8BITMIME' && caps.has('8BITMIME')) params.push('BODY=8BITMIME');
    const international = (sender?.isInternational ?? false) || recipients.some((r) => r.isInternational);
    if (tx.mailParams['smtputf8'] !== undefined || international) {
      if (caps.has('SMTPUTF8')) params.push('SMTPUTF8');
      else if (international) throw new Outcome(DENY, '5.6.7 The mail store cannot take internationalized addresses (no SMTPUTF8)');
    }
    const mailLine = `MAIL FROM:${sender === undefined ? '<>' : String(sender)}${params.map((p) => ' ' + p).join('')}`;
    const rcptLines = recipients.map((r) => `RCPT TO:${String(r)}`);
    let mailReply: Reply;
    const rcptReplies: Reply[] = [];
    if (caps.has('PIPELINING')) {
      await lmtp.send([mailLine, ...rcptLines].map((l) => l + '\r\n').join(''));
      mailReply = await lmtp.read();
      for (let i = 0; i < rcptLines.length; i++) rcptReplies.push(await lmtp.read());
    } else {
      mailReply = await lmtp.command(mailLine);
      if (mailReply.code === 250) for (const line of rcptLines) rcptReplies.push(await lmtp.command(line));
    }
    if (mailReply.code !== 250) throw refusal(mailReply);
    // Refusals at RCPT time: nothing delivered yet, the message is judged as a whole.
    const refused = recipients.map((r, i) => ({ rcpt: r, reply: rcptReplies[i]! })).filter(({ reply }) => reply.code !== 250 && reply.code !== 251);
    if (refused.length > 0) {
      const temporary = refused.filter(({ reply }) => reply.code < 500);
      const shown = temporary.length > 0 ? temporary : refused;
      const enhanced = enhancedOf(shown[0]!.reply) ?? (temporary.length > 0 ? '4.1.0' : '5.1.0');
      throw new Outcome(temporary.length > 0 ? DENYSOFT : DENY, clip(`${enhanced} ${listRefused(shown.map(({ rcpt, reply }) => ({ rcpt, reply })))}`));
    }
    const data = await lmtp.command('DATA');
    if (data.code !== 354) throw refusal(data);
    await lmtp.sendMessage(tx.bodyStream());
    const results: LmtpResult[] = [];
    for (const rcpt of recipients) {
      const reply = await lmtp.read();
      results.push({ recipient: rcpt.address, code: reply.code, text: reply.lines.join(' ') });
    }
    return results;
  }

  /** The answer for the client from the per-recipient results (see the header). */
  private verdict(tx: Transaction, todo: readonly Address[], results: readonly LmtpResult[], skipped: number, keys: readonly (string | undefined)[]): HookResult {
    const where = this.describeTarget();
    const delivered = todo.filter((_r, i) => results[i]!.code >= 200 && results[i]!.code < 300);
    const failed = todo.map((rcpt, i) => ({ rcpt, reply: { code: results[i]!.code, lines: [results[i]!.text] } })).filter(({ reply }) => reply.code < 200 || reply.code >= 300);
    for (const r of results) this.log(r.code < 300 ? LOGINFO : LOGWARN, `${where}: <${r.recipient}>: ${r.code} ${r.text}`);
    if (failed.length === 0) return [OK, `Delivered to ${skipped + delivered.length} recipient(s)`];

    const temporary = failed.filter(({ reply }) => reply.code < 500);
    if (temporary.length > 0) {
      if (delivered.length > 0) this.remember(tx, delivered, keys);
      const enhanced = enhancedOf(temporary[0]!.reply) ?? '4.2.0';
      const got = delivered.length + skipped;
      const prefix = got > 0 ? `delivered to ${got} of ${tx.recipients.length}; will take the rest on retry: ` : '';
      return [DENYSOFT, clip(`${enhanced} ${prefix}${listRefused(temporary)}`)];
    }
    const enhanced = enhancedOf(failed[0]!.reply) ?? '5.2.0';
    const got = [...(skipped > 0 ? [`${skipped} earlier`] : []), ...delivered.map((r) => String(r))];
    const prefix = got.length > 0 ? `delivered to ${got.join(', ')}; not to: ` : '';
    return [DENY, clip(`${enhanced} ${prefix}${listRefused(failed)}`)];
  }

  /** Per recipient: the memory key, or undefined when the message has no Message-ID. */
  private keysFor(tx: Transaction): (string | undefined)[] {
    const messageId = tx.header.get('Message-ID')?.trim();
    if (this.rememberMs <= 0 || messageId === undefined || messageId === '') return tx.recipients.map(() => undefined);
    const sender = tx.sender?.address ?? '';
    return tx.recipients.map((r) => `${sender}\0${messageId}\0${r.user}@${r.host.toLowerCase()}`);
  }

  private wasDelivered(key: string | undefined): boolean {
    if (key === undefined) return false;
    const expiry = this.delivered.get(key);
    if (expiry === undefined) return false;
    if (expiry < Date.now()) {
      this.delivered.delete(key);
      return false;
    }
    return true;
  }

  private remember(tx: Transaction, delivered: readonly Address[], keys: readonly (string | undefined)[]): void {
    const expiry = Date.now() + this.rememberMs;
    for (const rcpt of delivered) {
      const key = keys[tx.recipients.indexOf(rcpt)];
      if (key === undefined) continue;
      this.delivered.delete(key);
      this.delivered.set(key, expiry);
    }
    // Oldest first in insertion order: drop the expired, then the oldest past the cap.
    const now = Date.now();
    for (const [key, at] of this.delivered) {
      if (at >= now && this.delivered.size <= MAX_REMEMBERED) break;
      this.delivered.delete(key);
    }
  }
}

function listRefused(failed: readonly { rcpt: Address; reply: Reply }[]): string {
  const one = ({ rcpt, reply }: { rcpt: Address; reply: Reply }): string => {
    const text = stripEnhanced(reply.lines.join(' '));
    return text.includes(rcpt.address) ? text : `${String(rcpt)}: ${text}`;
  };
  return failed.slice(0, 5).map(one).join('; ') + (failed.length > 5 ? `; and ${failed.length - 5} more` : '');
}

function refusal(reply: Reply): Outcome {
  const permanent = reply.code >= 500 && reply.code <= 599;
  const enhanced = enhancedOf(reply) ?? (permanent ? '5.0.0' : '4.0.0');
  return new Outcome(permanent ? DENY : DENYSOFT, clip(`${enhanced} ${stripEnhanced(reply.lines.join(' ')) || 'refused by the mail store'}`));
}

function enhancedOf(reply: Reply): string | undefined {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/.exec(reply.lines[0] ?? '');
  if (!m || Number(m[1]) !== Math.floor(reply.code / 100)) return undefined;
  return `${m[1]}.${m[2]}.${m[3]}`;
}

function stripEnhanced(text: string): string {
  return text.replace(/^[245]\.\d{1,3}\.\d{1,3}\s*/, '').trim();
}

function clip(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 400 ? clean.slice(0, 397) + '...' : clean;
}

function describe(reply: Reply): string {
  return `${reply.code} ${reply.lines.join(' ')}`.slice(0, 300);
}

function linkError(err: unknown, signal: AbortSignal): LinkError {
  if (signal.aborted) return new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2');
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new LinkError(`cannot connect: ${message}`, '4.4.1');
  }
  return new LinkError(message, '4.4.2');
}

/** The LMTP client side of one connection. */
class LmtpClient {
  private pending: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private replies: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private drainWaiter: ((err: Error) => void) | undefined;
  private failure: Error | undefined;
  private readonly onAbort = (): void => this.fail(new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2'));

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new LinkError('the LMTP server closed the connection', '4.4.2')));
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  static async open(target: Target, timeoutMs: number, signal: AbortSignal): Promise<LmtpClient> {
    signal.throwIfAborted();
    const socket = 'path' in target ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new LinkError(`no connection within ${timeoutMs / 1000} s`, '4.4.1')), timeoutMs);
      const onAbort = (): void => done(new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2'));
      const onConnect = (): void => done();
      const onError = (err: Error): void => done(err);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.off('connect', onConnect);
        socket.off('error', onError);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve();
      };
      socket.once('connect', onConnect);
      socket.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return new LmtpClient(socket, timeoutMs, signal);
  }

  private received(chunk: Buffer): void {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    for (let nl = data.indexOf(LF); nl !== -1; nl = data.indexOf(LF)) {
      const end = nl > 0 && data[nl - 1] === CR ? nl - 1 : nl;
      this.line(data.subarray(0, end).toString('utf8'));
      data = data.subarray(nl + 1);
      if (this.failure) return;
    }
    if (data.length > MAX_REPLY_LINE) return this.fail(new LinkError('reply line too long', '4.4.2'));
    this.pending = Buffer.from(data);
  }

  private line(text: string): void {
    const m = /^(\d{3})([ -]?)(.*)$/s.exec(text);
    if (!m || text.length > MAX_REPLY_LINE) return this.fail(new LinkError(`not an LMTP reply: ${text.slice(0, 100)}`, '4.4.2'));
    this.lines.push(m[3]!);
    if (m[2] === '-') {
      if (this.lines.length > MAX_REPLY_LINES) this.fail(new LinkError('reply with too many lines', '4.4.2'));
      return;
    }
    const reply: Reply = { code: Number(m[1]), lines: this.lines };
    this.lines = [];
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(reply);
    } else this.replies.push(reply);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.waiter?.reject(err);
    this.waiter = undefined;
    this.drainWaiter?.(err);
    this.drainWaiter = undefined;
  }

  read(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new LinkError(`no reply within ${this.timeoutMs / 1000} s`, '4.4.2')), this.timeoutMs);
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

  async command(line: string): Promise<Reply> {
    await this.send(line + '\r\n');
    return this.read();
  }

  /** The message with CRLF line ends and dots doubled at line starts, then the final dot. */
  async sendMessage(message: Readable): Promise<void> {
    let lineStart = true;
    let heldCr = false;
    try {
      for await (const chunk of message) {
        this.signal.throwIfAborted();
        const input = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
        const out = Buffer.allocUnsafe(input.length * 2 + 2);
        let n = 0;
        for (let i = 0; i < input.length; i++) {
          const byte = input[i]!;
          if (heldCr) {
            heldCr = false;
            out[n++] = CR;
            out[n++] = LF;
            lineStart = true;
            if (byte === LF) continue;
          }
          if (byte === CR) {
            heldCr = true;
            continue;
          }
          if (byte === LF) {
            out[n++] = CR;
            out[n++] = LF;
            lineStart = true;
            continue;
          }
          if (lineStart && byte === DOT) out[n++] = DOT;
          out[n++] = byte;
          lineStart = false;
        }
        if (n > 0) await this.send(out.subarray(0, n));
      }
    } catch (err) {
      message.destroy();
      throw err;
    }
    await this.send((heldCr || !lineStart ? '\r\n' : '') + '.\r\n');
  }

  quit(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    const socket = this.socket;
    if (this.failure || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.failure = new LinkError('closed', '4.4.2');
    const timer = setTimeout(() => socket.destroy(), 5000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.on('data', (chunk: Buffer) => {
      if (/^221/m.test(chunk.toString('latin1'))) socket.destroy();
    });
    socket.end('QUIT\r\n');
  }
}
