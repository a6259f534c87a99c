/**
 * queue/discard: accept every message and throw it away (qpsmtpd's and Haraka's `queue/discard`).
 *
 *   WARNING: THIS PLUGIN LOSES MAIL. The client is told `250 Queued (discarded)` and the message is
 *   gone. It exists for benchmarks (`npm run bench`) and tests; never list it on a server that
 *   receives real mail.
 *
 * The message is read to its end through `tx.bodyStream()` (the header block, then the body, from
 * memory or from the spool file) before the answer, so a benchmark pays for the same work as a
 * real queue plugin that streams the message somewhere; only the writing is left out.
 *
 * Answers OK `Queued (discarded)`. A transaction without recipients (a plugin removed them all)
 * is declined, as queue/maildir does, so an OK never stands for a message nobody was to get.
 *
 * Arguments: none. Config files: none. Hooks: queue.
 */
import { finished } from 'node:stream/promises';
import { Plugin, DECLINED, OK, LOGWARN } from 'qpsmtpd';
import type { HookResult, Transaction } from 'qpsmtpd';

export default class QueueDiscard extends Plugin {
  async hook_queue(tx: Transaction): Promise<HookResult> {
    if (tx.recipients.length === 0) {
      this.log(LOGWARN, 'no recipients left: declining');
      return DECLINED;
    }
    // Read to the end and drop each chunk: the work of a queue, without the writing. Flowing mode
    // rather than `for await`, which costs a promise per chunk. (No AbortSignal check: reading our
    // own spool cannot hang, and a late answer is ignored by the runner anyway.)
    await finished(tx.bodyStream().resume());
    return [OK, 'Queued (discarded)'];
  }
}
