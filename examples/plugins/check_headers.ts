// The talk's "Headerprüfung": a content filter on data_post that reads the parsed header.
// Refuses a message that is empty, has no From or no Date, or whose Date cannot be parsed or is
// more than 7 days old (or more than 2 days ahead: a broken clock or a spammer's trick).
//
// "Empty" is the talk's test, data_size == 0: dataSize counts the bytes the client sent, so the
// Received header the core has added by now does not make a message non-empty. A message with
// a header and no body is not empty (RFC 5322 allows it).
import { Plugin, DECLINED, DENY } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';

const DAY = 24 * 60 * 60 * 1000;

export default class CheckHeaders extends Plugin {
  hook_data_post(tx: Transaction) {
    if (tx.dataSize === 0) return [DENY, 'No message content'];
    if (!tx.header.get('From')) return [DENY, 'No From header'];
    const date = tx.header.get('Date');
    if (!date) return [DENY, 'No Date header'];
    const problem = checkDate(date);
    if (problem) return [DENY, problem];
    return DECLINED;
  }
}

function checkDate(date: string): string | undefined {
  const time = Date.parse(date);
  if (Number.isNaN(time)) return 'Date header cannot be parsed';
  if (time < Date.now() - 7 * DAY) return 'Message is too old';
  if (time > Date.now() + 2 * DAY) return 'Message is dated in the future';
  return undefined;
}
