/** The dispatch table: verb to handler. An explicit map, so no method is reachable by its name. */
import type { Session } from '../session.ts';
import { auth } from './auth.ts';
import { data } from './data.ts';
import { ehlo, helo } from './hello.ts';
import { mail } from './mail.ts';
import { rcpt } from './rcpt.ts';
import { help, noop, quit, rset, unrecognizedCommand, vrfy } from './simple.ts';

export type CommandHandler = (s: Session, rest: string) => Promise<void>;

export const COMMANDS: ReadonlyMap<string, CommandHandler> = new Map<string, CommandHandler>([
  ['HELO', helo],
  ['EHLO', ehlo],
  ['AUTH', auth],
  ['MAIL', mail],
  ['RCPT', rcpt],
  ['DATA', data],
  ['RSET', rset],
  ['NOOP', noop],
  ['VRFY', vrfy],
  ['HELP', help],
  ['QUIT', quit],
]);

export { unrecognizedCommand };
