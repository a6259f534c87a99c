/**
 * MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY (RFC 6152) and SMTPUTF8 (RFC 6531).
 * As in qpsmtpd, MAIL always starts a new transaction.
 */
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';
import { parseEnvelopeArgument } from './envelope.ts';

export async function mail(s: Session, rest: string): Promise<void> {
  if (s.connection.hello === undefined) {
    s.send(CORE.needHello());
    return;
  }
  await s.resetTransaction();
  const arg = await parseEnvelopeArgument(s, 'mail', rest);
  if (!arg.ok) {
    s.send(arg.stage === 'fault' ? CORE.pluginFault() : arg.stage === 'syntax' ? CORE.paramSyntax(arg.reason) : CORE.badSender(arg.reason));
    return;
  }
  const { address, params } = arg;

  const body = params['body'];
  if (body !== undefined && (body === true || !/^(7BIT|8BITMIME)$/i.test(body))) {
    s.send(CORE.badBody());
    return;
  }
  if (params['smtputf8'] !== undefined && params['smtputf8'] !== true) {
    s.send(CORE.paramSyntax('SMTPUTF8 takes no value'));
    return;
  }
  if (address.isInternational && params['smtputf8'] === undefined) {
    s.send(CORE.needSmtputf8());
    return;
  }
  // SIZE is checked here, before any plugin runs, so an oversized message is never transferred.
  const databytes = s.numberSetting('databytes', 0);
  const size = params['size'];
  if (size !== undefined) {
    if (size === true || !/^\d{1,20}$/.test(size)) {
      s.send(CORE.paramSyntax('SIZE must be a number'));
      return;
    }
    if (databytes > 0 && Number(size) > databytes) {
      s.send(CORE.sizeTooBig(databytes));
      return;
    }
  }

  const outcome = await s.hook('mail', [address, params]);
  const decision = await s.answer('mail', outcome, { address: String(address) });
  if (decision.accept) {
    s.transaction.sender = address;
    s.transaction.mailParams = params;
  }
}
