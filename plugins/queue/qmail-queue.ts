/**
 * queue/qmail-queue: hand each accepted message to qmail's queue program (qpsmtpd's
 * `queue/qmail-queue`), or any program with the same interface (simscan, qmail-scanner, spamdyke's
 * and netqmail's QMAILQUEUE wrappers, notqmail, s/qmail).
 *
 *   queue/qmail-queue [PROGRAM]
 *
 * PROGRAM  absolute path of the program (default `$QMAIL/bin/qmail-queue`, QMAIL defaulting to
 *          /var/qmail). The QMAILQUEUE environment variable, if set, overrides it, as in qpsmtpd
 *          and qmail. Only `/`, letters, digits, `-`, `_` and `.` are allowed in the path; there is
 *          no shell.
 *
 * The program runs with the message on descriptor 0 (our Received line first, then the message,
 * with LF line ends as qmail keeps messages: every CRLF becomes LF) and the envelope on descriptor
 * 1: `F<sender>\0` (empty for the null sender), `T<recipient>\0` per recipient, and a final `\0`
 * (qmail-queue(8)). Descriptor 6 is a pipe for the custom error text of exit code 82. The program
 * gets the daemon's environment plus the client's TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
 * TCPLOCALPORT (and TCPREMOTEHOST when known), as tcpserver would have set them for qmail-smtpd,
 * for wrappers that look at them. Its standard error is logged.
 *
 * What the client gets, as qmail-smtpd maps qmail-queue's exit codes (qmail.c):
 *   0        250 `Queued! <time> qp <pid> <Message-ID>` (qpsmtpd's text); qmail-queue exits 0 only
 *            after the message is safely in the queue.
 *   11-40    5xx (DENY): 11 `envelope address too long for qq (#5.1.3)`, 31 `mail server
 *            permanently rejected message (#5.3.0)`, others `qq permanent problem (#5.3.0)`;
 *            115 counts as 11.
 *   82       the text the program wrote to descriptor 6: `D...` is a 5xx, `Z...` a 4xx.
 *   others   4xx (DENYSOFT) with qmail's text for the code (51 out of memory, 53 write error or
 *            disk full, 61-66 queue trouble, 71-74 mail server trouble, 81/91 internal bug, ...,
 *            anything else `qq temporary problem (#4.3.0)`); killed by a signal: `qq crashed`.
 *   Exit 0 after the program stopped reading (we could not write all of the message or the
 *   envelope) is a 4xx `qq read error`, as in qmail. A program that cannot be started: 4xx
 *   `unable to exec qq`. Past the time limit (300 s, or the hook's plugin_timeout if shorter)
 *   the program is killed: 4xx `qq timeout`.
 * qmail's `(#x.y.z)` code becomes the reply's enhanced status code.
 *
 * Config files: none. Environment: QMAILQUEUE, QMAIL. Hooks: queue.
 */
import { Plugin, CrlfToLf, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGNOTICE, LOGWARN, clipReplyText as clip, convertStream, runProgram } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const SAFE_PATH = /^\/[-/_.a-zA-Z0-9]*$/;
const TIME_LIMIT_MS = 300_000;

/** qmail.c's texts by exit code; `D` permanent, `Z` temporary. */
const EXIT_TEXT: Readonly<Record<number, string>> = {
  11: 'Denvelope address too long for qq (#5.1.3)',
  115: 'Denvelope address too long for qq (#5.1.3)',
  31: 'Dmail server permanently rejected message (#5.3.0)',
  51: 'Zqq out of memory (#4.3.0)',
  52: 'Zqq timeout (#4.3.0)',
  53: 'Zqq write error or disk full (#4.3.0)',
  54: 'Zqq read error (#4.3.0)',
  55: 'Zqq unable to read configuration (#4.3.0)',
  56: 'Zqq trouble making network connection (#4.3.0)',
  61: 'Zqq trouble in home directory (#4.3.0)',
  62: 'Zqq trouble creating files in queue (#4.3.0)',
  63: 'Zqq trouble creating files in queue (#4.3.0)',
  64: 'Zqq trouble creating files in queue (#4.3.0)',
  65: 'Zqq trouble creating files in queue (#4.3.0)',
  66: 'Zqq trouble creating files in queue (#4.3.0)',
  71: 'Zmail server temporarily rejected message (#4.3.0)',
  72: 'Zconnection to mail server timed out (#4.4.1)',
  73: 'Zconnection to mail server rejected (#4.4.1)',
  74: 'Zcommunication with mail server failed (#4.4.2)',
  81: 'Zqq internal bug (#4.3.0)',
  91: 'Zqq internal bug (#4.3.0)',
};

export default class QmailQueue extends Plugin {
  private program = '';

  register(qp: PluginHost, ...args: string[]): void {
    const [program, ...rest] = args;
    const extra = rest.filter((a, i) => a !== 'loglevel' && rest[i - 1] !== 'loglevel');
    if (extra.length > 0) this.log(LOGWARN, `ignoring additional arguments: ${extra.join(' ')}`);
    this.program = program ?? `${qp.env['QMAIL'] || '/var/qmail'}/bin/qmail-queue`;
    if (!SAFE_PATH.test(this.program)) throw new Error(`"${this.program}" is not an absolute path of [-/_.a-zA-Z0-9]`);
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const override = this.env['QMAILQUEUE'];
    const program = override !== undefined && override !== '' ? override : this.program;
    if (!SAFE_PATH.test(program)) {
      this.log(LOGERROR, `QMAILQUEUE="${program}" is not an absolute path of [-/_.a-zA-Z0-9]: not run`);
      return reply('Zunable to exec qq (#4.3.0)');
    }
    const conn = this.connection;
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.env)) if (value !== undefined) env[key] = value;
    Object.assign(env, {
      TCPREMOTEIP: conn.remoteIp,
      TCPREMOTEPORT: String(conn.remotePort),
      TCPLOCALIP: conn.localIp,
      TCPLOCALPORT: String(conn.localPort),
    });
    if (conn.remoteHost !== '' && !conn.remoteHost.startsWith('[')) env['TCPREMOTEHOST'] = conn.remoteHost;

    this.log(LOGNOTICE, `queuing to ${program}`);
    // The message on 0 (LF line ends), then the envelope on 1; qmail-queue's error text on 6.
    const envelope = (): Buffer =>
      Buffer.concat([
        Buffer.from(`F${tx.sender?.address ?? ''}\0`, 'utf8'),
        ...tx.recipients.map((r) => Buffer.from(`T${r.address}\0`, 'utf8')),
        Buffer.from([0]),
      ]);
    const run = await runProgram({
      command: program,
      env,
      timeoutMs: TIME_LIMIT_MS,
      signal: this.signal,
      input: [
        { fd: 0, data: () => convertStream(tx.bodyStream(), new CrlfToLf()) },
        { fd: 1, data: () => [envelope()] },
      ],
      collect: { 2: 4096, 6: 1024 },
    });
    if (!run.started) {
      this.log(LOGERROR, `cannot run ${program}: ${run.error.message}`);
      return reply('Zunable to exec qq (#4.3.0)');
    }
    const writeFailed = run.inputError !== undefined;
    if (run.inputError !== undefined) this.log(LOGWARN, `${program} did not take the whole message and envelope: ${run.inputError.message}`);
    const err = run.output(2).toString('utf8').trim();
    if (err !== '') this.log(LOGWARN, `${program}: ${err}`);

    if (run.killed) return reply('Zqq timeout (#4.3.0)');
    if (run.code === null) return reply('Zqq crashed (#4.3.0)');
    const code = run.code;
    if (code === 0 && !writeFailed) {
      const messageId = (tx.header.get('Message-ID') ?? '').replace(/[\r\n].*/s, '').trim();
      const id = /^<.*>$/.test(messageId) ? messageId : `<${messageId}>`;
      this.log(LOGINFO, `${program} queued the message`);
      return [OK, clip(`Queued! ${Math.floor(Date.now() / 1000)} qp ${run.pid} ${id}`)];
    }
    let text: string;
    if (code === 0) text = EXIT_TEXT[54]!;
    else if (code === 82) {
      const custom = run.output(6).toString('utf8').replace(/\0.*$/s, '').trim();
      text = custom.length > 2 && /^[DZ]/.test(custom) ? custom : 'Zqq temporary problem (#4.3.0)';
    } else text = EXIT_TEXT[code] ?? (code >= 11 && code <= 40 ? 'Dqq permanent problem (#5.3.0)' : 'Zqq temporary problem (#4.3.0)');
    this.log(LOGERROR, `${program} exited ${code}: ${text.slice(1)}`);
    return reply(text);
  }
}

/** qmail's `D...`/`Z...` text as a hook result; `(#x.y.z)` becomes the enhanced status code. */
function reply(text: string): HookResult {
  const permanent = text.startsWith('D');
  const body = text.slice(1).trim();
  const m = /\(#([245]\.\d{1,3}\.\d{1,3})\)/.exec(body);
  const enhanced = m !== null && m[1]![0] === (permanent ? '5' : '4') ? m[1]! : permanent ? '5.3.0' : '4.3.0';
  return [permanent ? DENY : DENYSOFT, clip(`${enhanced} ${body}`)];
}
