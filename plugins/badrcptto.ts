/**
 * badrcptto: refuse recipients listed in `config/badrcptto` (qpsmtpd's `badrcptto`, which merged
 * check_badrcptto and check_badrcptto_patterns; both old names load this plugin).
 *
 * Config file `badrcptto`, one entry a line, then an optional reason (the reply text) after white
 * space:
 *   bad@example.com     that address (case-insensitive)
 *   @bad.example.com    every address at that domain (not its subdomains)
 *   %                   a bare Perl regular expression: an entry is one when it holds one of
 *   @.*@                `/ ^ $ * + ! % ? \`. It is matched case-insensitively against the
 *   !                   lower-cased `user@host`, anywhere unless anchored.
 *   /^noreply\D*@/      the same between slashes (an addition: qpsmtpd takes bare patterns
 *                       only, and would have looked for the slashes in the address).
 * A match is refused with the reason, or else with 550 "5.1.1 mail to ADDRESS not accepted here"
 * (the reply for an unknown user). An entry without `@` that is no pattern is logged and skipped.
 * The list is compiled once each time it changes (the file is re-read within a second of an
 * edit); a pattern that is not valid is logged with its file and line (LOGERROR) and skipped, the
 * other entries still apply. Perl syntax that JavaScript lacks is translated or refused, never
 * silently matched differently (`perlRegExp` in src/plugins/policy.ts).
 *
 * Arguments, in pairs (qpsmtpd's plugin took none; the defaults are its behaviour):
 *   reject 0|1|naughty   1 (default): refuse; 0: only log; naughty: leave it to the naughty plugin.
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   loglevel N           the usual log level adjustment.
 * Not checked (is_immune): relay clients, whitelisted hosts and senders. A listed recipient costs
 * karma -2 (connection note `karma`). Recipients without local part or domain (`<postmaster>`) are
 * not checked. Hooks: rcpt. Log (LOGINFO): `pass`, `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: the list is compiled once per change, not per recipient; `/re/`
 * entries are patterns without their slashes; a pattern is
 * used as written with the i flag (qpsmtpd lower-cased the pattern itself, which turned `\D`, `\S`,
 * `\W`, `\B` into `\d`, `\s`, `\w`, `\b`); an invalid pattern is logged and skipped (qpsmtpd died in
 * the hook: 451 for every recipient); the default reply names the recipient, not the entry that
 * matched (which for a pattern would tell the pattern), with the enhanced code 5.1.1 instead of
 * qpsmtpd's "(#5.1.1)" suffix.
 */
import { Plugin, DECLINED, LOGINFO, ConfigCache, adjustKarma, compileAddressList, getReject, isImmune, matchAddressList, pairArguments } from 'qpsmtpd';
import type { Address, AddressListEntry, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class BadRcptTo extends Plugin {
  private reject = '1';
  private rejectType: string | undefined;
  private readonly list = new ConfigCache<AddressListEntry[]>('badrcptto', (lines, plugin) => compileAddressList(plugin, 'badrcptto', lines, 'i'));

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['reject', 'reject_type']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type');
    this.list.get(this);
  }

  hook_rcpt(_tx: Transaction, rcpt: Address, _params: EsmtpParams): HookResult {
    if (isImmune(this)) return DECLINED;
    if (rcpt.user === '' || rcpt.host === '') {
      this.log(LOGINFO, 'skip, missing host or user');
      return DECLINED;
    }
    const list = this.list.get(this);
    if (list.length === 0) {
      this.log(LOGINFO, 'skip, empty config');
      return DECLINED;
    }
    const host = rcpt.host.toLowerCase();
    const to = `${rcpt.user.toLowerCase()}@${host}`;
    const hit = matchAddressList(list, to, host);
    if (hit === undefined) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    adjustKarma(this, -2);
    return getReject({
      plugin: this,
      reject: this.reject,
      rejectType: this.rejectType,
      message: hit.reason ?? `5.1.1 mail to ${to} not accepted here`,
      logMessage: `${to} matches ${hit.kind} ${hit.entry}`,
    });
  }
}
