/**
 * Parsers that a `*_parse` hook hands to the core are plugin code: call them so that a throw or a
 * nonsense result is logged and answered like any other plugin fault (451 for that command), never
 * a failed session.
 */
import { LOGCRIT } from '../../log/levels.ts';
import type { Session } from '../session.ts';

export type ParserFault = { readonly fault: true };

/** The parser's result, or `{ fault: true }` when it threw or returned something that is no object. */
export function callParser<T extends object>(s: Session, hook: string, parser: (argument: string) => T, argument: string): T | ParserFault {
  try {
    const result: unknown = parser(argument);
    if (result !== null && typeof result === 'object') return result as T;
    s.logAs(LOGCRIT, hook, '', [`the parser from the ${hook} hook returned ${String(result)}, not an object`]);
  } catch (err) {
    s.logAs(LOGCRIT, hook, '', [`the parser from the ${hook} hook failed:`, err]);
  }
  return { fault: true };
}

export function isParserFault(value: object): value is ParserFault {
  return 'fault' in value && (value as ParserFault).fault === true;
}
