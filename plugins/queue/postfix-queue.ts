/**
 * queue/postfix-queue: hand each accepted message to Postfix's cleanup(8) service, the way
 * Postfix's own smtpd does (qpsmtpd's `queue/postfix-queue`): Postfix then owns the message.
 *
 *   queue/postfix-queue [SOCKET] [FLAG ...]
 *
 * SOCKET   where cleanup listens: a path starting with `/` (default
 *          /var/spool/postfix/public/cleanup), or HOST:PORT for a cleanup service on TCP. Which
 *          socket is used, first match wins: the POSTFIXQUEUE environment variable, the config
 *          file `cleanup_sockets` (one socket per line, tried in order until one answers), SOCKET.
 * FLAG     cleanup processing flags (qpsmtpd's names, `CLEANUP_` prefix optional), OR-ed together:
 *            FLAG_BOUNCE         bounce bad messages instead of refusing them
 *            FLAG_FILTER         header_checks, body_checks, content_filter
 *            FLAG_HOLD           put the message on hold
 *            FLAG_DISCARD        discard the message silently (don't)
 *            FLAG_BCC_OK         always_bcc, sender/recipient_bcc_maps
 *            FLAG_MAP_OK         virtual_alias_maps, canonical maps
 *            FLAG_MILTER         non_smtpd_milters
 *            FLAG_FILTER_ALL     FILTER and MILTER
 *            FLAG_MASK_EXTERNAL  FILTER, MILTER, BCC_OK and MAP_OK: what Postfix's smtpd uses
 *                                for mail from outside, and probably what you want
 *            FLAG_MASK_INTERNAL  MAP_OK
 *            FLAG_NONE           nothing (the default, as in qpsmtpd)
 *          An unknown flag is logged and ignored (as qpsmtpd did). SMTP_REPLY is always set, so
 *          that a refusal carries cleanup's SMTP text (a header_checks REJECT message, say);
 *          SMTPUTF8 is set for messages whose client asked for it.
 *
 * The conversation (Postfix's attribute and record protocols, as smtpd speaks them): cleanup
 * sends `protocol` and `queue_id`; we send `flags`; then the records T (arrival time), A
 * (rewrite_context=remote, the client's name, address, port, HELO and protocol for Postfix's logs
 * and milters, the SASL login, encoding=8bit for BODY=8BITMIME), S (sender, empty for `<>`), R per
 * recipient, M, the message one N record per line (line ends removed; lines over 2048 bytes split
 * into L records, as smtpd does with line_length_limit), X, E. Cleanup answers `status` and
 * `reason` after it has written and fsynced the queue file: only then is the answer OK.
 *
 * What the client gets:
 *   250 `Queued! <Message-ID> (Queue-Id: ID)` when cleanup answers status 0.
 *   4xx (DENYSOFT) for the temporary statuses (DEFER, PROXY, BAD, WRITE: a milter said tempfail,
 *       the queue file could not be written, a protocol error), and when no socket answers or
 *       cleanup does not reply in time.
 *   5xx (DENY) for the permanent ones (CONT: content refused, SIZE: too big for
 *       message_size_limit, HOPS: a mail loop, RCPT: no recipients, NOPERM).
 *   The text is cleanup's reason when it gave one, else Postfix's standard text for the status.
 *
 * Permissions: public/ is mode 0710 owned by postfix:postdrop; a daemon not running as root
 * needs the postdrop group to reach the socket.
 *
 * Config files: cleanup_sockets. Environment: POSTFIXQUEUE. Hooks: queue.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGDEBUG, LOGERROR, LOGINFO, LOGWARN, clipReplyText as clip, connectWithin, convertStream, isInternational } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_SOCKET = '/var/spool/postfix/public/cleanup';
const TIMEOUT_MS = 60_000;
/** Postfix's line_length_limit default: longer lines go out as L records of this size. */
const RECORD_LIMIT = 2048;
const WRITE_BATCH = 64 * 1024;
const LF = 0x0a;
const CR = 0x0d;

/** Postfix's cleanup_user.h. */
const FLAGS: Readonly<Record<string, number>> = {
  FLAG_NONE: 0,
  FLAG_BOUNCE: 1 << 0,
  FLAG_FILTER: 1 << 1,
  FLAG_HOLD: 1 << 2,
  FLAG_DISCARD: 1 << 3,
  FLAG_BCC_OK: 1 << 4,
  FLAG_MAP_OK: 1 << 5,
  FLAG_MILTER: 1 << 6,
  FLAG_FILTER_ALL: (1 << 1) | (1 << 6),
  FLAG_MASK_EXTERNAL: (1 << 1) | (1 << 6) | (1 << 4) | (1 << 5),
  FLAG_MASK_INTERNAL: 1 << 5,
  FLAG_MASK_EXTRA: (1 << 2) | (1 << 3),
};
const FLAG_SMTP_REPLY = 1 << 7;
const FLAG_SMTPUTF8 = 1 << 8;

/** Status bits, soft ones first (they win, as in Postfix and qpsmtpd), with Postfix's texts. */
const STATUS: readonly { bit: number; soft: boolean; dsn: string; text: string }[] = [
  { bit: 1 << 8, soft: true, dsn: '4.7.1', text: 'service unavailable' },
  { bit: 1 << 7, soft: true, dsn: '4.3.0', text: 'queue file write error' },
  { bit: 1 << 0, soft: true, dsn: '4.3.0', text: 'internal protocol error' },
  { bit: 1 << 1, soft: true, dsn: '4.3.0', text: 'queue file write error' },
  { bit: 1 << 6, soft: false, dsn: '5.1.0', text: 'no recipients specified' },
  { bit: 1 << 4, soft: false, dsn: '5.4.0', text: 'too many hops' },
  { bit: 1 << 2, soft: false, dsn: '5.3.4', text: 'message file too big' },
  { bit: 1 << 3, soft: false, dsn: '5.7.1', text: 'message content rejected' },
  { bit: 1 << 9, soft: false, dsn: '5.7.1', text: 'service denied' },
  { bit: 1 << 16, soft: false, dsn: '5.5.2', text: 'bare <LF> received' },
];

/** Record types (Postfix's rec_type.h). */
const REC = { TIME: 'T', ATTR: 'A', FROM: 'S', RCPT: 'R', MESG: 'M', CONT: 'L', NORM: 'N', XTRA: 'X', END: 'E' } as const;

class Unavailable extends Error {}

export default class PostfixQueue extends Plugin {
  private socketArg = DEFAULT_SOCKET;
  private flags = 0;

  register(_qp: PluginHost, ...args: string[]): void {
    const rest = [...args];
    if (rest[0] !== undefined && (rest[0].startsWith('/') || /^[^/]+:\d+$/.test(rest[0]))) this.socketArg = rest.shift()!;
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i]!;
      if (arg === 'loglevel') {
        i++;
        continue;
      }
      const name = arg.replace(/^CLEANUP_/, '');
      const value = FLAGS[name];
      if (value === undefined) this.log(LOGWARN, `ignoring unknown cleanup flag ${arg}`);
      else this.flags |= value;
    }
  }

  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    const sockets = this.sockets();
    let socket: Socket | undefined;
    let used = '';
    for (const candidate of sockets) {
      try {
        socket = await open(candidate, this.signal);
        used = candidate;
        break;
      } catch (err) {
        this.log(LOGERROR, `cannot connect to cleanup at ${candidate}: ${(err as Error).message}`);
      }
    }
    if (socket === undefined) return [DENYSOFT, '4.3.0 Queue unavailable, try again later'];
    const conn = new CleanupConnection(socket, this.signal);
    try {
      const hello = await conn.readAttributes();
      const qid = hello.get('queue_id');
      if (qid === undefined) throw new Unavailable(`cleanup sent no queue_id (got ${[...hello.keys()].join(', ') || 'nothing'})`);
      let flags = this.flags | FLAG_SMTP_REPLY;
      if (tx.mailParams['smtputf8'] !== undefined || isInternational(tx)) flags |= FLAG_SMTPUTF8;
      this.log(LOGDEBUG, `cleanup at ${used}: queue id ${qid}, flags ${flags}`);
      await conn.write(attributes([['flags', String(flags)]]));
      await conn.write(this.envelope(tx));
      await conn.writeMessage(tx.bodyStream());
      await conn.write(Buffer.concat([record(REC.XTRA, ''), record(REC.END, '')]));
      const result = await conn.readAttributes();
      const status = Number(result.get('status') ?? 'NaN');
      const reason = result.get('reason') ?? '';
      if (!Number.isInteger(status)) throw new Unavailable('cleanup sent no status');
      if (status === 0) {
        this.log(LOGINFO, `queued as ${qid} by cleanup at ${used}`);
        const messageId = (tx.header.get('Message-ID') ?? '').replace(/[\r\n].*/s, '').trim();
        return [OK, clip(`Queued! ${messageId === '' ? '' : messageId + ' '}(Queue-Id: ${qid})`)];
      }
      const known = STATUS.find((s) => (status & s.bit) !== 0);
      const soft = known === undefined || known.soft;
      const text = replyText(reason, known?.dsn ?? (soft ? '4.3.0' : '5.3.0'), known?.text ?? `cleanup status ${status}`);
      this.log(soft ? LOGERROR : LOGWARN, `cleanup at ${used} refused ${qid}: status ${status}${reason ? ` (${reason})` : ''}`);
      return [soft ? DENYSOFT : DENY, text];
    } catch (err) {
      const why = this.signal.aborted ? 'the hook ran out of time (plugin_timeout)' : (err as Error).message;
      this.log(LOGERROR, `cleanup at ${used}: ${why}`);
      return [DENYSOFT, '4.3.0 Queue unavailable, try again later'];
    } finally {
      conn.close();
    }
  }

  /** POSTFIXQUEUE, else config/cleanup_sockets, else the argument. */
  private sockets(): string[] {
    const env = this.env['POSTFIXQUEUE'];
    if (env !== undefined && env !== '') return [env];
    const configured = this.configList('cleanup_sockets').filter((s) => s.trim() !== '');
    return configured.length > 0 ? configured : [this.socketArg];
  }

  /** T, the A records, S, R per recipient, M. */
  private envelope(tx: Transaction): Buffer {
    const now = Date.now();
    const conn = this.connection;
    const name = conn.remoteHost === '' || conn.remoteHost.startsWith('[') ? 'unknown' : conn.remoteHost;
    const ip = conn.remoteIp;
    const proto = conn.hello === 'ehlo' ? 'ESMTP' : 'SMTP';
    const attrs: [string, string][] = [
      ['rewrite_context', 'remote'],
      ['log_client_name', name],
      ['log_client_address', ip],
      ['log_client_port', String(conn.remotePort)],
      ['log_message_origin', `${name}[${ip}]`],
      ...(conn.helloHost !== undefined ? [['log_helo_name', conn.helloHost] as [string, string]] : []),
      ['log_protocol_name', proto],
      ['client_name', name],
      ['reverse_client_name', name],
      ['client_address', ip],
      ['client_port', String(conn.remotePort)],
      ...(conn.helloHost !== undefined ? [['helo_name', conn.helloHost] as [string, string]] : []),
      ['protocol_name', proto],
      ['client_address_type', isIP(ip) === 6 ? '10' : '2'],
    ];
    if (conn.authUser !== undefined) {
      attrs.push(['sasl_method', conn.authMechanism ?? 'unknown'], ['sasl_username', conn.authUser]);
    }
    const parts: Buffer[] = [record(REC.TIME, `${Math.floor(now / 1000)} ${(now % 1000) * 1000}`)];
    for (const [key, value] of attrs) parts.push(record(REC.ATTR, `${key}=${oneLine(value)}`));
    parts.push(record(REC.FROM, tx.sender?.address ?? ''));
    const body = tx.mailParams['body'];
    if (typeof body === 'string') parts.push(record(REC.ATTR, `encoding=${body.toUpperCase() === '8BITMIME' ? '8bit' : '7bit'}`));
    for (const rcpt of tx.recipients) parts.push(record(REC.RCPT, rcpt.address));
    parts.push(record(REC.MESG, ''));
    return Buffer.concat(parts);
  }
}

/** One record: type, length as base-128 digits (low first, high bit = more), data. */
function record(type: string, data: string | Buffer): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const length: number[] = [];
  let rest = bytes.length;
  do {
    let digit = rest & 0x7f;
    rest >>>= 7;
    if (rest !== 0) digit |= 0x80;
    length.push(digit);
  } while (rest !== 0);
  return Buffer.concat([Buffer.from([type.charCodeAt(0), ...length]), bytes]);
}

/** Postfix's attr_print0 format: `name\0value\0` pairs, then `\0`. */
function attributes(pairs: readonly [string, string][]): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join('') + '\0', 'utf8');
}

/** The reply text: cleanup's SMTP reply without its code, else the status's standard text. */
function replyText(reason: string, dsn: string, standard: string): string {
  const text = reason.replace(/^\d{3}[ -]/, '').trim();
  if (text === '') return `${dsn} ${standard}`;
  return clip(/^[245]\.\d{1,3}\.\d{1,3}\s/.test(text) ? text : `${dsn} ${text}`);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\0]/g, ' ');
}

/** Connect to a unix socket path or HOST:PORT. */
function open(where: string, signal: AbortSignal): Promise<Socket> {
  const tcp = /^\[?([^\]/]+?)\]?:(\d+)$/.exec(where);
  return connectWithin(() => (where.startsWith('/') || !tcp ? netConnect({ path: where }) : netConnect({ host: tcp[1]!, port: Number(tcp[2]) })), {
    timeoutMs: TIMEOUT_MS,
    signal,
    timeoutError: () => new Error('no connection in time'),
    abortError: () => new Error('the hook ran out of time'),
  });
}

/** Reads attribute lists and writes records on one connection to cleanup. */
class CleanupConnection {
  private input: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly onAbort = (): void => this.fail(new Error('the hook ran out of time'));

  constructor(
    private readonly socket: Socket,
    private readonly signal: AbortSignal,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.input = Buffer.concat([this.input, chunk]);
      if (this.input.length > 1 << 20) this.fail(new Error('cleanup sent too much'));
      this.wake?.();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('cleanup closed the connection')));
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake?.();
  }

  /** `name\0value\0` ... `\0`. */
  async readAttributes(): Promise<Map<string, string>> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const parsed = parseAttributes(this.input);
      if (parsed !== undefined) {
        this.input = this.input.subarray(parsed.used);
        return parsed.attrs;
      }
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer from cleanup within ${TIMEOUT_MS / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  async write(data: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.socket.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.wake = undefined;
        resolve();
      };
      this.socket.once('drain', done);
      this.wake = done;
    });
    if (this.failure) throw this.failure;
  }

  /** The message as N (and L) records, one per line, line ends removed. */
  async writeMessage(message: Readable): Promise<void> {
    let line: Buffer[] = [];
    let lineLength = 0;
    let batch: Buffer[] = [];
    let batchLength = 0;
    const emit = async (type: string, data: Buffer): Promise<void> => {
      const rec = record(type, data);
      batch.push(rec);
      batchLength += rec.length;
      if (batchLength >= WRITE_BATCH) {
        const out = Buffer.concat(batch, batchLength);
        batch = [];
        batchLength = 0;
        await this.write(out);
      }
    };
    // The hook's signal is checked between chunks; a failure destroys the message stream.
    for await (let chunk of convertStream(message, undefined, this.signal)) {
      for (let nl = chunk.indexOf(LF); ; nl = chunk.indexOf(LF)) {
        const piece = nl === -1 ? chunk : chunk.subarray(0, nl);
        line.push(piece);
        lineLength += piece.length;
        if (nl === -1) break;
        let whole = Buffer.concat(line, lineLength);
        if (whole.length > 0 && whole[whole.length - 1] === CR) whole = whole.subarray(0, whole.length - 1);
        for (; whole.length > RECORD_LIMIT; whole = whole.subarray(RECORD_LIMIT)) await emit(REC.CONT, whole.subarray(0, RECORD_LIMIT));
        await emit(REC.NORM, whole);
        line = [];
        lineLength = 0;
        chunk = chunk.subarray(nl + 1);
      }
      // A very long line: send what cannot be a line end yet (keep a trailing CR back).
      if (lineLength > RECORD_LIMIT * 2) {
        const held = Buffer.concat(line, lineLength);
        const keep = held[held.length - 1] === CR ? 1 : 0;
        let out = held.subarray(0, held.length - keep);
        for (; out.length >= RECORD_LIMIT; out = out.subarray(RECORD_LIMIT)) await emit(REC.CONT, out.subarray(0, RECORD_LIMIT));
        line = [Buffer.from(out), ...(keep ? [Buffer.from([CR])] : [])];
        lineLength = out.length + keep;
      }
    }
    if (lineLength > 0) await emit(REC.NORM, Buffer.concat(line, lineLength));
    if (batchLength > 0) await this.write(Buffer.concat(batch, batchLength));
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.socket.destroy();
  }
}

/** One complete attribute list at the start of `data`, or undefined if it is not all there. */
function parseAttributes(data: Buffer): { attrs: Map<string, string>; used: number } | undefined {
  const attrs = new Map<string, string>();
  let at = 0;
  for (;;) {
    const nameEnd = data.indexOf(0, at);
    if (nameEnd === -1) return undefined;
    const name = data.subarray(at, nameEnd).toString('utf8');
    if (name === '') return { attrs, used: nameEnd + 1 };
    const valueEnd = data.indexOf(0, nameEnd + 1);
    if (valueEnd === -1) return undefined;
    attrs.set(name, data.subarray(nameEnd + 1, valueEnd).toString('utf8'));
    at = valueEnd + 1;
  }
}
