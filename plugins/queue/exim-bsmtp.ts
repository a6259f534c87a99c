/**
 * queue/exim-bsmtp: hand each accepted message to Exim as batched SMTP, `exim -bS` (qpsmtpd's
 * `queue/exim-bsmtp`). Exim then owns the message: routing, delivery and any bounce are its job.
 *
 *   queue/exim-bsmtp [EXIM [ARG ...]]
 *   queue/exim-bsmtp exim_path EXIM            (qpsmtpd's form)
 *
 * EXIM   the Exim binary (run with `-bS` added after the ARGs; no shell). Default: the first of
 *        /usr/sbin/rsmtp (qpsmtpd's default), /usr/sbin/exim4, /usr/sbin/exim that exists.
 * ARG    more arguments for Exim before -bS, such as `-C /etc/exim4/qpsmtpd.conf`.
 *
 * The user qpsmtpd runs as must be one of Exim's `trusted_users` (root always is); otherwise Exim
 * still takes the mail but replaces the envelope sender with that user.
 *
 * The batch written to Exim's standard input: `HELO <me>`, `MAIL FROM:<sender>`, one `RCPT
 * TO:<recipient>` per recipient, `DATA`, the message (our Received line first) with LF line ends
 * and every line that starts with a dot doubled, `.`, `QUIT`. Exim's batch mode takes no ESMTP
 * parameters (SIZE, BODY, SMTPUTF8); it accepts 8-bit text and UTF-8 addresses as they are.
 *
 * Exim prints nothing when all is well; on an error it prints the SMTP reply it would have given
 * (`550 ...`), abandons the batch and exits non-zero. What the client gets:
 *   250 `Queued!` when Exim exits 0 without an error reply: the message is in its spool.
 *   5xx (DENY) when Exim answered 5xx (an acl_not_smtp `deny`, message_size_limit, ...), with its
 *       text. (qpsmtpd's plugin gave a 5xx for Exim's 4xx too.)
 *   4xx (DENYSOFT) when Exim answered 4xx, exited non-zero without a reply (a spool it cannot
 *       write, a configuration error), could not be started, or ran past the time limit (300 s,
 *       or the hook's plugin_timeout if shorter: it is then killed, and nothing is spooled).
 * Exim's standard error is logged.
 *
 * Config files: me (the HELO name). Hooks: queue.
 */
import { existsSync } from 'node:fs';
import { Plugin, DataEncoder, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN, clipReplyText as clip, convertStream, runProgram } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULTS = ['/usr/sbin/rsmtp', '/usr/sbin/exim4', '/usr/sbin/exim'];
const TIME_LIMIT_MS = 300_000;

export default class EximBsmtp extends Plugin {
  private exim = '';
  private eximArgs: string[] = [];

  register(_qp: PluginHost, ...args: string[]): void {
    const rest = [...args];
    const at = rest.indexOf('loglevel');
    if (at !== -1) rest.splice(at, 2);
    if (rest[0] === 'exim_path') {
      rest.shift();
      const path = rest.shift();
      if (path === undefined) throw new Error('exim_path needs a path');
      this.exim = path;
      if (rest.length > 0) this.log(LOGWARN, `ignoring additional arguments: ${rest.join(' ')}`);
    } else if (rest[0] !== undefined) {
      this.exim = rest.shift()!;
      this.eximArgs = rest;
    } else {
      this.exim = DEFAULTS.find((p) => existsSync(p)) ?? DEFAULTS[0]!;
    }
    if (!this.exim.startsWith('/')) throw new Error(`"${this.exim}" is not an absolute path`);
    if (!existsSync(this.exim)) this.log(LOGERROR, `could not find Exim at ${this.exim}; set it in config/plugins (queue/exim-bsmtp /usr/sbin/exim4)`);
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.env)) if (value !== undefined) env[key] = value;
    const run = await runProgram({
      command: this.exim,
      args: [...this.eximArgs, '-bS'],
      env,
      timeoutMs: TIME_LIMIT_MS,
      signal: this.signal,
      input: [{ fd: 0, data: () => this.batch(tx) }],
      collect: { 1: 8192, 2: 8192 },
    });
    if (!run.started) {
      this.log(LOGERROR, `cannot run ${this.exim}: ${run.error.message}`);
      return [DENYSOFT, '4.3.0 Internal error enqueuing mail, try again later'];
    }
    // Exim stops reading when it finds an error; its output says which.
    if (run.inputError !== undefined) this.log(LOGWARN, `${this.exim} did not read the whole batch: ${run.inputError.message}`);
    const { code, killed } = run;
    const out = run.output(1).toString('utf8');
    const err = run.output(2).toString('utf8').trim();
    if (err !== '') this.log(code === 0 ? LOGINFO : LOGWARN, `exim: ${err.replace(/\n+/g, ' | ')}`);

    if (killed) {
      this.log(LOGERROR, `${this.exim} ran out of time and was killed`);
      return [DENYSOFT, '4.3.0 Queuing timed out, try again later'];
    }
    const m = /^([245])(\d\d)[ -](.*)$/m.exec(out);
    if (m !== null && m[1] !== '2') {
      const permanent = m[1] === '5';
      const text = m[3]!.trim();
      this.log(LOGERROR, `BSMTP enqueue failed: ${m[1]}${m[2]} ${text}`);
      const enhanced = /^[45]\.\d{1,3}\.\d{1,3}\s/.test(text) ? '' : permanent ? '5.0.0 ' : '4.0.0 ';
      return [permanent ? DENY : DENYSOFT, clip(`${enhanced}${text}`)];
    }
    if (code !== 0) {
      this.log(LOGERROR, `BSMTP enqueue failed: ${this.exim} exited ${code ?? 'on a signal'}${out.trim() ? `: ${out.trim()}` : ''}`);
      return [DENYSOFT, '4.3.0 Internal error enqueuing mail, try again later'];
    }
    this.log(LOGINFO, 'enqueued to Exim via BSMTP');
    return [OK, 'Queued!'];
  }

  /** HELO, MAIL, RCPT..., DATA, the message (LF, dot-stuffed), `.`, QUIT. */
  private async *batch(tx: Transaction): AsyncGenerator<Buffer | string> {
    yield [
      `HELO ${this.config('me') ?? 'localhost'}`,
      `MAIL FROM:<${oneLine(tx.sender?.address ?? '')}>`,
      ...tx.recipients.map((r) => `RCPT TO:<${oneLine(r.address)}>`),
      'DATA',
      '',
    ].join('\n');
    yield* convertStream(tx.bodyStream(), new DataEncoder('lf'));
    yield 'QUIT\n';
  }
}

/** An address as it goes into a batch line: no line breaks can sneak in. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, '');
}
