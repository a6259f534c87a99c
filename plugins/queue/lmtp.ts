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
import { Plugin, CONNECT_FAILURES, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN, MailRefusal, SmtpClient, SmtpLinkError, describeReply, dialogueFailure, mailFromCommand, parseExtensions, rcptCommands, recipientRefusalText, refusedRecipients, replyRefusal } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const MAX_REMEMBERED = 10_000;
/** Besides TCP's: a unix socket that is not there, or not ours to use. */
const LMTP_CONNECT_FAILURES = [...CONNECT_FAILURES, 'ENOENT', 'EACCES'];

/** What happened to one recipient. */
export interface LmtpResult {
  readonly recipient: string;
  readonly code: number;
  readonly text: string;
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
    const pending = tx.recipients.filter((_r, i) => !this.wasDelivered(keys[i]));
    const skipped = tx.recipients.length - pending.length;
    if (skipped > 0) this.log(LOGINFO, `${skipped} recipient(s) already got this message on an earlier try: skipping them`);
    if (pending.length === 0) return [OK, `Delivered to ${tx.recipients.length} recipient(s)`];

    let lmtp: SmtpClient | undefined;
    try {
      const target = this.target;
      const open = (): Socket => ('path' in target ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port }));
      lmtp = await SmtpClient.connect(open, { timeoutMs: this.timeoutMs, signal: this.signal, protocol: 'LMTP', peer: 'the LMTP server' });
      const results = await this.dialogue(lmtp, tx, pending);
      tx.notes['lmtp'] = results;
      return this.verdict(tx, pending, results, skipped, keys);
    } catch (err) {
      const failure = dialogueFailure(err, this.signal, 'Mail store unavailable, try again later', LMTP_CONNECT_FAILURES);
      this.log(failure.permanent ? LOGWARN : LOGERROR, `${where}: ${failure.reason}`);
      return [failure.permanent ? DENY : DENYSOFT, failure.text];
    } finally {
      lmtp?.quit();
    }
  }

  /** Greeting to the per-recipient replies after the final dot (one per accepted recipient). */
  private async dialogue(lmtp: SmtpClient, tx: Transaction, recipients: readonly Address[]): Promise<LmtpResult[]> {
    const greeting = await lmtp.read();
    if (greeting.code !== 220) throw new SmtpLinkError(`greeting ${describeReply(greeting)}`, '4.4.1');
    const lhlo = await lmtp.command(`LHLO ${this.config('me') ?? 'localhost'}`);
    if (lhlo.code !== 250) throw new SmtpLinkError(`LHLO: ${describeReply(lhlo)}`, '4.4.1');
    const caps = parseExtensions(lhlo);

    const mailLine = mailFromCommand(tx, recipients, caps);
    if (mailLine === undefined) throw new MailRefusal(true, '5.6.7 The mail store cannot take internationalized addresses (no SMTPUTF8)');
    const envelope = await lmtp.sendEnvelope(mailLine, rcptCommands(recipients), caps.has('PIPELINING'));
    if (envelope.mail.code !== 250) throw replyRefusal(envelope.mail, 'refused by the mail store');
    // Refusals at RCPT time: nothing delivered yet, the message is judged as a whole.
    const refused = refusedRecipients(recipients, envelope.rcpts);
    if (refused.length > 0) {
      const temporary = refused.filter(({ reply }) => reply.code < 500);
      const shown = temporary.length > 0 ? temporary : refused;
      throw new MailRefusal(temporary.length === 0, recipientRefusalText(shown, temporary.length > 0 ? '4.1.0' : '5.1.0'));
    }
    const data = await lmtp.command('DATA');
    if (data.code !== 354) throw replyRefusal(data, 'refused by the mail store');
    await lmtp.sendMessage(tx.bodyStream());
    const results: LmtpResult[] = [];
    for (const rcpt of recipients) {
      const reply = await lmtp.read();
      results.push({ recipient: rcpt.address, code: reply.code, text: reply.lines.join(' ') });
    }
    return results;
  }

  /** The answer for the client from the per-recipient results (see the header). */
  private verdict(tx: Transaction, pending: readonly Address[], results: readonly LmtpResult[], skipped: number, keys: readonly (string | undefined)[]): HookResult {
    const where = this.describeTarget();
    const delivered = pending.filter((_r, i) => results[i]!.code >= 200 && results[i]!.code < 300);
    const failed = pending.map((rcpt, i) => ({ rcpt, reply: { code: results[i]!.code, lines: [results[i]!.text] } })).filter(({ reply }) => reply.code < 200 || reply.code >= 300);
    for (const r of results) this.log(r.code < 300 ? LOGINFO : LOGWARN, `${where}: <${r.recipient}>: ${r.code} ${r.text}`);
    if (failed.length === 0) return [OK, `Delivered to ${skipped + delivered.length} recipient(s)`];

    const temporary = failed.filter(({ reply }) => reply.code < 500);
    if (temporary.length > 0) {
      if (delivered.length > 0) this.remember(tx, delivered, keys);
      const got = delivered.length + skipped;
      const prefix = got > 0 ? `delivered to ${got} of ${tx.recipients.length}; will take the rest on retry: ` : '';
      return [DENYSOFT, recipientRefusalText(temporary, '4.2.0', prefix)];
    }
    const got = [...(skipped > 0 ? [`${skipped} earlier`] : []), ...delivered.map((r) => String(r))];
    const prefix = got.length > 0 ? `delivered to ${got.join(', ')}; not to: ` : '';
    return [DENY, recipientRefusalText(failed, '5.2.0', prefix)];
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
