/**
 * The client side of SpamAssassin's spamd protocol (SPAMC/1.5), the HEADERS command: spamd scores
 * the message and answers with the header block it would give it (its X-Spam-* fields added), so
 * the body never travels back.
 *
 *   HEADERS SPAMC/1.5          SPAMD/1.1 0 EX_OK
 *   Content-length: N          Content-length: M
 *   User: NAME                 Spam: True ; 1003.3 / 5.0
 *                              
 *   <N bytes of message>       <M bytes: the header block>
 *
 * A status other than 0 (EX_OK) is spamd refusing the request (`76 Bad header line`, ...).
 */
import { Buffer } from 'node:buffer';
import type { Transaction } from '../session/transaction.ts';
import { messageSize } from '../mail/envelope.ts';
import { messageSource } from './message.ts';
import { ScanError } from './socket-request.ts';

/** The longest spamd answer taken: a header block, with a report in it at most. */
export const SPAMD_MAX_REPLY = 1024 * 1024;

export interface SpamcRequest {
  /** spamd's `User:` (whose preferences apply); none: spamd's own user. */
  readonly user?: string;
  /** Header lines put in front of the message for spamd only (`X-Envelope-From: <a@b>\r\n`). */
  readonly prefix?: string;
}

/** The request: command, headers, then the message streamed (`prefix` first). */
export async function* spamcHeadersRequest(tx: Transaction, request: SpamcRequest = {}): AsyncGenerator<Buffer> {
  const prefix = Buffer.from(request.prefix ?? '', 'utf8');
  const length = prefix.length + messageSize(tx);
  const user = request.user === undefined ? '' : `User: ${request.user.replace(/[\r\n]/g, '')}\r\n`;
  yield Buffer.from(`HEADERS SPAMC/1.5\r\nContent-length: ${length}\r\n${user}\r\n`, 'utf8');
  yield* messageSource(tx, prefix);
}

/** One header field as spamd wrote it. */
export interface SpamdField {
  readonly name: string;
  /** The value with its folding kept (continuation lines joined by `\n`, their white space kept). */
  readonly folded: string;
  /** The value unfolded into one line. */
  readonly value: string;
}

export interface SpamdReply {
  /** From the `Spam:` line: spamd's verdict. */
  readonly isSpam: boolean;
  readonly score: number;
  /** The user's threshold (`required`). */
  readonly threshold: number;
  /** The header block spamd answered with, field by field. */
  readonly fields: readonly SpamdField[];
}

/** Parse the whole answer; a refusal, a missing `Spam:` line or a short body is a ScanError. */
export function parseSpamdReply(reply: Buffer): SpamdReply {
  const end = reply.indexOf('\r\n\r\n');
  if (end === -1) {
    const first = reply.toString('utf8').split(/\r?\n/)[0] ?? '';
    const status = /^SPAMD\/\S+ (\d+) (.*)$/.exec(first);
    if (status !== null && status[1] !== '0') throw new ScanError(`spamd refused the request: ${status[1]} ${status[2]}`, 'protocol');
    throw new ScanError(`spamd: incomplete answer ${JSON.stringify(first.slice(0, 200))}`, 'protocol');
  }
  const [statusLine = '', ...lines] = reply.subarray(0, end).toString('utf8').split('\r\n');
  const status = /^SPAMD\/\S+ (\d+) (.*)$/.exec(statusLine);
  if (status === null) throw new ScanError(`spamd: not a SPAMD answer: ${JSON.stringify(statusLine.slice(0, 200))}`, 'protocol');
  if (status[1] !== '0') throw new ScanError(`spamd refused the request: ${status[1]} ${status[2]}`, 'protocol');
  let verdict: { isSpam: boolean; score: number; threshold: number } | undefined;
  let length: number | undefined;
  for (const line of lines) {
    const spam = /^Spam:\s*(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*\/\s*(-?[\d.]+)\s*$/i.exec(line);
    if (spam !== null) verdict = { isSpam: /^(true|yes)$/i.test(spam[1]!), score: Number(spam[2]), threshold: Number(spam[3]) };
    const size = /^Content-length:\s*(\d+)\s*$/i.exec(line);
    if (size !== null) length = Number(size[1]);
  }
  if (verdict === undefined) throw new ScanError('spamd: no Spam: line in the answer', 'protocol');
  const body = reply.subarray(end + 4);
  if (length !== undefined && body.length < length) throw new ScanError(`spamd: answer cut short (${body.length} of ${length} bytes)`, 'protocol');
  return { ...verdict, fields: splitFields(body.subarray(0, length ?? body.length).toString('utf8')) };
}

/** The fields of a header block, folding kept; the block ends at its first empty line. */
function splitFields(block: string): SpamdField[] {
  const fields: SpamdField[] = [];
  let current: string[] | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    const first = current[0]!;
    const colon = first.indexOf(':');
    const folded = [first.slice(colon + 1).replace(/^[ \t]+/, ''), ...current.slice(1)].join('\n');
    fields.push({ name: first.slice(0, colon).trim(), folded, value: folded.replace(/\n(?=[ \t])/g, '').trim() });
    current = undefined;
  };
  for (const line of block.split(/\r?\n/)) {
    if (line === '') break;
    if (/^[ \t]/.test(line)) {
      current?.push(line);
      continue;
    }
    flush();
    if (line.indexOf(':') > 0) current = [line];
  }
  flush();
  return fields;
}
