/** RSET, NOOP, VRFY, HELP, QUIT and the verbs nobody knows (RFC 5321 §4.1.1.5 - §4.1.1.10). */
import { DECLINED, OK } from '../../hooks/codes.ts';
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';

export async function rset(s: Session, _rest: string): Promise<void> {
  await s.resetTransaction();
  s.send(CORE.rsetOk());
}

export async function noop(s: Session, _rest: string): Promise<void> {
  await s.answer('noop', await s.hook('noop', []));
}

export async function vrfy(s: Session, rest: string): Promise<void> {
  await s.answer('vrfy', await s.hook('vrfy', [rest]));
}

export async function help(s: Session, rest: string): Promise<void> {
  const outcome = await s.hook('help', [rest]);
  // A plugin that answers OK with lines supplies the help text; otherwise the default.
  const helpLines = outcome.code === OK && outcome.message ? outcome.message : defaultHelp(s);
  await s.answer('help', outcome, { helpLines });
}

function defaultHelp(s: Session): string[] {
  const who = s.config('smtpgreeting') === undefined ? `This is qpsmtpd ${s.version}` : 'This is qpsmtpd';
  return [who, 'Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT AUTH', 'See https://github.com/smtpd/qpsmtpd'];
}

export async function quit(s: Session, _rest: string): Promise<void> {
  await s.answer('quit', await s.hook('quit', []));
  s.disconnect();
}

/** Verbs of RFC 5321 and its extensions that we do not implement: 502 rather than 500. */
const KNOWN_UNIMPLEMENTED: ReadonlySet<string> = new Set(['expn', 'turn', 'etrn', 'send', 'saml', 'soml', 'bdat', 'starttls', 'atrn']);

/**
 * Any verb without a built-in handler goes to `unrecognized_command`: this is how plugins add
 * verbs (STARTTLS, XCLIENT, PROXY ...).
 */
export async function unrecognizedCommand(s: Session, verb: string, rest: string): Promise<void> {
  const outcome = await s.hook('unrecognized_command', [verb, rest]);
  if (outcome.code === DECLINED && KNOWN_UNIMPLEMENTED.has(verb)) {
    s.send(CORE.notImplemented());
    return;
  }
  await s.answer('unrecognized_command', outcome);
}
