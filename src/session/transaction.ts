/**
 * One mail transaction: from MAIL to the end of the queue step, an RSET, or a rejection.
 * What plugins see as `tx` (the first argument of every hook) and `this.qp.transaction`.
 */
import type { Readable } from 'node:stream';
import type { Address } from '../protocol/address.ts';
import type { EsmtpParams } from '../protocol/command.ts';
import { Header } from '../message/header.ts';
import { BodyStore, readableOf, type BodyStoreOptions } from '../message/body-store.ts';

const CRLF = Buffer.from('\r\n');

export class Transaction {
  /** Unique in this process: `<connection id>.<n>`; used in logs and the Received header. */
  readonly id: string;
  /** The envelope sender; the null sender `<>` has `address === ''`. Undefined before MAIL. */
  sender: Address | undefined;
  /** The MAIL FROM parameters (`size`, `body`, `smtputf8`, ...). */
  mailParams: EsmtpParams = {};
  /** Accepted recipients, in order. */
  recipients: Address[] = [];
  /** Plain object for plugins to share state for the length of this transaction. */
  readonly notes: Record<string, unknown> = {};
  /** The header block; empty until the header of the message has arrived (`data_headers_end`). */
  header: Header = new Header();
  /** Bytes of message data received (after dot-unstuffing). */
  dataSize = 0;
  /** Fragments for the Authentication-Results header (`spf=pass smtp.mailfrom=...`). */
  readonly authResults: string[] = [];
  private store: BodyStore | undefined;

  constructor(
    id: string,
    private readonly storeOptions: () => BodyStoreOptions,
  ) {
    this.id = id;
  }

  addRecipient(address: Address): void {
    this.recipients.push(address);
  }

  /** Remove every recipient equal to `address` (local part exact, domain case-insensitive). */
  removeRecipient(address: Address): void {
    this.recipients = this.recipients.filter((r) => !r.equals(address));
  }

  /** The body store, created on first use (the session writes the message into it). */
  get body(): BodyStore {
    this.store ??= new BodyStore(this.storeOptions());
    return this.store;
  }

  /** True once message data was received or written. */
  get hasBody(): boolean {
    return this.store !== undefined;
  }

  /**
   * Append text to the body. Line ends are written as CRLF, like the rest of the message. From
   * `data_post` on this adds at the very end of the message (a footer).
   */
  async bodyWrite(data: string | Buffer): Promise<void> {
    const text = typeof data === 'string' ? data : data.toString('latin1');
    const crlf = text.replace(/\r?\n|\r/g, '\r\n');
    const bytes = typeof data === 'string' ? Buffer.from(crlf, 'utf8') : Buffer.from(crlf, 'latin1');
    await this.body.append([bytes]);
  }

  /** The body (the part after the header block) as text. */
  async bodyAsString(): Promise<string> {
    if (this.store === undefined) return '';
    return (await this.store.toBuffer()).toString('utf8');
  }

  /** Body size in bytes (without the header block). */
  get bodyLength(): number {
    return this.store?.size ?? 0;
  }

  /** The message as it will be queued: the header block, an empty line, the body; CRLF line ends. */
  bodyStream(): Readable {
    const head = Buffer.concat([this.header.toBuffer(), CRLF]);
    // A reader that gives up destroys the stream, and with it the spool file's handle.
    return this.store === undefined ? readableOf([head]) : this.store.stream(head);
  }

  /**
   * An empty body store like the transaction's own (memory up to the threshold, then a spool
   * file), for a new body that is to replace the message's: append to it, then `replaceBody`.
   * Discard it yourself if it is not used.
   */
  newBody(): BodyStore {
    return new BodyStore(this.storeOptions());
  }

  /**
   * Put `store` (from `newBody()`, with CRLF line ends) in place of the body; the old body and
   * its spool file are discarded. The header block is not touched. Not while a stream of the old
   * body is still being read.
   */
  async replaceBody(store: BodyStore): Promise<void> {
    const old = this.store;
    this.store = store;
    if (old !== undefined && old !== store) await old.discard();
  }

  /** A path to a file holding the body (it is spooled if it was in memory), for external scanners. */
  async bodyFilename(): Promise<string> {
    return this.body.toFile();
  }

  /** Drop the stored message (spool file included). */
  async discard(): Promise<void> {
    const store = this.store;
    this.store = undefined;
    if (store) await store.discard();
  }
}
