/**
 * content_log: append every message to a file, for debugging other plugins or keeping an archive
 * (qpsmtpd's `content_log`).
 *
 * At `data_post` the message, as it will be queued (the header with this server's Received line,
 * then the body), is appended to the file named by `content_log_file`. The plugin always answers
 * DECLINED: a log that cannot be written is logged (LOGERROR) and never stops the mail.
 *
 * The file is an mbox (mboxrd): each message starts with a `From SENDER DATE` line (the envelope
 * sender, `MAILER-DAEMON` for `<>`, the date in asctime form), has LF line ends, body lines
 * matching /^>*From / get one more `>`, and an empty line follows it. So any mail reader (mutt -f,
 * formail, Python's mailbox) splits the file into its messages again.
 *
 * Config files (read for every message, so changes apply without a restart):
 *   content_log_enabled   true|1|yes (case-insensitive) or anything else for off; missing: on.
 *   content_log_file      the path, through strftime (local time: %Y %m %d %H %M %S %y %e %j %a
 *                         %A %b %B %F %T %s %%); default `mail/%Y%m%d`, one file a day. A relative
 *                         path is taken from the folder that holds the config dir (qpsmtpd's
 *                         working directory). Missing folders are created (mode 0750); the file is
 *                         created with mode 0600, since it holds other people's mail.
 *
 * Arguments: none (`loglevel N` as for every plugin). Hooks: data_post.
 *
 * Messages of concurrent sessions never interleave: appends to one file are serialized in the
 * process, and a message of up to 4 MiB is written with a single write to a file opened for
 * appending, so worker processes (--workers) do not mix theirs either. Larger messages are
 * streamed, never held in memory whole; with several workers they should log to per-worker or
 * per-connection files.
 *
 * Subclasses may override `exclude(tx)` (qpsmtpd's `exclude` method) to leave messages out.
 *
 * Deliberate differences from qpsmtpd:
 *   - qpsmtpd appended the messages with nothing between them (no way to tell where one ends);
 *     we write an mbox, as described above.
 *   - qpsmtpd read content_log_enabled only when the plugin loaded (a change needed a restart).
 *   - qpsmtpd failed ("Could not open log file") when the folder was missing; we create it.
 */
import { createWriteStream } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Plugin, DECLINED, LOGDEBUG, LOGERROR, LOGINFO } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_FILE = 'mail/%Y%m%d';
/** Messages up to this size are written with one write (atomic for O_APPEND on a local disk). */
const SINGLE_WRITE_MAX = 4 * 1024 * 1024;

/** Appends in progress, per file: the next append to a file waits for the one before it. */
const tails = new Map<string, Promise<void>>();

export default class ContentLog extends Plugin {
  /** The folder relative paths start from. */
  root = '';

  register(qp: PluginHost): void {
    this.root = dirname(qp.configDir);
  }

  /** Override to leave messages out of the log. */
  exclude(_tx: Transaction): boolean {
    return false;
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (!enabled(this.config('content_log_enabled'))) return DECLINED;
    if (this.exclude(tx)) {
      this.log(LOGDEBUG, 'skip, excluded from content logging');
      return DECLINED;
    }
    const path = resolve(this.root, strftime(this.config('content_log_file') || DEFAULT_FILE, new Date()));
    try {
      await serialized(path, () => appendMessage(path, tx));
      this.log(LOGINFO, `pass, message saved to ${path}`);
    } catch (err) {
      this.log(LOGERROR, `cannot write ${path}: ${err instanceof Error ? err.message : String(err)}; continuing anyway`);
    }
    return DECLINED;
  }
}

/** qpsmtpd's reading of content_log_enabled: missing means on. */
function enabled(value: string | undefined): boolean {
  if (value === undefined) return true;
  return /^(true|1|yes)\s*$/i.test(value);
}

/** Run `task` after every earlier task for the same file has finished. */
async function serialized(path: string, task: () => Promise<void>): Promise<void> {
  const before = tails.get(path) ?? Promise.resolve();
  const mine = before.then(task, task);
  const tail = mine.then(
    () => undefined,
    () => undefined,
  );
  tails.set(path, tail);
  try {
    await mine;
  } finally {
    if (tails.get(path) === tail) tails.delete(path);
  }
}

async function appendMessage(path: string, tx: Transaction): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  const separator = `From ${envelopeSender(tx)} ${asctime(new Date())}\n`;
  const quoter = new MboxQuoter();
  if (tx.header.toBuffer().length + tx.bodyLength <= SINGLE_WRITE_MAX) {
    const chunks: Buffer[] = [Buffer.from(separator)];
    quoter.on('data', (chunk: Buffer) => chunks.push(chunk));
    await pipeline(tx.bodyStream(), quoter);
    chunks.push(Buffer.from('\n'));
    await appendFile(path, Buffer.concat(chunks), { mode: 0o600 });
    return;
  }
  const out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  out.write(separator);
  await pipeline(tx.bodyStream(), quoter, async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) yield chunk;
    yield Buffer.from('\n');
  }, out);
}

/** The mbox separator's sender: the envelope sender, or MAILER-DAEMON for `<>`. */
function envelopeSender(tx: Transaction): string {
  const sender = tx.sender;
  if (sender === undefined || sender.isNull) return 'MAILER-DAEMON';
  return sender.address.replace(/\s/g, '_') || 'MAILER-DAEMON';
}

/**
 * CRLF to LF, and mboxrd quoting: a line matching /^>*From / gets one more `>`. Works on bytes,
 * across chunk boundaries, and makes sure the message ends with a line end.
 */
class MboxQuoter extends Transform {
  /** The start of a line not yet complete. */
  private partial: Buffer = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const data = this.partial.length > 0 ? Buffer.concat([this.partial, chunk]) : chunk;
    let start = 0;
    const out: Buffer[] = [];
    for (;;) {
      const lf = data.indexOf(0x0a, start);
      if (lf === -1) break;
      const end = lf > start && data[lf - 1] === 0x0d ? lf - 1 : lf;
      out.push(quoteLine(data.subarray(start, end)), LF);
      start = lf + 1;
    }
    this.partial = Buffer.from(data.subarray(start));
    if (out.length > 0) this.push(Buffer.concat(out));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.partial.length > 0) this.push(Buffer.concat([quoteLine(this.partial), LF]));
    this.partial = Buffer.alloc(0);
    done();
  }
}

const LF = Buffer.from('\n');
const FROM_LINE = /^>*From /;

function quoteLine(line: Buffer): Buffer {
  // Only lines starting with ">" or "F" can need it: look at a few bytes, not the whole line.
  if (line.length < 5 || (line[0] !== 0x3e && line[0] !== 0x46)) return line;
  if (!FROM_LINE.test(line.subarray(0, Math.min(line.length, 256)).toString('latin1'))) return line;
  return Buffer.concat([Buffer.from('>'), line]);
}

// ---- dates ---------------------------------------------------------------------------------------

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'] as const;

const pad = (n: number, width = 2, fill = '0'): string => String(n).padStart(width, fill);

/** `Wed Jun 30 21:49:08 1993`, the date of an mbox separator line (local time). */
function asctime(date: Date): string {
  return strftime('%a %b %e %H:%M:%S %Y', date);
}

/** POSIX strftime in local time, for the conversions listed in the header; others stay as written. */
export function strftime(format: string, date: Date): string {
  return format.replace(/%([%a-zA-Z])/g, (all, c: string) => {
    switch (c) {
      case '%': return '%';
      case 'a': return DAYS[date.getDay()]!.slice(0, 3);
      case 'A': return DAYS[date.getDay()]!;
      case 'b':
      case 'h': return MONTHS[date.getMonth()]!.slice(0, 3);
      case 'B': return MONTHS[date.getMonth()]!;
      case 'd': return pad(date.getDate());
      case 'e': return pad(date.getDate(), 2, ' ');
      case 'H': return pad(date.getHours());
      case 'j': {
        const start = Date.UTC(date.getFullYear(), 0, 1);
        return pad((Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) - start) / 86_400_000 + 1, 3);
      }
      case 'm': return pad(date.getMonth() + 1);
      case 'M': return pad(date.getMinutes());
      case 'S': return pad(date.getSeconds());
      case 's': return String(Math.floor(date.getTime() / 1000));
      case 'y': return pad(date.getFullYear() % 100);
      case 'Y': return String(date.getFullYear());
      case 'F': return strftime('%Y-%m-%d', date);
      case 'T': return strftime('%H:%M:%S', date);
      default: return all;
    }
  });
}
