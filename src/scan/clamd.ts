/**
 * clamd's protocol (ClamAV's scan daemon), the two commands a mail scanner needs:
 *   zINSTREAM\0  then the data as chunks, each after its length (4 bytes, network order), then a
 *                zero length; the answer `stream: OK\0`, `stream: NAME FOUND\0` or `... ERROR\0`.
 *   zVERSION\0   the answer `ClamAV 1.4.6/27000/...\0`.
 * The `z` form ends every answer with a NUL, so the answer is complete without waiting for the
 * close. clamd refuses a stream longer than its StreamMaxLength (default 25 MB) with
 * `INSTREAM size limit exceeded. ERROR`: keep the plugin's size limit below it.
 */
import { Buffer } from 'node:buffer';
import type { Transaction } from '../session/transaction.ts';
import { messageSource } from './message.ts';
import { ScanError } from './socket-request.ts';
import type { VirusVerdict } from './policy.ts';

/** The longest clamd answer taken (a virus name is short; a few kilobytes is generous). */
export const CLAMD_MAX_REPLY = 4096;

/** The INSTREAM request for the message, framed chunk by chunk as it is read. */
export async function* clamdInstream(tx: Transaction): AsyncGenerator<Buffer> {
  yield Buffer.from('zINSTREAM\0', 'latin1');
  for await (const chunk of messageSource(tx)) {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(chunk.length, 0);
    yield length;
    yield chunk;
  }
  yield Buffer.alloc(4);
}

/** A `z` command's answer is complete at its NUL. */
export function clamdReplyComplete(reply: Buffer): boolean {
  return reply.includes(0);
}

/** The verdict in an INSTREAM answer; an ERROR answer, or anything else, is a ScanError. */
export function parseClamdScan(reply: Buffer): VirusVerdict {
  const text = clamdText(reply);
  if (/^stream: OK$/.test(text)) return { clean: true };
  const found = /^stream: (.+) FOUND$/.exec(text);
  if (found !== null) return { clean: false, name: found[1]! };
  if (/ ERROR$/.test(text)) throw new ScanError(`clamd: ${text}`, 'protocol');
  throw new ScanError(`clamd: unexpected answer ${JSON.stringify(text.slice(0, 200))}`, 'protocol');
}

/** `ClamAV 1.4.6` from a VERSION answer (the engine, without the database version and date). */
export function parseClamdVersion(reply: Buffer): string {
  const text = clamdText(reply);
  if (!/^ClamAV /.test(text)) throw new ScanError(`clamd: unexpected VERSION answer ${JSON.stringify(text.slice(0, 200))}`, 'protocol');
  return text.split('/')[0]!;
}

function clamdText(reply: Buffer): string {
  const end = reply.indexOf(0);
  return reply
    .subarray(0, end === -1 ? reply.length : end)
    .toString('utf8')
    .trim();
}
