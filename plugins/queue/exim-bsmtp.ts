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
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULTS = ['/usr/sbin/rsmtp', '/usr/sbin/exim4', '/usr/sbin/exim'];
const TIME_LIMIT_MS = 300_000;
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

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
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(TIME_LIMIT_MS)]);
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.env)) if (value !== undefined) env[key] = value;
    const child = spawn(this.exim, [...this.eximArgs, '-bS'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const started = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (err) => resolve(err));
    });
    if (started !== undefined) {
      this.log(LOGERROR, `cannot run ${this.exim}: ${started.message}`);
      return [DENYSOFT, '4.3.0 Internal error enqueuing mail, try again later'];
    }
    const stdout = collect(child.stdout!, 8192);
    const stderr = collect(child.stderr!, 8192);
    let killed = false;
    const kill = (): void => {
      killed = true;
      child.kill('SIGKILL');
    };
    signal.addEventListener('abort', kill, { once: true });
    try {
      await this.writeBatch(child.stdin!, tx, signal);
    } catch (err) {
      // Exim stops reading when it finds an error; its output says which.
      this.log(LOGWARN, `${this.exim} did not read the whole batch: ${(err as Error).message}`);
      child.stdin!.destroy();
    }
    const code = await exited;
    signal.removeEventListener('abort', kill);
    const out = (await stdout).toString('utf8');
    const err = (await stderr).toString('utf8').trim();
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
  private async writeBatch(stdin: Writable, tx: Transaction, signal: AbortSignal): Promise<void> {
    const head = [
      `HELO ${this.config('me') ?? 'localhost'}`,
      `MAIL FROM:<${oneLine(tx.sender?.address ?? '')}>`,
      ...tx.recipients.map((r) => `RCPT TO:<${oneLine(r.address)}>`),
      'DATA',
      '',
    ].join('\n');
    await write(stdin, Buffer.from(head, 'utf8'));
    let lineStart = true;
    let heldCr = false;
    const message: Readable = tx.bodyStream();
    try {
      for await (const raw of message) {
        signal.throwIfAborted();
        const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : (raw as Buffer);
        const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
        let n = 0;
        for (let i = 0; i < chunk.length; i++) {
          const byte = chunk[i]!;
          if (heldCr) {
            heldCr = false;
            out[n++] = LF;
            lineStart = true;
            if (byte === LF) continue;
          }
          if (byte === CR) {
            heldCr = true;
            continue;
          }
          if (byte === LF) {
            out[n++] = LF;
            lineStart = true;
            continue;
          }
          if (lineStart && byte === DOT) out[n++] = DOT;
          out[n++] = byte;
          lineStart = false;
        }
        if (n > 0) await write(stdin, out.subarray(0, n));
      }
    } finally {
      message.destroy();
    }
    const tail = (heldCr || !lineStart ? '\n' : '') + '.\nQUIT\n';
    await new Promise<void>((resolve, reject) => {
      stdin.once('error', reject);
      stdin.end(tail, () => resolve());
    });
  }
}

/** An address as it goes into a batch line: no line breaks can sneak in. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, '');
}

function clip(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 400 ? clean.slice(0, 397) + '...' : clean;
}

function collect(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      if (size < limit) parts.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    });
    stream.on('error', () => resolve(Buffer.concat(parts)));
    stream.on('close', () => resolve(Buffer.concat(parts)));
  });
}

function write(stream: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    stream.once('error', onError);
    const ok = stream.write(data, (err) => {
      stream.off('error', onError);
      if (err) reject(err);
      else if (ok) resolve();
    });
    if (!ok) stream.once('drain', () => resolve());
  });
}
