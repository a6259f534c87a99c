/**
 * queue/smtp-forward: relay each accepted message to the next hop over SMTP (qpsmtpd's
 * `queue/smtp-forward`), with the shared SMTP client of the API (SmtpClient) on node:net/node:tls.
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
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN, MailRefusal, SmtpClient, SmtpLinkError, clipReplyText, describeReply, dialogueFailure, mailFromCommand, parseExtensions, rcptCommands, recipientRefusalText, refusedRecipients, replyRefusal } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, ServerReply, Transaction } from 'qpsmtpd';

/** XCLIENT commands are kept below this many characters (Postfix's line limit is 2048). */
const XCLIENT_LINE = 500;

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
    let hop: SmtpClient | undefined;
    try {
      this.log(LOGINFO, `forwarding to ${target}`);
      const options = { timeoutMs: this.timeoutMs, signal: this.signal, peer: 'the next hop' };
      hop = await SmtpClient.connect(() => netConnect({ host: this.host, port: this.port }), options);
      const reply = await this.dialogue(hop, tx);
      const qid = queueId(reply);
      this.log(LOGINFO, `${target} accepted the message: ${reply.code} ${reply.lines.join(' ')}`);
      return [OK, `Queued as ${qid}`];
    } catch (err) {
      const failure = dialogueFailure(err, this.signal, 'Next hop unavailable, try again later');
      this.log(failure.permanent ? LOGWARN : LOGERROR, `${target}: ${failure.reason}`);
      return [failure.permanent ? DENY : DENYSOFT, failure.text];
    } finally {
      hop?.quit();
    }
  }

  /** Everything after the connection is up; returns the reply to the final dot. */
  private async dialogue(hop: SmtpClient, tx: Transaction): Promise<ServerReply> {
    const greeting = await hop.read();
    if (greeting.code !== 220) throw new SmtpLinkError(`greeting ${describeReply(greeting)}`, '4.4.1');
    const me = this.config('me') ?? 'localhost';
    let caps = await hello(hop, me);
    if (this.starttls && caps.has('STARTTLS')) {
      const reply = await hop.command('STARTTLS');
      if (reply.code === 220) {
        const servername = isIP(this.host) === 0 ? this.host : undefined;
        await hop.startTls((socket) => tlsConnect({ socket, servername, rejectUnauthorized: false }));
        caps = await hello(hop, me);
      } else {
        // Opportunistic: the link is still usable, in plain text.
        this.log(LOGWARN, `STARTTLS refused (${describeReply(reply)}): going on without TLS`);
      }
    }
    if (this.xclient) caps = await this.sendXclient(hop, caps, me);

    // MAIL FROM with the parameters the original had, where the next hop understands them.
    const mailLine = mailFromCommand(tx, tx.recipients, caps);
    if (mailLine === undefined) throw new MailRefusal(true, '5.6.7 The next hop cannot take internationalized addresses (no SMTPUTF8)');
    // With PIPELINING, MAIL and every RCPT in one go; DATA waits for their replies (a refused
    // recipient must not be followed by a 354 we would have to break off).
    const envelope = await hop.sendEnvelope(mailLine, rcptCommands(tx.recipients), caps.has('PIPELINING'));
    if (envelope.mail.code !== 250) throw replyRefusal(envelope.mail, 'MAIL refused by the next hop');
    checkRecipients(tx.recipients, envelope.rcpts);

    const dataReply = await hop.command('DATA');
    if (dataReply.code !== 354) throw replyRefusal(dataReply, 'DATA refused by the next hop');
    await hop.sendMessage(tx.bodyStream());
    const final = await hop.read();
    if (final.code < 200 || final.code > 299) throw replyRefusal(final, 'message refused by the next hop');
    return final;
  }

  /** XCLIENT with the attributes the next hop asks for, then EHLO again. */
  private async sendXclient(hop: SmtpClient, caps: Map<string, string>, me: string): Promise<Map<string, string>> {
    const offered = caps.get('XCLIENT');
    if (offered === undefined) throw new MailRefusal(false, '4.3.5 Next hop does not offer XCLIENT, try again later');
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
      if (reply.code !== 220) throw new MailRefusal(false, `4.7.0 Next hop refused XCLIENT: ${reply.lines.join(' ')}`);
    }
    return hello(hop, conn.helloHost ?? me);
  }
}

/** EHLO, or HELO when EHLO is refused; the extensions offered (keyword to parameters). */
async function hello(hop: SmtpClient, name: string): Promise<Map<string, string>> {
  const ehlo = await hop.command(`EHLO ${name}`);
  if (ehlo.code === 250) return parseExtensions(ehlo);
  const helo = await hop.command(`HELO ${name}`);
  if (helo.code !== 250) throw new SmtpLinkError(`HELO: ${describeReply(helo)}`, '4.4.1');
  return new Map();
}

/** Per-recipient replies: any 4xx defers the message, else any 5xx refuses it (see the header). */
function checkRecipients(recipients: readonly Address[], replies: readonly ServerReply[]): void {
  const failed = refusedRecipients(recipients, replies);
  if (failed.length === 0) return;
  const temporary = failed.some(({ reply }) => reply.code >= 400 && reply.code < 500);
  const shown = failed.filter(({ reply }) => (temporary ? reply.code < 500 : true));
  throw new MailRefusal(!temporary, recipientRefusalText(shown, temporary ? '4.1.0' : '5.1.0'));
}

/** The next hop's queue id from its reply to the final dot (Postfix: `Ok: queued as ID`). */
function queueId(reply: ServerReply): string {
  const text = reply.lines.join(' ');
  const m = /queued as\s+([^\s;,)]+)/i.exec(text);
  const id = m?.[1] ?? text.trim().split(/\s+/).pop() ?? '';
  return clipReplyText(id === '' ? 'unknown' : id);
}

/** RFC 3461 xtext, as XCLIENT wants its values. */
function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d ? '+' + byte.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(byte);
  }
  return out;
}
