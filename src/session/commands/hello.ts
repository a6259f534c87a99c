/** HELO and EHLO (RFC 5321 §4.1.1.1). A second greeting is allowed and starts over (§4.1.4). */
import { OK } from '../../hooks/codes.ts';
import type { HelloParser } from '../../hooks/hook-map.ts';
import { parseHelloArgument } from '../../protocol/command.ts';
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';
import { authMechanisms } from './auth.ts';
import { callParser, isParserFault } from './plugin-parser.ts';

export function helo(s: Session, rest: string): Promise<void> {
  return greet(s, 'helo', rest);
}

export function ehlo(s: Session, rest: string): Promise<void> {
  return greet(s, 'ehlo', rest);
}

async function greet(s: Session, kind: 'helo' | 'ehlo', rest: string): Promise<void> {
  const parse = await s.hook(kind === 'helo' ? 'helo_parse' : 'ehlo_parse', []);
  const parser = parse.code === OK && typeof parse.payload === 'function' ? (parse.payload as HelloParser) : parseHelloArgument;
  const parsed = callParser(s, kind === 'helo' ? 'helo_parse' : 'ehlo_parse', parser, rest);
  if (isParserFault(parsed)) {
    s.send(CORE.pluginFault());
    return;
  }
  if ('error' in parsed) {
    s.send(CORE.helloSyntax(kind.toUpperCase(), parsed.error));
    return;
  }
  // A new greeting drops any transaction in progress, as RSET would.
  await s.resetTransaction();
  const outcome = await s.hook(kind, [parsed.host]);
  if (kind === 'helo') {
    const decision = await s.answer('helo', outcome, {});
    if (decision.accept) record(s, kind, parsed.host);
    return;
  }
  // Record first so the capability list reflects this greeting (AUTH after EHLO, not HELO).
  const before = { hello: s.connection.hello, host: s.connection.helloHost };
  record(s, kind, parsed.host);
  const decision = await s.answer('ehlo', outcome, { capabilities: capabilities(s) });
  if (!decision.accept) {
    s.connection.hello = before.hello;
    s.connection.helloHost = before.host;
  }
}

function record(s: Session, kind: 'helo' | 'ehlo', host: string): void {
  s.connection.hello = kind;
  s.connection.helloHost = host;
}

/** The EHLO keywords: the core's, then those plugins put in `transaction.notes.capabilities`, then AUTH. */
function capabilities(s: Session): string[] {
  const list = ['PIPELINING', '8BITMIME'];
  const databytes = s.numberSetting('databytes', 0);
  if (databytes > 0) list.push(`SIZE ${databytes}`);
  list.push('ENHANCEDSTATUSCODES', 'SMTPUTF8');
  const extra = s.transaction.notes['capabilities'];
  if (Array.isArray(extra)) for (const c of extra) if (typeof c === 'string' && c !== '') list.push(c);
  const mechanisms = authMechanisms(s);
  if (mechanisms.length > 0) list.push(`AUTH ${mechanisms.join(' ')}`);
  return list;
}
