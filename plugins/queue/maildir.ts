/**
 * queue/maildir: deliver each accepted message into a Maildir (qpsmtpd's `queue/maildir`).
 *
 *   queue/maildir PATH [SUBDIR-TEMPLATE] [MODE]
 *   queue/maildir PATH-WITH-TEMPLATE [MODE]
 *
 * PATH       the Maildir (it gets cur/ new/ tmp/). A relative PATH is relative to the parent of the
 *            config directory: `queue/maildir var/maildir` in <project>/config/plugins means
 *            <project>/var/maildir.
 * TEMPLATE   deliver one copy per recipient into PATH/TEMPLATE, with the substitutions
 *              %l  the local part     %d  the domain     %u  the whole address (local@domain)
 *            Before substituting, every byte of the local part and of the domain that is not one of
 *            `-A-Za-z0-9+_.,@=` becomes `_` (qpsmtpd; a UTF-8 character is several bytes, so
 *            `jörg` becomes `j__rg`, the directory qpsmtpd would have used). Our additions: the
 *            domain is lower-cased first (rcpt_ok accepts domains in any case; one domain is one
 *            directory), and a value that would be `.` or `..` becomes `_`/`__` (no escaping PATH).
 *            The template may also be written inside PATH: `queue/maildir /var/mail/%d/%l` is
 *            `queue/maildir /var/mail %d/%l` (PATH ends before the first segment with a `%`).
 *            `%d` alone still writes one file per recipient.
 * MODE       octal permissions (`770`, `0750`) of the directories this plugin creates; files get
 *            the same without the execute bits (`770`: directories 0770, files 0660). Default 700
 *            and 600. Directories always keep u+rwx, or the daemon could not use them. Applied with
 *            chmod, so the process umask does not narrow it.
 *
 * Without a template one file holds the message for all recipients, with a `Delivered-To:` line per
 * recipient (in RCPT order); with a template each recipient's file has its own `Delivered-To:`.
 * Every file starts with `Return-Path: <sender>` (`<>` for the null sender), then the message as
 * queued (the core's Received header first). A recipient without a domain (`<postmaster>`) is
 * delivered as postmaster@<config/me>, in Delivered-To and in the template alike.
 *
 * Line ends: files are written with LF line ends, the Maildir convention that qpsmtpd, qmail and
 * Dovecot follow. The message arrives with CRLF; every CRLF becomes LF while it streams through
 * (a CR and its LF may sit in different chunks), a CR not followed by LF is kept. The message is
 * never held in memory as a whole: a large one streams from the core's spool file.
 *
 * Durability: each file is written as tmp/UNIQUE, fsynced, hard-linked into new/ (renamed when the
 * file system has no hard links), its tmp name removed, and the new/ directory fsynced; only then
 * does the hook answer `OK` (250 `Queued! UNIQUE`). With a template every copy is first written
 * and fsynced, then all are moved into new/, so a failure half-way leaves nothing delivered.
 * UNIQUE is `<seconds>.M<microseconds>P<pid>Q<counter>.<hostname>`, `/` and `:` in the host name
 * written as `\057` and `\072` (the Maildir specification).
 *
 * Failure (a directory that cannot be created, a full disk, no permission, the plugin timeout):
 * the partial files are removed (and copies already linked into new/ for other recipients of the
 * same message), the cause is logged at LOGERROR, and the hook answers DENYSOFT
 * `4.3.0 Queue error, try again later` (452), or `4.3.1 Mail system full, try again later` (452)
 * when the cause is ENOSPC or EDQUOT: the client keeps the message and retries.
 *
 * Testing seam (fault injection), read from the daemon's environment at every delivery:
 *   QPSMTPD_FAULT_QUEUE_WRITE=CODE            every write into a tmp/ file fails with CODE
 *   QPSMTPD_FAULT_QUEUE_WRITE=CODE:after=N    the first N bytes of each file are written, then
 *                                             the write fails with CODE
 * CODE is an errno name such as EIO or ENOSPC (the error looks like the one the file system would
 * raise: `code`, `errno`, `syscall: 'write'`). It exists so tests can prove that a failing disk
 * gives 4xx and leaves nothing in new/ or tmp/; never set it in production. A value that cannot be
 * parsed is logged at LOGERROR and ignored.
 *
 * Config files: me (for recipients without a domain). Hooks: queue.
 * A PATH that is missing or a TEMPLATE without %l/%d/%u is an error at load time (`qpsmtpd check`
 * names the line).
 */
import { chmod, link, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { constants as osConstants, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Plugin, CrlfToLf, DECLINED, DENYSOFT, OK, LOGERROR, LOGINFO, LOGWARN, convertStream } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const SUBSTITUTION = /%[ldu]/;
const OCTAL_MODE = /^0?[0-7]{3}$/;
/** Gather small chunks into writes of about this size. */
const WRITE_BATCH = 64 * 1024;

/** The environment variable of the fault-injection seam (see the header). */
const FAULT_VARIABLE = 'QPSMTPD_FAULT_QUEUE_WRITE';
const FAULT_SPEC = /^(E[A-Z0-9]+)(?::after=(\d+))?$/;

/** Writes fail with `code` once `after` bytes of a file are written (testing seam). */
interface WriteFault {
  readonly code: string;
  readonly after: number;
}

/** Per process: with the pid it makes names unique even within one microsecond. */
let deliveryCounter = 0;

/** One file to deliver: its Maildir and the recipients it is for. */
interface Delivery {
  readonly maildir: string;
  readonly deliveredTo: readonly string[];
}

/** A file on its way into new/. */
interface InFlight {
  readonly maildir: string;
  readonly name: string;
  readonly tmpPath: string;
  readonly newPath: string;
  tmpExists: boolean;
  inNew: boolean;
}

export default class QueueMaildir extends Plugin {
  private base = '';
  private template: string | undefined;
  private dirMode = 0o700;
  private fileMode = 0o600;
  private uniqueHost = '';

  async register(qp: PluginHost, ...args: string[]): Promise<void> {
    const [pathArg, ...rest] = args;
    if (pathArg === undefined || pathArg === '') {
      throw new Error('the Maildir path is missing: queue/maildir PATH [SUBDIR-TEMPLATE] [MODE]');
    }
    let path = pathArg;
    const segments = pathArg.split('/');
    const firstTemplated = segments.findIndex((s) => SUBSTITUTION.test(s));
    if (firstTemplated !== -1) {
      path = firstTemplated === 0 ? '.' : segments.slice(0, firstTemplated).join('/') || '/';
      this.template = segments.slice(firstTemplated).join('/');
    } else if (rest[0] !== undefined && !OCTAL_MODE.test(rest[0])) {
      this.template = rest.shift();
      if (!SUBSTITUTION.test(this.template!)) {
        throw new Error(`sub directory "${this.template}" has no substitution (%l, %d or %u)`);
      }
    }
    if (firstTemplated !== -1 && rest[0] !== undefined && !OCTAL_MODE.test(rest[0])) {
      throw new Error(`PATH "${pathArg}" already holds the template; "${rest[0]}" is not an octal MODE`);
    }
    const modeArg = rest.shift();
    if (modeArg !== undefined) {
      if (!OCTAL_MODE.test(modeArg)) throw new Error(`mode "${modeArg}" is not an octal number such as 770`);
      const mode = parseInt(modeArg, 8);
      this.dirMode = mode | 0o700;
      this.fileMode = mode & 0o666;
    }
    if (rest.length > 0) this.log(LOGWARN, `ignoring extra arguments: ${rest.join(' ')}`);

    this.base = resolve(dirname(qp.configDir), path);
    this.uniqueHost = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');

    if (this.template === undefined) {
      // Create it now, as qpsmtpd does, so an empty Maildir is there to look at; a failure is
      // only a warning here: every delivery tries again and answers 4xx while it fails.
      try {
        await this.ensureMaildir(this.base);
      } catch (err) {
        this.log(LOGWARN, `cannot create the Maildir ${this.base} yet: ${(err as Error).message}`);
      }
    }
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      // A plugin removed every recipient: there is nobody to deliver to, and OK would drop the message.
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const deliveries = this.plan(tx);
    const fault = this.writeFault();
    const files: InFlight[] = [];
    try {
      // 1. Write and fsync every copy under tmp/.
      for (const d of deliveries) {
        await this.ensureMaildir(d.maildir);
        const name = this.uniqueName();
        const file: InFlight = {
          maildir: d.maildir,
          name,
          tmpPath: join(d.maildir, 'tmp', name),
          newPath: join(d.maildir, 'new', name),
          tmpExists: false,
          inNew: false,
        };
        files.push(file);
        await this.writeFile(file, tx, d.deliveredTo, fault);
      }
      this.signal.throwIfAborted();
      // 2. Move them all into new/, then make the directory entries durable.
      for (const f of files) await moveIntoNew(f);
      for (const f of files) {
        if (f.tmpExists) {
          await unlink(f.tmpPath);
          f.tmpExists = false;
        }
      }
      for (const dir of new Set(files.map((f) => join(f.maildir, 'new')))) await fsyncDirectory(dir);
    } catch (err) {
      await cleanUp(files);
      this.log(LOGERROR, `delivery into ${this.base} failed, nothing delivered: ${describe(err)}`);
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ENOSPC' || code === 'EDQUOT') return [DENYSOFT, '4.3.1 Mail system full, try again later'];
      return [DENYSOFT, '4.3.0 Queue error, try again later'];
    }
    for (const f of files) this.log(LOGINFO, `delivered to ${f.newPath}`);
    const first = files[0]?.name ?? '';
    return [OK, files.length > 1 ? `Queued! ${first} and ${files.length - 1} more` : `Queued! ${first}`];
  }

  /** The files to write: one for everybody, or one per recipient with a template. */
  private plan(tx: Transaction): Delivery[] {
    const me = this.config('me') ?? 'localhost';
    const recipients = tx.recipients.map((r) => ({ rcpt: r, host: r.host === '' ? me : r.host }));
    if (this.template === undefined) {
      return [{ maildir: this.base, deliveredTo: recipients.map(({ rcpt, host }) => mailbox(rcpt, host)) }];
    }
    const template = this.template;
    return recipients.map(({ rcpt, host }) => {
      const local = safeSegment(sanitize(rcpt.user));
      const domain = safeSegment(sanitize(host.toLowerCase()));
      const values: Record<string, string> = { l: local, d: domain, u: `${local}@${domain}` };
      const sub = template.replace(/%([ldu])/g, (_m, key: string) => values[key]!);
      return { maildir: join(this.base, sub), deliveredTo: [mailbox(rcpt, host)] };
    });
  }

  /** tmp/NAME: the trace lines, the message with LF line ends, fsync. */
  private async writeFile(file: InFlight, tx: Transaction, deliveredTo: readonly string[], fault: WriteFault | undefined): Promise<void> {
    const handle = await open(file.tmpPath, 'wx', this.fileMode);
    file.tmpExists = true;
    try {
      await handle.chmod(this.fileMode);
      let head = `Return-Path: ${tx.sender === undefined ? '<>' : String(tx.sender)}\n`;
      for (const rcpt of deliveredTo) head += `Delivered-To: ${rcpt}\n`;
      const writer = new BatchWriter(handle, fault);
      await writer.write(Buffer.from(head, 'utf8'));
      for await (const chunk of convertStream(tx.bodyStream(), new CrlfToLf(), this.signal)) await writer.write(chunk);
      await writer.flush();
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** The injected write fault of the testing seam, if the environment asks for one. */
  private writeFault(): WriteFault | undefined {
    const value = this.env[FAULT_VARIABLE];
    if (value === undefined || value === '') return undefined;
    const m = FAULT_SPEC.exec(value.trim());
    if (!m) {
      this.log(LOGERROR, `${FAULT_VARIABLE}="${value}" is not CODE or CODE:after=N (such as EIO or ENOSPC:after=100): ignored`);
      return undefined;
    }
    this.log(LOGWARN, `${FAULT_VARIABLE} is set: file writes fail with ${m[1]} after ${m[2] ?? 0} bytes (testing seam)`);
    return { code: m[1]!, after: m[2] === undefined ? 0 : Number(m[2]) };
  }

  private uniqueName(): string {
    const now = performance.timeOrigin + performance.now();
    const seconds = Math.floor(now / 1000);
    const micros = Math.floor((now - seconds * 1000) * 1000);
    return `${seconds}.M${micros}P${process.pid}Q${++deliveryCounter}.${this.uniqueHost}`;
  }

  /** cur/ new/ tmp/ (and the folders above them), made with the plugin's mode. */
  private async ensureMaildir(maildir: string): Promise<void> {
    for (const sub of ['cur', 'new', 'tmp']) {
      const target = join(maildir, sub);
      const firstCreated = await mkdir(target, { recursive: true, mode: this.dirMode });
      if (firstCreated === undefined) continue;
      // mkdir's mode is narrowed by the umask: set it on every folder just made.
      for (let p = target; p.startsWith(firstCreated) && p.length >= firstCreated.length; p = dirname(p)) {
        await chmod(p, this.dirMode);
        if (p === firstCreated || dirname(p) === p) break;
      }
    }
  }
}

/** `user@host` as it goes into Delivered-To (the local part quoted where RFC 5321 needs it). */
function mailbox(rcpt: Address, host: string): string {
  const text = String(rcpt);
  const inner = text.startsWith('<') && text.endsWith('>') ? text.slice(1, -1) : text;
  return rcpt.host === '' ? `${inner}@${host}` : inner;
}

/** qpsmtpd's `tr/-A-Za-z0-9+_.,@=/_/c`, byte by byte over the UTF-8 text. */
function sanitize(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[-A-Za-z0-9+_.,@=]/.test(ch) ? ch : '_';
  }
  return out;
}

/** A path segment that would climb (`.`, `..`) or vanish (``) is made harmless. */
function safeSegment(text: string): string {
  return text === '' || text === '.' || text === '..' ? '_'.repeat(Math.max(1, text.length)) : text;
}

/** tmp/NAME -> new/NAME: a hard link, or a rename where the file system has none. */
async function moveIntoNew(file: InFlight): Promise<void> {
  try {
    await link(file.tmpPath, file.newPath);
    file.inNew = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EXDEV') throw err;
    await rename(file.tmpPath, file.newPath);
    file.inNew = true;
    file.tmpExists = false;
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Remove whatever a failed delivery left: tmp files, and copies already in new/. */
async function cleanUp(files: readonly InFlight[]): Promise<void> {
  for (const f of files) {
    if (f.tmpExists) await unlink(f.tmpPath).catch(() => undefined);
    if (f.inNew) await unlink(f.newPath).catch(() => undefined);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Collects small buffers into larger writes; every byte is written or the call throws. */
class BatchWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes written into the file so far. */
  private written = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly fault?: WriteFault,
  ) {}

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    // A write may be short (a file system near full): go on until all is written or it throws.
    for (let offset = 0; offset < data.length; ) {
      let length = data.length - offset;
      if (this.fault !== undefined) {
        const allowed = this.fault.after - this.written;
        if (allowed <= 0) throw injectedFault(this.fault.code);
        length = Math.min(length, allowed);
      }
      const { bytesWritten } = await this.handle.write(data, offset, length);
      if (bytesWritten <= 0) throw new Error('write made no progress');
      offset += bytesWritten;
      this.written += bytesWritten;
    }
  }
}

/** An error shaped like the one a failing write(2) gives (testing seam). */
function injectedFault(code: string): NodeJS.ErrnoException {
  const errno = (osConstants.errno as Record<string, number | undefined>)[code];
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault (${FAULT_VARIABLE}), write`);
  err.code = code;
  if (errno !== undefined) err.errno = -errno;
  err.syscall = 'write';
  return err;
}