/**
 * queue/pipe: hand each accepted message to a program on its standard input — the talk's
 * "Queuing für Arme" (queuing for the poor), done safely. qpsmtpd had no such bundled plugin.
 *
 *   queue/pipe [timeout=SECONDS] [per_recipient] [crlf] COMMAND [ARG ...]
 *
 * COMMAND  absolute path of the program. It is run directly, never through a shell: nothing in an
 *          address can become a command, a redirection or a second argument.
 * ARG      its arguments, with placeholders:
 *            {sender}      the envelope sender (`user@host`, empty for the null sender `<>`)
 *            {recipients}  one argument per recipient (the argument must be exactly this)
 *            {recipient}   the recipient, with per_recipient only
 *          A placeholder may sit inside a longer argument (`-f{sender}`). A program reads an
 *          argument that starts with `-` as an option, and a local part may start with `-`: an
 *          address that would become such an argument is refused (5xx) unless a `--` argument
 *          comes before it. So write, for example:
 *            queue/pipe /usr/sbin/sendmail -i -f {sender} -- {recipients}
 * timeout=SECONDS  how long the program may run (default 60); then it and the processes it started
 *          (its process group) are killed. The core's plugin_timeout (default 30 s) also ends the
 *          hook, and the program with it.
 * per_recipient    run the program once per recipient, with RECIPIENT and {recipient} set (as a
 *          local delivery agent wants); otherwise once for all.
 * crlf     give the program the message with CRLF line ends, as received; by default it gets LF
 *          line ends, the convention of UNIX mail programs (sendmail, procmail, maildrop, cat).
 *
 * The environment holds only: PATH (the daemon's, else /usr/local/bin:/usr/bin:/bin), SENDER,
 * RECIPIENTS (one address per line), RECIPIENT (per_recipient only), SIZE (bytes of the message
 * given), REMOTE_IP, REMOTE_HOST (when known), HELO, QPSMTPD_TRANSACTION (the transaction id).
 * The message on standard input is our Received line, then the message; standard output's first
 * line becomes the reply text (a queue id, a reason; cleaned to printable ASCII); standard error is
 * logged.
 *
 * What the client gets:
 *   exit 0    250 `Queued!` (and the program's first output line): the program took the whole
 *             message and said it has it. Exit 0 without reading the whole message is a 4xx.
 *   exit 100  5xx (DENY): a permanent failure, qmail's convention.
 *   anything else — another exit code (111, sendmail's 75 EX_TEMPFAIL, ...), killed by a signal,
 *             past the time limit, not startable — 4xx (DENYSOFT): the client keeps the message.
 * With per_recipient: 250 when every run exited 0; a 4xx if any run failed temporarily, else 5xx
 * if any failed permanently. Runs that succeeded before a 4xx get the message again when the
 * client retries: use per_recipient only with programs for which a repeat is harmless, or where a
 * failure is the same for every recipient.
 *
 * Config files: none. Hooks: queue.
 */
import { Plugin, CrlfToLf, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN, convertStream, messageSize, runProgram } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const PERMANENT_EXIT = 100;

interface Run {
  readonly result: typeof OK | typeof DENY | typeof DENYSOFT;
  readonly text: string;
}

export default class Pipe extends Plugin {
  private command = '';
  private commandArgs: string[] = [];
  private timeoutMs = 60_000;
  private perRecipient = false;
  private crlf = false;

  register(_qp: PluginHost, ...args: string[]): void {
    const rest = [...args];
    for (;;) {
      const option = rest[0];
      if (option === undefined) break;
      const timeout = /^timeout=(\d+(?:\.\d+)?)$/.exec(option);
      if (timeout) this.timeoutMs = Number(timeout[1]) * 1000;
      else if (option === 'per_recipient') this.perRecipient = true;
      else if (option === 'crlf') this.crlf = true;
      else break;
      rest.shift();
    }
    const command = rest.shift();
    if (command === undefined) throw new Error('no program: queue/pipe [timeout=SECONDS] [per_recipient] [crlf] /path/to/program [ARG ...]');
    if (!command.startsWith('/')) throw new Error(`"${command}" is not an absolute path (no shell, no PATH search: name the program itself)`);
    if (this.timeoutMs <= 0) throw new Error('timeout must be more than 0 seconds');
    this.command = command;
    this.commandArgs = rest;
    if (!this.perRecipient && rest.some((a) => a.includes('{recipient}'))) throw new Error('{recipient} needs per_recipient (or use {recipients})');
    const bad = rest.find((a) => a.includes('{recipients}') && a !== '{recipients}');
    if (bad !== undefined) throw new Error(`{recipients} must be an argument of its own, not part of "${bad}"`);
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const runs: Run[] = [];
    for (const group of this.perRecipient ? tx.recipients.map((r) => [r]) : [tx.recipients]) {
      const run = await this.runOnce(tx, group);
      runs.push(run);
      if (!this.perRecipient || this.signal.aborted) break;
    }
    const temporary = runs.find((r) => r.result === DENYSOFT);
    if (temporary) return [DENYSOFT, temporary.text];
    const permanent = runs.find((r) => r.result === DENY);
    if (permanent) return [DENY, permanent.text];
    return [OK, runs.length === 1 ? runs[0]!.text : `Queued! (${runs.length} deliveries)`];
  }

  /** One run of the program for these recipients. */
  private async runOnce(tx: Transaction, recipients: readonly Address[]): Promise<Run> {
    const sender = tx.sender?.address ?? '';
    const argv: string[] = [];
    let afterDashes = false;
    for (const arg of this.commandArgs) {
      if (arg === '--') afterDashes = true;
      const values = arg === '{recipients}' ? recipients.map((r) => r.address) : [arg.replace(/\{(sender|recipient)\}/g, (_m, key: string) => (key === 'sender' ? sender : recipients[0]!.address))];
      for (const value of values) {
        if (!afterDashes && arg.startsWith('{') && value.startsWith('-')) {
          return { result: DENY, text: '5.1.3 An address that starts with "-" cannot be passed to the delivery program' };
        }
        argv.push(value);
      }
    }
    const conn = this.connection;
    const env: Record<string, string> = {
      PATH: this.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      SENDER: sender,
      RECIPIENTS: recipients.map((r) => r.address).join('\n'),
      SIZE: String(messageSize(tx)),
      REMOTE_IP: conn.remoteIp,
      HELO: conn.helloHost ?? '',
      QPSMTPD_TRANSACTION: tx.id,
    };
    if (this.perRecipient) env['RECIPIENT'] = recipients[0]!.address;
    if (conn.remoteHost !== '' && !conn.remoteHost.startsWith('[')) env['REMOTE_HOST'] = conn.remoteHost;

    // Its own process group, so a time-out ends what it started too (a shell script's children).
    const run = await runProgram({
      command: this.command,
      args: argv,
      env,
      timeoutMs: this.timeoutMs,
      signal: this.signal,
      processGroup: true,
      input: [{ fd: 0, data: () => convertStream(tx.bodyStream(), this.crlf ? undefined : new CrlfToLf()) }],
      collect: { 1: 4096, 2: 4096 },
    });
    if (!run.started) {
      this.log(LOGERROR, `cannot run ${this.command}: ${run.error.message}`);
      return { result: DENYSOFT, text: '4.3.0 Delivery program failed, try again later' };
    }
    const { code, signal: killedBy, killed: timedOut, inputError } = run;
    const fed = inputError === undefined;
    if (inputError !== undefined && !timedOut) this.log(LOGWARN, `${this.command} did not read the whole message: ${inputError.message}`);
    const firstLine = run.output(1).toString('utf8').split('\n').map((l) => clean(l)).find((l) => l !== '') ?? '';
    const err = run.output(2).toString('utf8').trim();
    const who = `${this.command} for ${recipients.map((r) => String(r)).join(', ')}`;
    if (err !== '') this.log(code === 0 ? LOGINFO : LOGWARN, `${who}: ${err.replace(/\n+/g, ' | ')}`);

    if (timedOut) {
      this.log(LOGERROR, `${who}: ran out of time (${this.signal.aborted ? 'plugin_timeout' : `${this.timeoutMs / 1000} s`}), killed`);
      return { result: DENYSOFT, text: '4.3.0 Delivery program timed out, try again later' };
    }
    if (code === 0 && fed) {
      this.log(LOGINFO, `${who}: delivered${firstLine ? `: ${firstLine}` : ''}`);
      return { result: OK, text: firstLine ? `Queued! ${firstLine}` : 'Queued!' };
    }
    const status = code === null ? `killed by ${killedBy}` : `exit ${code}`;
    if (code === PERMANENT_EXIT) {
      this.log(LOGWARN, `${who}: refused (${status})${firstLine ? `: ${firstLine}` : ''}`);
      return { result: DENY, text: withEnhanced(firstLine, '5.3.0', 'Delivery program refused the message') };
    }
    this.log(LOGERROR, `${who}: failed (${code === 0 ? 'exit 0 without reading the whole message' : status})${firstLine ? `: ${firstLine}` : ''}`);
    return { result: DENYSOFT, text: withEnhanced(firstLine, '4.3.0', 'Delivery program failed, try again later') };
  }
}

/** The program's text with an enhanced status code of the right class in front. */
function withEnhanced(text: string, enhanced: string, fallback: string): string {
  if (text === '') return `${enhanced} ${fallback}`;
  const own = /^([245])\.\d{1,3}\.\d{1,3}\s/.exec(text);
  if (own && own[1] === enhanced[0]) return text;
  return `${enhanced} ${own ? text.slice(own[0].length) : text}`;
}

function clean(line: string): string {
  const text = line.replace(/[^\x20-\x7e]/g, '?').trim();
  return text.length > 300 ? text.slice(0, 297) + '...' : text;
}
