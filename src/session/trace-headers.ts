/**
 * The header fields the core adds to every accepted message: Received (RFC 5321 §4.4, overridable
 * through the `received_line` hook) and Authentication-Results (RFC 8601) when plugins or AUTH have
 * something to say.
 */
import { OK } from '../hooks/codes.ts';
import { claimsAuthservId, ownAuthservId } from '../message/auth-results.ts';
import { rfc5322Date } from '../message/date.ts';
import type { Session } from './session.ts';

/** RFC 3848: SMTP, ESMTP, and the S (TLS) and A (authenticated) variants. */
export function smtpProtocol(s: Session): string {
  const c = s.connection;
  if (c.hello !== 'ehlo') return 'SMTP';
  return 'ESMTP' + (c.tls ? 'S' : '') + (c.authUser !== undefined ? 'A' : '');
}

export async function addTraceHeaders(s: Session): Promise<void> {
  addAuthenticationResults(s);
  const header = s.transaction.header;
  header.add('Received', await receivedValue(s), 0);
}

async function receivedValue(s: Session): Promise<string> {
  const c = s.connection;
  const proto = smtpProtocol(s);
  const authComment = c.authUser !== undefined ? `(smtp-auth username ${c.authUser}, mechanism ${c.authMechanism ?? 'unknown'})` : '';
  const tlsComment = c.tls ? `(${c.tls.protocol} ${c.tls.cipher} encrypted)` : '';
  const outcome = await s.hook('received_line', [proto, authComment, tlsComment]);
  if (outcome.code === OK && outcome.message !== undefined && outcome.message.length > 0) {
    return outcome.message.join('\n');
  }
  const tx = s.transaction;
  const helo = c.helloHost ?? 'unknown';
  const lines = [
    `from ${helo} (${c.describe()})${authComment ? ' ' + authComment : ''}`,
    `by ${s.me} (qpsmtpd/${s.version}) with ${proto}${tlsComment ? ' ' + tlsComment : ''} id ${tx.id}`,
  ];
  // Naming the recipient only when there is one keeps the others of a multi-recipient message private.
  const only = tx.recipients.length === 1 ? tx.recipients[0] : undefined;
  if (only !== undefined) lines.push(`for ${String(only)}; ${rfc5322Date()}`);
  else lines[lines.length - 1] += `; ${rfc5322Date()}`;
  return lines.join('\n');
}

/**
 * Authentication-Results for this hop. Incoming fields that claim our authserv-id are renamed to
 * Original-Authentication-Results: a sender must not be able to forge our verdicts (RFC 8601 §5).
 */
function addAuthenticationResults(s: Session): void {
  const authservId = ownAuthservId(s);
  if (authservId === 'none') return;
  const header = s.transaction.header;
  // The id is read past comments and quotes: `(x) "mx.example";` claims mx.example too.
  header.rename('Authentication-Results', 'Original-Authentication-Results', (value) => claimsAuthservId(value, authservId));

  const c = s.connection;
  const fragments: string[] = [];
  if (c.authUser !== undefined) fragments.push(`auth=pass (${(c.authMechanism ?? '').toLowerCase()}) smtp.auth=${c.authUser}`);
  fragments.push(...c.authResults, ...s.transaction.authResults);
  if (fragments.length === 0) return;
  header.add('Authentication-Results', [`${authservId};`, ...fragments.map((f, i) => (i < fragments.length - 1 ? `${f};` : f))].join('\n'), 0);
}
