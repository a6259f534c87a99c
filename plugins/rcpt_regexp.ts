/**
 * rcpt_regexp: answer recipients by the first matching line of `config/rcpt_regexp` (qpsmtpd's
 * plugin of that name).
 *
 * Config file `rcpt_regexp`, one rule a line: `MATCH CODE [comment]`, separated by white space.
 *   MATCH    `/re/`: a Perl regular expression between slashes (the only control file where
 *            patterns have delimiters; no flags after the closing slash), matched
 *            case-insensitively against the lower-cased `user@host`, anywhere unless anchored.
 *            Anything else is an address, compared case-insensitively with the whole recipient.
 *   CODE     a return code by name, upper case: OK (accept the recipient), DENY, DENYSOFT,
 *            DENY_DISCONNECT (DENYHARD), DENYSOFT_DISCONNECT, or DECLINED (stop looking here and
 *            leave the recipient to the next rcpt plugin).
 *   comment  the reply text (for OK as for the refusals); none: the daemon's default text.
 * Example:
 *   /^(abuse|postmaster)\@/   DECLINED
 *   me@myhost.example         OK       Accepting mail
 *   /^user\d+\@doma\.in$/     OK
 *   /^unused\@.*$/            DENY     User not found.
 * A recipient no rule matches is left to the next plugin. Recipients without local part or
 * domain (`<postmaster>`) are not checked.
 *
 * The rules are compiled once each time the file changes (it is re-read within a second of an
 * edit). A line whose pattern is not valid, that has no code, or whose code is unknown is logged
 * with its file and line (LOGERROR) and skipped; the other lines still apply. Perl syntax that
 * JavaScript lacks is translated or refused, never silently matched differently (`perlRegExp` in
 * src/plugins/policy.ts).
 *
 * Arguments: `loglevel N` only. Hooks: rcpt.
 *
 * Differences from qpsmtpd: the rules are compiled once per change, not for every recipient; the
 * code DONE is refused (it would leave the client without an answer); a line without a code is
 * logged (qpsmtpd's Perl died on it); problems are logged at LOGERROR with file and line.
 */
import { Plugin, DECLINED, DONE, LOGDEBUG, LOGERROR, ConfigCache, codeName, configLocation, perlRegExp, returnCodeByName } from 'qpsmtpd';
import type { Address, Code, EsmtpParams, HookResult, Transaction } from 'qpsmtpd';

interface Rule {
  /** The rule's first word, for log lines. */
  readonly source: string;
  /** A lower-cased address, or a pattern. */
  readonly match: string | RegExp;
  readonly code: Code;
  readonly comment: string | undefined;
}

export default class RcptRegexp extends Plugin {
  private readonly rules = new ConfigCache<Rule[]>('rcpt_regexp', (lines, plugin) => compileRules(plugin, lines));

  register(): void {
    this.rules.get(this);
  }

  hook_rcpt(_tx: Transaction, rcpt: Address, _params: EsmtpParams): HookResult {
    if (rcpt.user === '' || rcpt.host === '') return DECLINED;
    const address = `${rcpt.user}@${rcpt.host}`.toLowerCase();
    for (const rule of this.rules.get(this)) {
      const hit = typeof rule.match === 'string' ? rule.match === address : rule.match.test(address);
      if (!hit) continue;
      this.log(LOGDEBUG, `${typeof rule.match === 'string' ? 'String' : 'RE'} ${rule.source} matched ${address}, returning ${codeName(rule.code)}`);
      return rule.comment === undefined ? rule.code : [rule.code, rule.comment];
    }
    return DECLINED;
  }
}

function compileRules(plugin: Plugin, lines: readonly string[]): Rule[] {
  const rules: Rule[] = [];
  for (const line of lines) {
    const m = /^(\S+)(?:\s+(\S+))?(?:\s+(.*))?$/.exec(line.trim());
    if (m === null) continue;
    const [, source, name, comment] = m as unknown as [string, string, string | undefined, string | undefined];
    const where = (): string => configLocation(plugin, 'rcpt_regexp', line);
    let match: string | RegExp;
    const delimited = /^\/(.*)\/$/.exec(source);
    if (delimited !== null) {
      const compiled = perlRegExp(delimited[1]!, 'i');
      if ('error' in compiled) {
        plugin.log(LOGERROR, `${where()}: REGEXP ${source} not valid, line skipped: ${compiled.error}`);
        continue;
      }
      match = compiled.regexp;
    } else {
      match = source.toLowerCase();
    }
    if (name === undefined) {
      plugin.log(LOGERROR, `${where()}: no return code after ${source}, line skipped`);
      continue;
    }
    const code = returnCodeByName(name);
    if (code === undefined || code === DONE) {
      plugin.log(LOGERROR, `${where()}: "${name}" is not a valid return code${code === DONE ? ' here (DONE sends no reply)' : ''}, line skipped`);
      continue;
    }
    rules.push({ source, match, code, comment: comment === '' ? undefined : comment });
  }
  return rules;
}
