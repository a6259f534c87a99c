/**
 * Replies of a server we talk to as a client (SMTP, LMTP; RFC 5321 §4.2, RFC 2033): reading them
 * from the bytes that arrive, and turning them into text and verdicts for our own client.
 *
 * - ReplyParser: bytes in, complete replies out (multi-line replies joined), with limits on the
 *   length of a line and the number of lines in one reply.
 * - enhancedCode, stripEnhancedCode, clipReplyText, describeReply: the pieces of a reply text.
 * - parseExtensions: the keywords of an EHLO/LHLO reply.
 * - refusedRecipients, recipientRefusalText: recipients a server refused, as one reply text.
 * - replyRefusal, MailRefusal: a refusal of the message as a whole, to pass on to our client.
 */
import { Buffer } from 'node:buffer';
import type { Address } from '../protocol/address.ts';

const CR = 0x0d;
const LF = 0x0a;

/** One reply of the server. */
export interface ServerReply {
  readonly code: number;
  /** Text of each line, without the code and separator. */
  readonly lines: readonly string[];
}

/** Longest reply line accepted, and most lines in one reply. */
export const MAX_REPLY_LINE = 8192;
export const MAX_REPLY_LINES = 200;

/**
 * Assembles replies from the bytes a server sends. Lines end in CRLF or LF; `123-text` continues a
 * reply, `123 text` (or `123text`, `123`) ends it. After an error (a line that is not a reply, a
 * line or reply too long) the parser stays failed: nothing more is parsed.
 */
export class ReplyParser {
  private pending: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private failed: string | undefined;

  /** `protocol` names the protocol in error texts (`not an SMTP reply`). */
  constructor(
    private readonly protocol = 'SMTP',
    private readonly maxLine = MAX_REPLY_LINE,
    private readonly maxLines = MAX_REPLY_LINES,
  ) {}

  /** The replies completed by `chunk`, in order, and an error text if a line was bad (parsing stops there). */
  push(chunk: Buffer): { replies: ServerReply[]; error?: string } {
    const replies: ServerReply[] = [];
    if (this.failed !== undefined) return { replies };
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    for (let nl = data.indexOf(LF); nl !== -1; nl = data.indexOf(LF)) {
      const end = nl > 0 && data[nl - 1] === CR ? nl - 1 : nl;
      const reply = this.line(data.subarray(0, end).toString('utf8'));
      if (this.failed !== undefined) return { replies, error: this.failed };
      if (reply !== undefined) replies.push(reply);
      data = data.subarray(nl + 1);
    }
    if (data.length > this.maxLine) {
      this.failed = 'reply line too long';
      return { replies, error: this.failed };
    }
    this.pending = Buffer.from(data);
    return { replies };
  }

  /** Forget the bytes of an unfinished line (after STARTTLS: nothing sent before the handshake counts). */
  dropPending(): void {
    this.pending = Buffer.alloc(0);
  }

  private line(text: string): ServerReply | undefined {
    const m = /^(\d{3})([ -]?)(.*)$/s.exec(text);
    if (!m || text.length > this.maxLine) {
      this.failed = `not an ${this.protocol} reply: ${text.slice(0, 100)}`;
      return undefined;
    }
    this.lines.push(m[3]!);
    if (m[2] === '-') {
      if (this.lines.length > this.maxLines) this.failed = 'reply with too many lines';
      return undefined;
    }
    const reply: ServerReply = { code: Number(m[1]), lines: this.lines };
    this.lines = [];
    return reply;
  }
}

/** The enhanced status code (RFC 3463) at the start of the reply, if its class matches the code. */
export function enhancedCode(reply: ServerReply): string | undefined {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/.exec(reply.lines[0] ?? '');
  if (!m || Number(m[1]) !== Math.floor(reply.code / 100)) return undefined;
  return `${m[1]}.${m[2]}.${m[3]}`;
}

/** The text without a leading enhanced status code, trimmed. */
export function stripEnhancedCode(text: string): string {
  return text.replace(/^[245]\.\d{1,3}\.\d{1,3}\s*/, '').trim();
}

/** A text for our client's reply: printable ASCII only (others become `?`), at most 400 characters. */
export function clipReplyText(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 400 ? clean.slice(0, 397) + '...' : clean;
}

/** `code text` of a reply on one line, at most 300 characters: for logs and error messages. */
export function describeReply(reply: ServerReply): string {
  return `${reply.code} ${reply.lines.join(' ')}`.slice(0, 300);
}

/** The extensions of a 250 reply to EHLO or LHLO: keyword (upper case) to its parameters. */
export function parseExtensions(reply: ServerReply): Map<string, string> {
  const extensions = new Map<string, string>();
  for (const line of reply.lines.slice(1)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
    if (m) extensions.set(m[1]!.toUpperCase(), m[2] ?? '');
  }
  return extensions;
}

/** A recipient and the server's reply to it. */
export interface RefusedRecipient {
  readonly rcpt: Address;
  readonly reply: ServerReply;
}

/** The recipients whose RCPT reply was neither 250 nor 251, with their replies (in order). */
export function refusedRecipients(recipients: readonly Address[], replies: readonly ServerReply[]): RefusedRecipient[] {
  return recipients.map((rcpt, i) => ({ rcpt, reply: replies[i]! })).filter(({ reply }) => reply.code !== 250 && reply.code !== 251);
}

/**
 * One reply text for refused recipients: the first one's enhanced code (else `fallbackEnhanced`),
 * `prefix`, then up to five `<rcpt>: reason` (the reason alone when it names the address), `;`
 * between them, `and N more` for the rest. Clipped for our client.
 */
export function recipientRefusalText(refused: readonly RefusedRecipient[], fallbackEnhanced: string, prefix = ''): string {
  const one = ({ rcpt, reply }: RefusedRecipient): string => {
    const text = stripEnhancedCode(reply.lines.join(' '));
    return text.includes(rcpt.address) ? text : `${String(rcpt)}: ${text}`;
  };
  const list = refused.slice(0, 5).map(one).join('; ') + (refused.length > 5 ? `; and ${refused.length - 5} more` : '');
  const enhanced = (refused[0] !== undefined ? enhancedCode(refused[0].reply) : undefined) ?? fallbackEnhanced;
  return clipReplyText(`${enhanced} ${prefix}${list}`);
}

/** A result for our client that ends the dialogue: permanent (5xx) or temporary (4xx), and the text. */
export class MailRefusal extends Error {
  constructor(
    readonly permanent: boolean,
    readonly text: string,
  ) {
    super(text);
  }
}

/**
 * The server refused the message as a whole: 5xx is permanent, anything else temporary. The text
 * is the server's (its enhanced code, else 5.0.0/4.0.0), or `fallbackText` when it gave none.
 */
export function replyRefusal(reply: ServerReply, fallbackText: string): MailRefusal {
  const permanent = reply.code >= 500 && reply.code <= 599;
  const enhanced = enhancedCode(reply) ?? (permanent ? '5.0.0' : '4.0.0');
  const text = stripEnhancedCode(reply.lines.join(' ')) || fallbackText;
  return new MailRefusal(permanent, clipReplyText(`${enhanced} ${text}`));
}
