/**
 * RCPT TO (RFC 5321 §4.1.1.3). Accepted only when a plugin says OK: when every plugin declines,
 * the reply table answers 450, so nobody relays by accident.
 */
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';
import { parseEnvelopeArgument } from './envelope.ts';

const DEFAULT_MAX_RCPTS = 100;

export async function rcpt(s: Session, rest: string): Promise<void> {
  const arg = await parseEnvelopeArgument(s, 'rcpt', rest);
  if (!arg.ok && arg.stage !== 'address') {
    s.send(arg.stage === 'fault' ? CORE.pluginFault() : CORE.paramSyntax(arg.reason));
    return;
  }
  const tx = s.transaction;
  if (tx.sender === undefined) {
    s.send(CORE.needMail());
    return;
  }
  if (!arg.ok) {
    s.send(CORE.badRecipient(arg.reason));
    return;
  }
  const { address, params } = arg;
  // RFC 5321 §4.5.3.1.8: a server may refuse recipients past its limit with 452; the client
  // sends the rest in another transaction.
  if (tx.recipients.length >= s.numberSetting('max_rcpts', DEFAULT_MAX_RCPTS)) {
    s.send(CORE.tooManyRecipients());
    return;
  }
  if (address.isNull) {
    s.send(CORE.nullRecipient());
    return;
  }
  if (address.isInternational && tx.mailParams['smtputf8'] === undefined) {
    s.send(CORE.needSmtputf8());
    return;
  }
  const outcome = await s.hook('rcpt', [address, params]);
  const decision = await s.answer('rcpt', outcome, { address: String(address) });
  if (decision.accept) tx.addRecipient(address);
}
