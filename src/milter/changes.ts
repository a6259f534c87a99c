/**
 * The changes a milter asks for at the end of a message, gathered while its replies arrive and
 * carried out on the transaction only when its verdict lets the message go on.
 *
 * A replacement body is written into a new body store as it arrives (memory, then a spool file:
 * never a second full copy in memory), its line ends made CRLF; it replaces the body when the
 * changes are applied, and is thrown away when they are not.
 *
 * What each change does to the transaction:
 *   addheader    a field at the end of the header block
 *   insheader    a field at that position (0: on top), counting every field, our Received too
 *   chgheader    the n-th field of that name (from 1; 0 is taken as 1) gets the new value; an
 *                empty value removes it; a field that is not there is added (as Sendmail does)
 *   addrcpt      a recipient (once: an address already there is not added again); ESMTP
 *                arguments of ADDRCPT_PAR are logged and not kept (a recipient has none here)
 *   delrcpt      every recipient equal to the address
 *   chgfrom      the envelope sender; its ESMTP arguments replace the MAIL parameters
 *   replbody     the new body
 *   quarantine   tx.notes.quarantine = { reason, by } and a header field naming it
 * An address that cannot be parsed is logged and skipped; the rest still applies.
 */
import { ToCrlf } from '../mail/line-ends.ts';
import type { BodyStore } from '../message/body-store.ts';
import { Address } from '../protocol/address.ts';
import { parseParams } from '../protocol/command.ts';
import type { Transaction } from '../session/transaction.ts';
import type { MilterModification } from './responses.ts';

/** What `tx.notes.quarantine` holds after a milter quarantined the message. */
export interface QuarantineNote {
  readonly reason: string;
  /** The plugin (instance) that was told so. */
  readonly by: string;
}

export interface ApplyOptions {
  /** The plugin's name, for the quarantine note. */
  readonly by: string;
  /** The header field that records a quarantine (`X-Quarantine`). */
  readonly quarantineHeader: string;
}

export class MilterChanges {
  private readonly changes: Exclude<MilterModification, { type: 'replbody' }>[] = [];
  private body: BodyStore | undefined;
  private readonly crlf = new ToCrlf();
  private closed = false;

  constructor(private readonly tx: Transaction) {}

  /** True when the milter asked for anything. */
  get empty(): boolean {
    return this.changes.length === 0 && this.body === undefined;
  }

  /** Take one change (the ModificationSink of MilterSession.endOfMessage). */
  async take(mod: MilterModification): Promise<void> {
    if (this.closed) throw new Error('milter changes taken after they were applied or dropped');
    if (mod.type !== 'replbody') {
      this.changes.push(mod);
      return;
    }
    this.body ??= this.tx.newBody();
    const bytes = this.crlf.convert(mod.chunk);
    if (bytes.length > 0) await this.body.append([bytes]);
  }

  /** Carry the changes out on the transaction; returns a line per change for the log. */
  async apply(options: ApplyOptions): Promise<string[]> {
    this.closed = true;
    const tx = this.tx;
    const done: string[] = [];
    for (const change of this.changes) done.push(applyOne(tx, change, options));
    if (this.body !== undefined) {
      const tail = this.crlf.end();
      if (tail.length > 0) await this.body.append([tail]);
      await tx.replaceBody(this.body);
      done.push(`body replaced (${this.body.size} bytes)`);
      this.body = undefined;
    }
    return done;
  }

  /** Throw the changes away (the message was refused, or the milter failed). */
  async drop(): Promise<void> {
    this.closed = true;
    const body = this.body;
    this.body = undefined;
    if (body !== undefined) await body.discard();
  }
}

function applyOne(tx: Transaction, change: Exclude<MilterModification, { type: 'replbody' }>, options: ApplyOptions): string {
  switch (change.type) {
    case 'addheader':
      tx.header.add(change.name, change.value);
      return `header added: ${change.name}`;
    case 'insheader':
      tx.header.add(change.name, change.value, change.index);
      return `header inserted at ${change.index}: ${change.name}`;
    case 'chgheader': {
      const index = Math.max(1, change.index) - 1;
      if (change.value.trim() === '') {
        const removed = tx.header.delete(change.name, index);
        return removed > 0 ? `header removed: ${change.name} #${index + 1}` : `no header ${change.name} #${index + 1} to remove`;
      }
      tx.header.replace(change.name, change.value, index);
      return `header changed: ${change.name} #${index + 1}`;
    }
    case 'addrcpt': {
      const rcpt = parseAddress(change.address);
      if (typeof rcpt === 'string' || rcpt.isNull) return `recipient not added, ${typeof rcpt === 'string' ? rcpt : 'the null address'}: ${change.address}`;
      const args = change.args === undefined ? '' : ` (its arguments "${change.args}" are not kept)`;
      if (tx.recipients.some((r) => r.equals(rcpt))) return `recipient ${rcpt} is already there${args}`;
      tx.addRecipient(rcpt);
      return `recipient added: ${rcpt}${args}`;
    }
    case 'delrcpt': {
      const rcpt = parseAddress(change.address);
      if (typeof rcpt === 'string') return `recipient not removed, ${rcpt}: ${change.address}`;
      const before = tx.recipients.length;
      tx.removeRecipient(rcpt);
      return before > tx.recipients.length ? `recipient removed: ${rcpt}` : `recipient ${rcpt} was not there`;
    }
    case 'chgfrom': {
      const sender = parseAddress(change.address);
      if (typeof sender === 'string') return `sender not changed, ${sender}: ${change.address}`;
      tx.sender = sender;
      if (change.args !== undefined) {
        const parsed = parseParams(change.args);
        if ('error' in parsed) return `sender changed to ${sender}; its arguments were not used (${parsed.error})`;
        tx.mailParams = parsed.params;
      }
      return `sender changed to ${sender}`;
    }
    case 'quarantine': {
      const note: QuarantineNote = { reason: change.reason, by: options.by };
      tx.notes['quarantine'] = note;
      tx.header.add(options.quarantineHeader, change.reason === '' ? `by ${options.by}` : `${change.reason} (by ${options.by})`, 0);
      return `quarantined: ${change.reason}`;
    }
  }
}

/** An address as milters write it: `<a@b>`, or bare `a@b`; the reason when it is no address. */
function parseAddress(text: string): Address | string {
  const trimmed = text.trim();
  const parsed = Address.parse(trimmed.startsWith('<') ? trimmed : `<${trimmed}>`);
  return 'error' in parsed ? parsed.error : parsed;
}
