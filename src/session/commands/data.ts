/**
 * DATA (RFC 5321 §4.1.1.4) and what follows the final dot: the content hooks and the queue.
 *
 * The message is read through the DataFramer (only `<CRLF>.<CRLF>` ends it) into the assembler,
 * which parses the header block and stores the body (spooled to disk past `size_threshold`).
 * Bytes after the final dot stay in the line reader: pipelined commands are served next.
 * A message is acknowledged (250) only when a queue plugin answered OK, which it does only once
 * the message is durable.
 */
import { DataFramer, type BareLineEndPolicy } from '../../protocol/data-framer.ts';
import { MessageAssembler } from '../../message/assembler.ts';
import { LOGERROR, LOGINFO, LOGWARN } from '../../log/levels.ts';
import type { HookOutcome } from '../../hooks/runner.ts';
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';
import { addTraceHeaders } from '../trace-headers.ts';
import { FAULT } from '../../hooks/runner.ts';

/** How much message data may pass between two memory reliefs (see util/memory-relief.ts). */
const RELIEF_EVERY_BYTES = 2 * 1024 * 1024;
const DEFAULT_MAX_HEADER_SIZE = 256 * 1024;
const DEFAULT_MAX_HEADER_FIELDS = 1000;
/** Seconds the whole DATA phase may take (RFC 5321 §4.5.3.2.6 suggests 10 minutes per line wait). */
const DEFAULT_DATA_TIMEOUT_S = 1800;

export async function data(s: Session, _rest: string): Promise<void> {
  const outcome = await s.hook('data', []);
  const decision = await s.answer('data', outcome);
  if (!decision.accept) return;
  const tx = s.transaction;
  if (tx.sender === undefined) {
    s.send(CORE.dataNeedsMail());
    return;
  }
  if (tx.recipients.length === 0) {
    s.send(CORE.dataNeedsRcpt());
    return;
  }
  // RFC 2920 §3.1: DATA ends a pipelined group, and the client must wait for 354 before sending
  // the message. Bytes already here are a client that did not wait: refuse them rather than
  // guess where a message begins.
  if (s.lines.bufferedBytes > 0 || s.input.hasPending) {
    s.send(CORE.contentBeforeGo());
    s.disconnect();
    return;
  }
  s.send(CORE.startData());
  const received = await receiveMessage(s);
  if (received === 'lost') return;
  await afterDot(s, received);
}

interface Received {
  readonly bareLineEnds: number;
  readonly policy: 'reject' | 'normalize';
  readonly tooBig: boolean;
  readonly headerTooBig: boolean;
  /** Storing the message failed (spool disk full ...): it was read to its end and is refused. */
  readonly storeError: Error | undefined;
  /** A reply owed by `data_headers_end` (a plugin fault), sent after the final dot. */
  readonly headerFault: HookOutcome | undefined;
}

/** Read the message up to its final dot. 'lost' when the client went away or was disconnected. */
async function receiveMessage(s: Session): Promise<Received | 'lost'> {
  const tx = s.transaction;
  const policy = s.config('bare_newline') === 'normalize' ? 'normalize' : 'reject';
  const assembler = new MessageAssembler(tx.body, {
    maxBytes: s.numberSetting('databytes', 0),
    maxHeaderBytes: s.numberSetting('max_header_size', DEFAULT_MAX_HEADER_SIZE),
    maxHeaderFields: s.numberSetting('max_header_fields', DEFAULT_MAX_HEADER_FIELDS),
  });
  // One deadline for the whole message, however slowly it trickles in (slowloris).
  const deadline = Date.now() + s.numberSetting('data_timeout', DEFAULT_DATA_TIMEOUT_S) * 1000;
  const framerPolicy: BareLineEndPolicy = policy === 'normalize' ? 'normalize' : 'keep';
  const framer = new DataFramer((part) => assembler.write(part), framerPolicy);
  let headersEnded = false;
  let headerFault: HookOutcome | undefined;

  const headersEnd = async (): Promise<boolean> => {
    headersEnded = true;
    tx.header = assembler.parsedHeader!;
    const outcome = await s.hook('data_headers_end', []);
    if (outcome.code === FAULT) {
      headerFault = outcome;
      return true;
    }
    const decision = await s.answer('data_headers_end', outcome);
    return !decision.close;
  };

  let chunk: Buffer | null = s.lines.take();
  let sinceRelief = 0;
  for (;;) {
    sinceRelief += chunk.length;
    if (sinceRelief >= RELIEF_EVERY_BYTES) {
      sinceRelief = 0;
      s.relieveMemory();
    }
    const rest = chunk.length > 0 ? framer.feed(chunk) : undefined;
    const stored = assembler.flush();
    if (stored) await stored;
    if (!headersEnded && assembler.parsedHeader !== undefined && !assembler.tooBig && !assembler.headerTooBig) {
      if (!(await headersEnd())) return 'lost';
    }
    if (rest !== undefined) {
      s.lines.push(rest);
      break;
    }
    chunk = await s.readChunk(false, deadline);
    if (chunk === null) {
      s.log(LOGINFO, 'DATA ended without its final dot (connection lost or timed out): nothing of the message is kept');
      await s.resetTransaction();
      return 'lost';
    }
  }

  const finished = assembler.finish();
  if (finished) await finished;
  tx.dataSize = assembler.dataSize;
  if (!headersEnded && !assembler.headerTooBig) {
    tx.header = assembler.parsedHeader!;
    if (!assembler.tooBig && !(await headersEnd())) return 'lost';
  }
  return {
    bareLineEnds: framer.bareLineEnds,
    policy,
    tooBig: assembler.tooBig,
    headerTooBig: assembler.headerTooBig,
    storeError: assembler.storeError,
    headerFault,
  };
}

/** The final dot was seen: reject, or run the content hooks and the queue. */
async function afterDot(s: Session, received: Received): Promise<void> {
  if (received.tooBig) {
    s.log(LOGINFO, `message of ${s.transaction.dataSize} bytes refused: over databytes`);
    s.send(CORE.messageTooBig());
    await s.resetTransaction();
    return;
  }
  if (received.storeError) {
    const full = /ENOSPC|EDQUOT/.test((received.storeError as NodeJS.ErrnoException).code ?? '');
    s.log(LOGERROR, `cannot spool the message: ${received.storeError.message}`);
    s.send(full ? CORE.spoolFull() : CORE.spoolFailed());
    await s.resetTransaction();
    return;
  }
  if (received.headerTooBig) {
    s.log(LOGINFO, 'message refused: its header block is over max_header_size or max_header_fields');
    s.send(CORE.headerTooBig());
    await s.resetTransaction();
    return;
  }
  if (received.bareLineEnds > 0 && received.policy === 'reject') {
    s.log(LOGWARN, `message with ${received.bareLineEnds} bare CR/LF refused (bare_newline reject)`);
    s.send(CORE.bareLineEndInData());
    await s.resetTransaction();
    return;
  }
  if (received.headerFault) {
    await s.answer('data_headers_end', received.headerFault);
    return;
  }

  const postHeaders = await s.hook('data_post_headers', []);
  if (!(await s.answer('data_post_headers', postHeaders)).accept) return;
  await addTraceHeaders(s);

  const post = await s.hook('data_post', []);
  if (!(await s.answer('data_post', post)).accept) return;

  const pre = await s.hook('queue_pre', []);
  if (!(await s.answer('queue_pre', pre)).accept) return;

  const queued = await s.hook('queue', []);
  // queue_post sees the reply's outcome and the transaction before it is dropped.
  await s.answer('queue', queued, {}, async () => {
    s.flush();
    await s.hookIgnoringResult('queue_post', []);
  });
}
