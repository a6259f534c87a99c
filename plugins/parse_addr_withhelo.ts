/**
 * parse_addr_withhelo: strict RFC 821 parsing of MAIL FROM and RCPT TO for clients that greeted
 * with HELO (qpsmtpd's plugin of that name). RFC 821 knows no parameters after the address; they
 * came with ESMTP (RFC 1869), which a client announces by saying EHLO. So after HELO:
 *
 *   MAIL FROM:<a@example.com> SIZE=100   501 "No parameters allowed in MAIL" (RCPT likewise)
 *   MAIL FROM:a@example.com SIZE=100     501 "No parameters allowed in MAIL"
 *   MAIL FROM:                           the null sender, as `MAIL FROM:<>`
 *   MAIL FROM:junk                       501 "Could not parse your MAIL FROM command"
 *   RCPT TO:junk                         501 "Could not parse your RCPT TO command"
 *   a verb without FROM: / TO:           501 "Syntax error in command"
 * An address without brackets (`a@example.com`, and `RCPT TO:postmaster` or `abuse`) is passed on
 * as written: it is then refused as not bracketed unless `dont_require_anglebrackets` is loaded
 * too, which adds the brackets. After EHLO, and before any greeting, this plugin does nothing and
 * the built-in parser (with parameters) is used.
 *
 * Arguments: `loglevel N` only. Config files: none. Hooks: mail_parse, rcpt_parse.
 *
 * Differences from qpsmtpd: `RCPT TO:postmaster` and `RCPT TO:abuse` are passed on as the plugin
 * meant to (qpsmtpd 1.00 fell off the end of its parser and answered "Syntax error in command");
 * a bracketed address ends at its own `>` (quoted local parts honoured), where qpsmtpd's greedy
 * match took everything up to the last `>` of the line; either way the line is refused.
 */
import { Plugin, DECLINED, OK, LOGDEBUG } from 'qpsmtpd';
import type { HookResult, PathParser, Transaction } from 'qpsmtpd';

/** `<...>` up to its closing bracket; a quoted local part may hold `>`. */
const BRACKETED = /^<(?:"(?:[^"\\]|\\.)*"|[^>"])*>/;

export default class ParseAddrWithHelo extends Plugin {
  hook_mail_parse(_tx: Transaction, _argument: string): HookResult<PathParser> {
    return this.parserFor('mail');
  }

  hook_rcpt_parse(_tx: Transaction, _argument: string): HookResult<PathParser> {
    return this.parserFor('rcpt');
  }

  private parserFor(kind: 'mail' | 'rcpt'): HookResult<PathParser> {
    if (this.connection.hello !== 'helo') return DECLINED;
    const log = (line: string): void => this.log(LOGDEBUG, line);
    return [OK, (argument: string) => strictParse(kind, argument, log)];
  }
}

function strictParse(kind: 'mail' | 'rcpt', argument: string, log: (line: string) => void): ReturnType<PathParser> {
  log(`parse cmd=[${kind}], line=[${argument}]`);
  const verb = kind.toUpperCase();
  const prefix = (kind === 'mail' ? /^from:\s*/i : /^to:\s*/i).exec(argument);
  if (prefix === null) return { error: 'Syntax error in command' };
  const line = argument.slice(prefix[0].length);

  const bracketed = BRACKETED.exec(line);
  if (bracketed !== null) {
    if (line.slice(bracketed[0].length).trim() !== '') return { error: `No parameters allowed in ${verb}` };
    return { path: bracketed[0], params: {} };
  }

  // No brackets: the address as written, for dont_require_anglebrackets to repair.
  const bare = line.trimEnd();
  if (bare.includes('@')) {
    if (/@\S+\s+\S/.test(bare)) return { error: `No parameters allowed in ${verb}` };
    return { path: bare, params: {} };
  }
  if (kind === 'mail') {
    if (bare === '') return { path: '<>', params: {} };
    return { error: 'Could not parse your MAIL FROM command' };
  }
  if (/^(postmaster|abuse)$/i.test(bare)) return { path: bare, params: {} };
  return { error: 'Could not parse your RCPT TO command' };
}
