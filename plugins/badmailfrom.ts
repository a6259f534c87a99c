/**
 * badmailfrom: refuse senders listed in `config/badmailfrom`, qmail's control file (qpsmtpd's
 * `badmailfrom`, which merged check_badmailfrom and check_badmailfrom_patterns; both old names load
 * this plugin).
 *
 * Config file `badmailfrom`, one entry a line, then an optional reason (the reply text) after
 * white space:
 *   user@example.com        that address (case-insensitive)
 *   @example.com            every address at that domain (not its subdomains)
 *   ^return.*@.*\.biz$      a bare Perl regular expression: an entry is one when it holds one of
 *                           `/ ^ $ * + ! % ? \`. It is matched against the lower-cased
 *                           `user@host`, case-sensitively (as qpsmtpd: write it in lower case),
 *                           anywhere unless anchored.
 *   /^return.*@.*\.biz$/    the same between slashes (an addition: qpsmtpd takes bare patterns
 *                           only, and would have looked for the slashes in the address).
 * Without a reason the reply is "Your envelope sender is in my badmailfrom list". An entry without
 * `@` that is no pattern is logged and skipped. The list is compiled once each time it changes
 * (the file is re-read within a second of an edit); a pattern that is not valid is logged with its
 * file and line (LOGERROR) and skipped, the other entries still apply. Perl syntax that
 * JavaScript lacks is translated or refused, never silently matched differently (see
 * `perlRegExp` in src/plugins/policy.ts: `\A`, `\z`, `\Q..\E`, POSIX classes ... carry over;
 * possessive quantifiers, atomic groups, `\K`, `\p{..}` are reported as invalid).
 *
 * The check runs at MAIL, where qpsmtpd 1.00 runs it: a listed sender is refused there (before
 * 2012 check_badmailfrom noted it and refused each RCPT instead). The null sender `<>`, and a
 * sender without local part or domain (`<postmaster>`), are never checked.
 *
 * Arguments, in pairs:
 *   reject 0|1|naughty   1 (default): refuse (550); 0: only log; naughty: leave the refusal to
 *                        the naughty plugin (connection note `naughty`).
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   loglevel N           the usual log level adjustment.
 * Not checked (is_immune): relay clients, whitelisted hosts (`whitelisthost`) and senders
 * (`whitelistsender`). A listed sender costs karma -1 (connection note `karma`).
 * Hooks: mail. Log (LOGINFO): `pass`, `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: the list is compiled once per change, not read and compiled per
 * message; `/re/` entries are patterns without their slashes; an invalid pattern is logged with file and line and skipped (qpsmtpd's Perl died in
 * the hook: a 451 for every sender); odd arguments or a bad reject_type stop the plugin loading.
 */
import { Plugin, checkableSender, DECLINED, LOGDEBUG, LOGINFO, ConfigCache, adjustKarma, compileAddressList, getReject, isImmune, matchAddressList, pairArguments } from 'qpsmtpd';
import type { Address, AddressListEntry, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_REASON = 'Your envelope sender is in my badmailfrom list';

export default class BadMailFrom extends Plugin {
  private reject = '1';
  private rejectType: string | undefined;
  private readonly list = new ConfigCache<AddressListEntry[]>('badmailfrom', (lines, plugin) => compileAddressList(plugin, 'badmailfrom', lines));

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['reject', 'reject_type']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type');
    // Compile now, so that a bad pattern is reported when the daemon starts (`qpsmtpd check` too).
    this.list.get(this);
  }

  hook_mail(_tx: Transaction, sender: Address, _params: EsmtpParams): HookResult {
    if (isImmune(this)) return DECLINED;
    const list = this.list.get(this);
    if (list.length === 0) {
      this.log(LOGDEBUG, 'skip, empty list');
      return DECLINED;
    }
    const checked = checkableSender(this, sender);
    if (checked === undefined) return DECLINED;
    const hit = matchAddressList(list, checked.from, checked.host);
    if (hit === undefined) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    adjustKarma(this, -1);
    return getReject({
      plugin: this,
      reject: this.reject,
      rejectType: this.rejectType,
      message: hit.reason ?? DEFAULT_REASON,
      logMessage: `${checked.from} matches ${hit.kind} ${hit.entry}`,
    });
  }
}
