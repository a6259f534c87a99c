/**
 * queue/smtp-forward: relay each accepted message to the next hop over SMTP (qpsmtpd's
 * `queue/smtp-forward`), with a client written here on node:net/node:tls.
 *
 *   queue/smtp-forward HOST [PORT] [xclient] [starttls] [timeout SECONDS]
 *
 * HOST      the next hop: a host name, an IPv4 address or an IPv6 address (`::1` or `[::1]`).
 * PORT      default 25.
 * xclient   pass the original client to the next hop with Postfix's XCLIENT (NAME, REVERSE_NAME,
 *           ADDR, PORT, HELO, PROTO, LOGIN, DESTADDR, DESTPORT: those the next hop advertises), so
 *           its logs, Received header and policies see the real client. The next hop must allow
 *           us (Postfix: `smtpd_authorized_xclient_hosts`); if it does not advertise XCLIENT, or
 *           refuses it, the message is deferred (4xx) rather than sent as if we were the client.
 * starttls  use STARTTLS when the next hop offers it (opportunistic, as Postfix's
 *           `smtp_tls_security_level = may`: the certificate is not checked, and a next hop that
 *           answers STARTTLS with an error gets the message in plain text; a failed handshake
 *           gives 4xx).
 * timeout   seconds to wait for each reply of the next hop (default 60; the greeting, each
 *           command, the reply to the final dot). The core's `plugin_timeout` (default 30 s) bounds
 *           the whole hook as well: raise it (`plugin_timeout queue/smtp-forward 300`) for slow next
 *           hops or large messages.
 *
 * The dialogue: greeting, EHLO (HELO when EHLO is refused), STARTTLS and EHLO again if asked for,
 * XCLIENT and EHLO again if asked for, then MAIL FROM with SIZE (when offered), BODY=8BITMIME
 * (when the client sent it and the next hop offers 8BITMIME) and SMTPUTF8 (when the client sent
 * it and the next hop offers it), one RCPT per recipient (MAIL and the RCPTs in one write when the
 * next hop offers PIPELINING), DATA, the message, QUIT. The message goes out as the core stored it
 * (the header block with our Received line, the body), with CRLF line ends (a bare CR or LF a
 * plugin may have added becomes CRLF), every line that starts with a dot doubled, and a CRLF
 * before the final dot if the message did not end with one.
 *
 * What the client gets:
 *   250 `Queued as QUEUE-ID` (the id from the next hop's reply) only after the next hop's 2xx to
 *       the final dot: the next hop has the message.
 *   4xx (DENYSOFT) when the next hop is unreachable, refuses the connection or the greeting,
 *       does not answer in time, breaks the protocol, answers a command with 4xx, or refuses
 *       XCLIENT/is without it while `xclient` is set. The client keeps the message and retries.
 *   5xx (DENY) when the next hop refuses the message as a whole with 5xx (MAIL, DATA, or the
 *       reply to the final dot), or the envelope needs SMTPUTF8 and the next hop lacks it.
 *   The next hop's enhanced status code and text are passed on.
 *
 * Recipients the next hop refuses at RCPT time (our client already got 250 for them): nothing has
 * been sent yet, and the client can only be told about the message as a whole. If any recipient
 * gets a 4xx the message is deferred (4xx: all are tried again later). Otherwise, if any gets a 5xx,
 * the whole message is refused with 5xx naming the refused recipients and the next hop's reason:
 * the sending MTA bounces it to its sender, who learns which address failed; no recipient gets it
 * twice and none silently loses it. (qpsmtpd's plugin answered 451 on any failure; a permanent
 * refusal would then be retried for days.) Recipient checks belong before DATA: a `rcpt` plugin
 * that asks the next hop spares everyone this.
 *
 * A lost connection or a time-out after the final dot was sent gives 4xx: should the next hop
 * have kept the message after all, the retry delivers it twice (RFC 1047); nothing can tell.
 *
 * Config files: me (our EHLO name). Hooks: queue.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
/** Longest reply line we accept from the next hop, and most lines in one reply. */
const MAX_REPLY_LINE = 8192;
const MAX_REPLY_LINES = 200;
/** XCLIENT commands are kept below this many characters (Postfix's line limit is 2048). */
const XCLIENT_LINE = 500;

/** One reply of the next hop. */
interface Reply {
  readonly code: number;
  /** Text of each line, without the code and separator. */
  readonly lines: readonly string[];
}

/** Ends the dialogue with a result for the client. */
class Outcome extends Error {
  constructor(
    readonly result: typeof DENY | typeof DENYSOFT,
    readonly text: string,
  ) {
    super(text);
  }
}

/** The connection failed, timed out or broke the protocol: always a 4xx. */
class LinkError extends Error {
  constructor(
    message: string,
    readonly enhanced: string,
  ) {
    super(message);
  }
}

export default class SmtpForward extends Plugin {
  private host = '';
  private port = 25;
  private xclient = false;
  private starttls = false;
  private timeoutMs = 60_000;

  register(_qp: PluginHost, ...args: string[]): void {
    const [hostArg, ...rest] = args;
    if (hostArg === undefined || hostArg === '') throw new Error('no next hop: queue/smtp-forward HOST [PORT] [xclient] [starttls] [timeout SECONDS]');
    const host = hostArg.startsWith('[') && hostArg.endsWith(']') ? hostArg.slice(1, -1) : hostArg;
    if (isIP(host) === 0 && !/^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(host)) {
      throw new Error(`"${hostArg}" is not a host name or an IP address`);
    }
    this.host = host;
    if (rest[0] !== undefined && /^\d+$/.test(rest[0])) {
      this.port = Number(rest.shift());
      if (this.port < 1 || this.port > 65535) throw new Error(`port ${this.port} is out of range`);
    }
    while (rest.length > 0) {
      const flag = rest.shift()!.toLowerCase();
      if (flag === 'xclient') this.xclient = true;
      else if (flag === 'starttls') this.starttls = true;
      else if (flag === 'timeout') {
        const value = rest.shift();
        if (value === undefined || !/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) throw new Error('timeout needs a number of seconds');
        this.timeoutMs = Number(value) * 1000;
      } else if (flag === 'loglevel') rest.shift();
      else throw new Error(`unknown argument "${flag}" (known: PORT, xclient, starttls, timeout SECONDS)`);
    }
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const target = `${this.host}:${this.port}`;
    let hop: NextHop | undefined;
    try {
      this.log(LOGINFO, `forwarding to ${target}`);
      hop = await NextHop.open(this.host, this.port, this.timeoutMs, this.signal);
      const reply = await this.dialogue(hop, tx);
      const qid = queueId(reply);
      this.log(LOGINFO, `${target} accepted the message: ${reply.code} ${reply.lines.join(' ')}`);
      return [OK, `Queued as ${qid}`];
    } catch (err) {
      if (err instanceof Outcome) {
        this.log(err.result === DENY ? LOGWARN : LOGERROR, `${target}: ${err.text}`);
        return [err.result, err.text];
      }
      const link = err instanceof LinkError ? err : linkError(err, this.signal);
      this.log(LOGERROR, `${target}: ${link.message}`);
      return [DENYSOFT, `${link.enhanced} Next hop unavailable, try again later`];
    } finally {
      hop?.quit();
    }
  }

  /** Everything after the connection is up; returns the reply to the final dot. */
  private async dialogue(hop: NextHop, tx: Transaction): Promise<Reply> {
    const greeting = await hop.read();
    if (greeting.code !== 220) throw new LinkError(`greeting ${describe(greeting)}`, '4.4.1');
    const me = this.config('me') ?? 'localhost';
    let caps = await hello(hop, me);
    if (this.starttls && caps.has('STARTTLS')) {
      const reply = await hop.command('STARTTLS');
      if (reply.code === 220) {
        await hop.startTls(this.host);
        caps = await hello(hop, me);
      } else {
        // Opportunistic: the link is still usable, in plain text.
        this.log(LOGWARN, `STARTTLS refused (${describe(reply)}): going on without TLS`);
      }
    }
    if (this.xclient) caps = await this.sendXclient(hop, caps, me);

    // MAIL FROM with the parameters the original had, where the next hop understands them.
    const sender = tx.sender;
    const params: string[] = [];
    if (caps.has('SIZE')) params.push(`SIZE=${tx.header.toBuffer().length + 2 + tx.bodyLength}`);
    const body = tx.mailParams['body'];
    if (typeof body === 'string' && body.toUpperCase() === '8BITMIME' && caps.has('8BITMIME')) params.push('BODY=8BITMIME');
    const international = (sender?.isInternational ?? false) || tx.recipients.some((r) => r.isInternational);
    if (tx.mailParams['smtputf8'] !== undefined || international) {
      if (caps.has('SMTPUTF8')) params.push('SMTPUTF8');
      else if (international) throw new Outcome(DENY, '5.6.7 The next hop cannot take internationalized addresses (no SMTPUTF8)');
    }
    const mailLine = `MAIL FROM:${sender === undefined ? '<>' : String(sender)}${params.map((p) => ' ' + p).join('')}`;
    const rcptLines = tx.recipients.map((r) => `RCPT TO:${String(r)}`);

    let mailReply: Reply;
    const rcptReplies: Reply[] = [];
    if (caps.has('PIPELINING')) {
      // MAIL and every RCPT in one go; DATA waits for their replies (a refused recipient must
      // not be followed by a 354 we would have to break off).
      await hop.send([mailLine, ...rcptLines].map((l) => l + '\r\n').join(''));
      mailReply = await hop.read();
      for (let i = 0; i < rcptLines.length; i++) rcptReplies.push(await hop.read());
    } else {
      mailReply = await hop.command(mailLine);
      if (mailReply.code === 250) for (const line of rcptLines) rcptReplies.push(await hop.command(line));
    }
    if (mailReply.code !== 250) throw refusal('MAIL', mailReply);
    checkRecipients(tx.recipients, rcptReplies);

    const dataReply = await hop.command('DATA');
    if (dataReply.code !== 354) throw refusal('DATA', dataReply);
    await hop.sendMessage(tx.bodyStream());
    const final = await hop.read();
    if (final.code < 200 || final.code > 299) throw refusal('message', final);
    return final;
  }

  /** XCLIENT with the attributes the next hop asks for, then EHLO again. */
  private async sendXclient(hop: NextHop, caps: Map<string, string>, me: string): Promise<Map<string, string>> {
    const offered = caps.get('XCLIENT');
    if (offered === undefined) throw new Outcome(DENYSOFT, '4.3.5 Next hop does not offer XCLIENT, try again later');
    const wanted = new Set(offered.toUpperCase().split(/\s+/).filter((s) => s !== ''));
    const conn = this.connection;
    const name = conn.remoteHost === '' || conn.remoteHost.startsWith('[') ? '[UNAVAILABLE]' : conn.remoteHost;
    const ip = conn.remoteIp;
    const values: [string, string][] = [
      ['NAME', name],
      ['REVERSE_NAME', name],
      ['ADDR', isIP(ip) === 6 ? `IPV6:${ip}` : ip],
      ['PORT', String(conn.remotePort)],
      ['HELO', conn.helloHost ?? '[UNAVAILABLE]'],
      ['PROTO', conn.hello === 'ehlo' ? 'ESMTP' : 'SMTP'],
      ['DESTADDR', isIP(conn.localIp) === 6 ? `IPV6:${conn.localIp}` : conn.localIp],
      ['DESTPORT', String(conn.localPort)],
    ];
    if (conn.authUser !== undefined) values.push(['LOGIN', conn.authUser]);
    const items = values.filter(([key]) => wanted.has(key)).map(([key, value]) => `${key}=${xtext(value)}`);
    // Several XCLIENT commands when the attributes are long; each is answered with a new greeting.
    while (items.length > 0) {
      let line = 'XCLIENT';
      while (items.length > 0 && (line === 'XCLIENT' || line.length + 1 + items[0]!.length <= XCLIENT_LINE)) line += ' ' + items.shift()!;
      const reply = await hop.command(line);
      if (reply.code !== 220) throw new Outcome(DENYSOFT, `4.7.0 Next hop refused XCLIENT: ${reply.lines.join(' ')}`);
    }
    return hello(hop, conn.helloHost ?? me);
  }
}

/** EHLO, or HELO when EHLO is refused; the extensions offered (keyword to parameters). */
async function hello(hop: NextHop, name: string): Promise<Map<string, string>> {
  const caps = new Map<string, string>();
  const ehlo = await hop.command(`EHLO ${name}`);
  if (ehlo.code === 250) {
    for (const line of ehlo.lines.slice(1)) {
      const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
      if (m) caps.set(m[1]!.toUpperCase(), m[2] ?? '');
    }
    return caps;
  }
  const helo = await hop.command(`HELO ${name}`);
  if (helo.code !== 250) throw new LinkError(`HELO: ${describe(helo)}`, '4.4.1');
  return caps;
}

/** Per-recipient replies: any 4xx defers the message, else any 5xx refuses it (see the header). */
function checkRecipients(recipients: readonly Address[], replies: readonly Reply[]): void {
  const failed = recipients.map((r, i) => ({ rcpt: r, reply: replies[i]! })).filter(({ reply }) => reply.code !== 250 && reply.code !== 251);
  if (failed.length === 0) return;
  const temporary = failed.some(({ reply }) => reply.code >= 400 && reply.code < 500);
  const describeOne = ({ rcpt, reply }: { rcpt: Address; reply: Reply }): string => {
    const text = stripEnhanced(reply.lines.join(' '));
    return text.includes(rcpt.address) ? text : `${String(rcpt)}: ${text}`;
  };
  const shown = failed.filter(({ reply }) => (temporary ? reply.code < 500 : true));
  const enhanced = enhancedOf(shown[0]!.reply) ?? (temporary ? '4.1.0' : '5.1.0');
  const text = `${enhanced} ${shown.slice(0, 5).map(describeOne).join('; ')}${shown.length > 5 ? `; and ${shown.length - 5} more` : ''}`;
  throw new Outcome(temporary ? DENYSOFT : DENY, clip(text));
}

/** A refusal of a whole-message step: 5xx is DENY, anything else DENYSOFT. */
function refusal(step: string, reply: Reply): Outcome {
  const permanent = reply.code >= 500 && reply.code <= 599;
  const enhanced = enhancedOf(reply) ?? (permanent ? '5.0.0' : '4.0.0');
  const text = stripEnhanced(reply.lines.join(' ')) || `${step} refused by the next hop`;
  return new Outcome(permanent ? DENY : DENYSOFT, clip(`${enhanced} ${text}`));
}

function enhancedOf(reply: Reply): string | undefined {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/.exec(reply.lines[0] ?? '');
  if (!m || Number(m[1]) !== Math.floor(reply.code / 100)) return undefined;
  return `${m[1]}.${m[2]}.${m[3]}`;
}

function stripEnhanced(text: string): string {
  return text.replace(/^[245]\.\d{1,3}\.\d{1,3}\s*/, '').trim();
}

/** The text for our client: printable, one line, not too long. */
function clip(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 400 ? clean.slice(0, 397) + '...' : clean;
}

function describe(reply: Reply): string {
  return `${reply.code} ${reply.lines.join(' ')}`.slice(0, 300);
}

/** The next hop's queue id from its reply to the final dot (Postfix: `Ok: queued as ID`). */
function queueId(reply: Reply): string {
  const text = reply.lines.join(' ');
  const m = /queued as\s+([^\s;,)]+)/i.exec(text);
  const id = m?.[1] ?? text.trim().split(/\s+/).pop() ?? '';
  return clip(id === '' ? 'unknown' : id);
}

/** RFC 3461 xtext, as XCLIENT wants its values. */
function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d ? '+' + byte.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(byte);
  }
  return out;
}

function linkError(err: unknown, signal: AbortSignal): LinkError {
  if (signal.aborted) return new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2');
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new LinkError(`cannot connect: ${message}`, '4.4.1');
  }
  return new LinkError(message, '4.4.2');
}

/** The SMTP client side of one connection: replies in order, commands, the message. */
class NextHop {
  private socket: Socket | TLSSocket;
  private pending: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private replies: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private drainWaiter: ((err: Error) => void) | undefined;
  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onError = (err: Error): void => this.fail(err);
  private readonly onClose = (): void => this.fail(new LinkError('the next hop closed the connection', '4.4.2'));
  private readonly onAbort = (): void => this.fail(new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2'));

  private constructor(
    socket: Socket,
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {
    this.socket = socket;
    this.attach();
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  static async open(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<NextHop> {
    signal.throwIfAborted();
    const socket = netConnect({ host, port });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new LinkError(`no connection within ${timeoutMs / 1000} s`, '4.4.1')), timeoutMs);
      const onAbort = (): void => done(new LinkError('the hook ran out of time (plugin_timeout)', '4.4.2'));
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
      const onConnect = (): void => done();
      const onError = (err: Error): void => done(err);
      socket.once('connect', onConnect);
      socket.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return new NextHop(socket, timeoutMs, signal);
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
    if (!m || text.length > MAX_REPLY_LINE) return this.fail(new LinkError(`not an SMTP reply: ${text.slice(0, 100)}`, '4.4.2'));
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

  /** The next reply, within the time limit. */
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

  async command(line: string): Promise<Reply> {
    await this.send(line + '\r\n');
    return this.read();
  }

  /** The message: CRLF line ends, dot-stuffed, then the final dot. */
  async sendMessage(message: Readable): Promise<void> {
    const encoder = new DataEncoder();
    try {
      for await (const chunk of message) {
        this.signal.throwIfAborted();
        const out = encoder.encode(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer));
        if (out.length > 0) await this.send(out);
      }
    } catch (err) {
      message.destroy();
      throw err;
    }
    await this.send(encoder.end());
  }

  /** Replace the plain socket with TLS on top of it (after the 220 to STARTTLS). */
  async startTls(servername: string): Promise<void> {
    this.detach();
    const plain = this.socket;
    const secure = tlsConnect({ socket: plain, servername: isIP(servername) === 0 ? servername : undefined, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new LinkError('TLS handshake timed out', '4.7.0')), this.timeoutMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (err) => {
        clearTimeout(timer);
        reject(new LinkError(`TLS handshake failed: ${err.message}`, '4.7.0'));
      });
    });
    this.socket = secure;
    this.pending = Buffer.alloc(0);
    this.attach();
  }

  /** QUIT without waiting long for the 221, then close. */
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
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (/^221/m.test(chunk.toString('latin1'))) socket.destroy();
    });
    socket.end('QUIT\r\n');
  }
}

/** Stateful CRLF normalisation and dot-stuffing of the message, chunk by chunk. */
export class DataEncoder {
  private lineStart = true;
  private heldCr = false;

  encode(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.heldCr) {
        this.heldCr = false;
        out[n++] = CR;
        out[n++] = LF;
        this.lineStart = true;
        if (byte === LF) continue;
      }
      if (byte === CR) {
        this.heldCr = true;
        continue;
      }
      if (byte === LF) {
        out[n++] = CR;
        out[n++] = LF;
        this.lineStart = true;
        continue;
      }
      if (this.lineStart && byte === DOT) out[n++] = DOT;
      out[n++] = byte;
      this.lineStart = false;
    }
    return out.subarray(0, n);
  }

  /** What closes the message: a pending line end, a CRLF if the last line had none, the dot. */
  end(): Buffer {
    let tail = '';
    if (this.heldCr) {
      this.heldCr = false;
      tail += '\r\n';
      this.lineStart = true;
    }
    if (!this.lineStart) tail += '\r\n';
    this.lineStart = true;
    return Buffer.from(tail + '.\r\n', 'latin1');
  }
}
