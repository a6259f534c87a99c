/**
 * What MAIL and RCPT share: the `_parse` hook (or the built-in parser), the `_pre` hook that may
 * rewrite the address string, then the address parser.
 */
import { OK } from '../../hooks/codes.ts';
import type { PathParser } from '../../hooks/hook-map.ts';
import { Address } from '../../protocol/address.ts';
import { parsePathArgument, type EsmtpParams } from '../../protocol/command.ts';
import type { Session } from '../session.ts';
import { callParser, isParserFault } from './plugin-parser.ts';

export type EnvelopeArgument =
  | { readonly ok: true; readonly address: Address; readonly params: EsmtpParams }
  | { readonly ok: false; readonly stage: 'syntax' | 'address' | 'fault'; readonly reason: string };

export async function parseEnvelopeArgument(s: Session, kind: 'mail' | 'rcpt', rest: string): Promise<EnvelopeArgument> {
  const parse = await s.hook(kind === 'mail' ? 'mail_parse' : 'rcpt_parse', [rest]);
  const parser = parse.code === OK && typeof parse.payload === 'function' ? (parse.payload as PathParser) : defaultParser(kind);
  const parsed = callParser(s, kind === 'mail' ? 'mail_parse' : 'rcpt_parse', parser, rest);
  if (isParserFault(parsed)) return { ok: false, stage: 'fault', reason: 'parser failed' };
  if ('error' in parsed) return { ok: false, stage: 'syntax', reason: parsed.error };

  let path = parsed.path;
  const pre = await s.hook(kind === 'mail' ? 'mail_pre' : 'rcpt_pre', [path, parsed.params]);
  if (pre.code === OK && typeof pre.payload === 'string') path = pre.payload;

  const address = Address.parse(path);
  if ('error' in address) return { ok: false, stage: 'address', reason: address.error };
  address.bindConfig((a, name) => s.addressConfig(a, name));
  return { ok: true, address, params: parsed.params };
}

function defaultParser(kind: 'mail' | 'rcpt'): PathParser {
  const keyword = kind === 'mail' ? 'FROM' : 'TO';
  return (argument) => parsePathArgument(argument, keyword);
}
