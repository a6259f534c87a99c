/**
 * badmailfromto: refuse mail from a given sender to a given recipient, as if that recipient did not
 * exist (qpsmtpd's `badmailfromto`, made against harassment: the sender is not told it is
 * blocked, and can still write to everyone else).
 *
 * Config file `badmailfromto`: one pair a line, `SENDER RECIPIENT`, separated by white space;
 * anything after the second word is ignored. SENDER is an address or `@domain` (every sender at
 * that domain); RECIPIENT is an address. Both are compared case-insensitively, exactly (no
 * patterns). A SENDER without `@` is logged (with its file and line) and skipped.
 *
 * At MAIL the sender is looked up (the null sender, and a sender without local part or domain, are
 * never listed); at each RCPT a listed sender's pairs are checked, and a listed recipient is
 * refused with 550 "5.1.1 mail to RECIPIENT not accepted here" (the reply for an unknown user).
 * The other recipients of the message are accepted as usual.
 *
 * Arguments, in pairs (qpsmtpd's plugin took none; the defaults are its behaviour):
 *   reject 0|1|naughty   1 (default): refuse; 0: only log; naughty: leave it to the naughty plugin.
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   loglevel N           the usual log level adjustment.
 * Relay clients and whitelisted hosts are NOT exempt (as in qpsmtpd): a pair is a request of the
 * recipient, whoever sends.
 * Transaction note: `badmailfromto` (the matching SENDER entry). Hooks: mail, rcpt.
 *
 * Differences from qpsmtpd: the pairs are parsed once per change of the file, not per command;
 * when several entries match the sender, all their pairs apply (qpsmtpd kept only the last
 * matching entry, so `a@x.example` and `@x.example` lines could not both work).
 */
import { Plugin, checkableSender, DECLINED, LOGDEBUG, LOGWARN, ConfigCache, configLocation, getReject, pairArguments } from 'qpsmtpd';
import type { Address, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

interface Pairs {
  /** Lower-cased sender entry (`user@host` or `@host`) to its lower-cased recipients. */
  readonly bySender: ReadonlyMap<string, ReadonlySet<string>>;
}

export default class BadMailFromTo extends Plugin {
  private reject = '1';
  private rejectType: string | undefined;
  private readonly pairs = new ConfigCache<Pairs>('badmailfromto', (lines, plugin) => parsePairs(plugin, lines));

  register(_qp: PluginHost, ...args: string[]): void {
    const options = pairArguments(this, args, ['reject', 'reject_type']);
    this.reject = options.get('reject') ?? '1';
    this.rejectType = options.get('reject_type');
    this.pairs.get(this);
  }

  hook_mail(tx: Transaction, sender: Address, _params: EsmtpParams): HookResult {
    const { bySender } = this.pairs.get(this);
    if (bySender.size === 0) {
      this.log(LOGDEBUG, 'skip, empty list');
      return DECLINED;
    }
    const checked = checkableSender(this, sender);
    if (checked === undefined) return DECLINED;
    const matches = [checked.from, `@${checked.host}`].filter((key) => bySender.has(key));
    if (matches.length > 0) tx.notes['badmailfromto'] = matches.join(' ');
    return DECLINED;
  }

  hook_rcpt(tx: Transaction, rcpt: Address, _params: EsmtpParams): HookResult {
    const noted = tx.notes['badmailfromto'];
    if (typeof noted !== 'string' || noted === '') {
      this.log(LOGDEBUG, 'pass, sender not listed');
      return DECLINED;
    }
    const recipient = `${rcpt.user}@${rcpt.host}`.toLowerCase();
    const { bySender } = this.pairs.get(this);
    for (const sender of noted.split(' ')) {
      if (bySender.get(sender)?.has(recipient) === true) {
        return getReject({
          plugin: this,
          reject: this.reject,
          rejectType: this.rejectType,
          message: `5.1.1 mail to ${recipient} not accepted here`,
          logMessage: `${sender} may not write to ${recipient}`,
        });
      }
    }
    this.log(LOGDEBUG, 'pass, recipient not listed');
    return DECLINED;
  }
}

function parsePairs(plugin: Plugin, lines: readonly string[]): Pairs {
  const bySender = new Map<string, Set<string>>();
  for (const line of lines) {
    const [from, to] = line.trim().split(/\s+/);
    if (from === undefined || from === '') continue;
    if (!from.includes('@')) {
      plugin.log(LOGWARN, `${configLocation(plugin, 'badmailfromto', line)}: bad config, no @ sign in "${from}", line skipped`);
      continue;
    }
    if (to === undefined) {
      plugin.log(LOGWARN, `${configLocation(plugin, 'badmailfromto', line)}: no recipient after "${from}", line skipped`);
      continue;
    }
    const key = from.toLowerCase();
    let set = bySender.get(key);
    if (set === undefined) bySender.set(key, (set = new Set()));
    set.add(to.toLowerCase());
  }
  return { bySender };
}
