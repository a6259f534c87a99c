/**
 * The message as content scanners get it: streamed from the transaction (memory or spool file)
 * as it will be queued — the header block with what earlier plugins added, the empty line, the
 * body, CRLF line ends — never gathered into one second copy in memory.
 */
import { Buffer } from 'node:buffer';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { messageSize } from '../mail/envelope.ts';
import { LOGINFO } from '../log/levels.ts';
import type { Plugin } from '../plugins/plugin.ts';
import type { Transaction } from '../session/transaction.ts';

/** The message's bytes, optionally after `prefix` (spamd's X-Envelope-From line). */
export async function* messageSource(tx: Transaction, prefix?: Buffer | string): AsyncGenerator<Buffer> {
  if (prefix !== undefined && prefix.length > 0) yield typeof prefix === 'string' ? Buffer.from(prefix, 'utf8') : prefix;
  for await (const chunk of tx.bodyStream()) yield chunk as Buffer;
}

/**
 * True (and a `skip, too large` log line) when the message is over `limit` bytes; 0 means no
 * limit. The size is the message as queued (`messageSize`).
 */
export function overSizeLimit(plugin: Plugin, tx: Transaction, limit: number): boolean {
  if (limit <= 0) return false;
  const size = messageSize(tx);
  if (size <= limit) return false;
  plugin.log(LOGINFO, `skip, too large (${size} > ${limit} bytes)`);
  return true;
}

/**
 * Has the message MIME parts (a multipart Content-Type with a boundary)? The test qpsmtpd's virus
 * scanners use to leave plain messages alone unless told to scan everything.
 */
export function isMultipart(tx: Transaction): boolean {
  const type = tx.header.get('Content-Type');
  return type !== undefined && /\bmultipart\/.*\bboundary="?[^"]+/is.test(type);
}

/** A copy of the message in a file of its own, for scanners that take a path; remove it with `remove()`. */
export interface MessageFile {
  readonly path: string;
  remove(): Promise<void>;
}

/**
 * Write the message (streamed) to a new file in `dir`, readable by its group too (a scanner that
 * runs as another user in the qpsmtpd group can read it), and return it. Aborting `signal` stops
 * the copy (the file is removed).
 */
export async function writeMessageFile(tx: Transaction, dir: string, signal: AbortSignal): Promise<MessageFile> {
  const path = join(dir, `scan-${tx.id.replace(/[^\w.-]/g, '_')}-${process.hrtime.bigint()}.eml`);
  const remove = (): Promise<void> => rm(path, { force: true });
  try {
    await pipeline(tx.bodyStream(), createWriteStream(path, { flags: 'wx', mode: 0o640 }), { signal });
  } catch (err) {
    await remove();
    throw err;
  }
  return { path, remove };
}
