/**
 * The envelope of a transaction as a client sends it on (SMTP, LMTP): the MAIL FROM command with
 * the parameters the original had, where the server understands them, and the RCPT commands.
 */
import type { Address } from '../protocol/address.ts';
import type { Transaction } from '../session/transaction.ts';

/** Bytes of the message as queued: the header block, the blank line, the body. */
export function messageSize(tx: Transaction): number {
  return tx.header.toBuffer().length + 2 + tx.bodyLength;
}

/** True when the sender or one of `recipients` has a non-ASCII address (needs SMTPUTF8). */
export function isInternational(tx: Transaction, recipients: readonly Address[] = tx.recipients): boolean {
  return (tx.sender?.isInternational ?? false) || recipients.some((r) => r.isInternational);
}

/**
 * `MAIL FROM:<sender>` with SIZE (when the server offers it), BODY=8BITMIME (when the client sent
 * it and the server offers 8BITMIME) and SMTPUTF8 (when the client sent it, or an address needs
 * it, and the server offers it). `extensions` are the server's EHLO/LHLO keywords (upper case).
 * Undefined when the sender or one of `recipients` needs SMTPUTF8 and the server lacks it.
 */
export function mailFromCommand(tx: Transaction, recipients: readonly Address[], extensions: ReadonlyMap<string, string>): string | undefined {
  const sender = tx.sender;
  const params: string[] = [];
  if (extensions.has('SIZE')) params.push(`SIZE=${messageSize(tx)}`);
  const body = tx.mailParams['body'];
  if (typeof body === 'string' && body.toUpperCase() === '8BITMIME' && extensions.has('8BITMIME')) params.push('BODY=8BITMIME');
  const international = isInternational(tx, recipients);
  if (tx.mailParams['smtputf8'] !== undefined || international) {
    if (extensions.has('SMTPUTF8')) params.push('SMTPUTF8');
    else if (international) return undefined;
  }
  return `MAIL FROM:${sender === undefined ? '<>' : String(sender)}${params.map((p) => ' ' + p).join('')}`;
}

/** `RCPT TO:<recipient>` for each recipient. */
export function rcptCommands(recipients: readonly Address[]): string[] {
  return recipients.map((r) => `RCPT TO:${String(r)}`);
}
