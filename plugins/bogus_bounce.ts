/**
 * bogus_bounce: spot bounces that are not real bounces (qpsmtpd's plugin of that name).
 *
 * A bounce (a delivery status notification, or any message sent with the null sender `<>`) goes
 * back to the one sender of the message that failed. So a message from `<>` is bogus when
 *   - it has more than one recipient (or none), or
 *   - its header has a Return-Path that is not empty (`<>`): the null sender's return path is
 *     empty (RFC 3834 §3.3 for automatic responses).
 * Spammers send "bounces" to harvested lists; this catches them after the message was received
 * (data_post), where the recipients and the header are known.
 *
 * Arguments: an action first, then optionally pairs:
 *   log        only log the bogus bounce (the default)
 *   deny       refuse it: 552 after the message
 *   denysoft   refuse it temporarily: 452
 *   reject 0|1|naughty, reject_type perm|temp|disconnect|temp_disconnect   the shared arguments,
 *              which override what the action implies (`reject naughty` leaves the refusal to the
 *              naughty plugin)
 *   action log|deny|denysoft   the action as a pair (`bogus_bounce action deny`)
 *   loglevel N the usual log level adjustment
 * Config files: none. Hooks: data_post. Log (LOGINFO): `pass, ...`, `fail, ...`.
 *
 * Differences from qpsmtpd, following its documentation where its code did otherwise:
 * `bogus_bounce deny` and `denysoft` refuse (qpsmtpd only logged: its legacy `reject 0` default
 * was never lifted by the action); the recipient count is really checked (qpsmtpd counted a list
 * in scalar context, so more than one recipient always looked like one); a `Return-Path: <>`
 * header is empty (qpsmtpd compared it with its line end and called it not empty); words after
 * the action are read as pairs (qpsmtpd ignored them); an unknown action stops the plugin loading;
 * the reply drops qpsmtpd's "fail, " prefix.
 */
import { Plugin, DECLINED, LOGINFO, getReject, pairArguments } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class BogusBounce extends Plugin {
  private reject = '0';
  private rejectType: string | undefined;

  register(_qp: PluginHost, ...args: string[]): void {
    const rest = args.length % 2 === 1 ? args.slice(1) : args;
    const pairs = pairArguments(this, rest, ['action', 'reject', 'reject_type']);
    const action = (args.length % 2 === 1 ? args[0]! : pairs.get('action') ?? 'log').toLowerCase();
    if (action !== 'log' && action !== 'deny' && action !== 'denysoft') {
      throw new Error(`${this.name}: unknown action "${action}": expected log, deny or denysoft`);
    }
    this.reject = pairs.get('reject') ?? (action === 'log' ? '0' : '1');
    this.rejectType = pairs.get('reject_type') ?? (action === 'denysoft' ? 'temp' : action === 'deny' ? 'perm' : undefined);
  }

  hook_data_post(tx: Transaction): HookResult {
    if (tx.sender === undefined || !tx.sender.isNull) {
      this.log(LOGINFO, 'pass, not a null sender');
      return DECLINED;
    }
    if (tx.recipients.length !== 1) {
      return getReject({
        plugin: this,
        reject: this.reject,
        rejectType: this.rejectType,
        message: 'This bounce message does not have 1 recipient',
        logMessage: `bogus bounce to: ${tx.recipients.map((r) => r.address).join(',')}`,
      });
    }
    const returnPath = tx.header.get('Return-Path');
    if (returnPath !== undefined && returnPath !== '' && returnPath !== '<>') {
      return getReject({
        plugin: this,
        reject: this.reject,
        rejectType: this.rejectType,
        message: 'A bounce return path must be empty (RFC 3834)',
        logMessage: `bounce messages must not have a Return-Path (${returnPath})`,
      });
    }
    this.log(LOGINFO, 'pass, single recipient, empty Return-Path');
    return DECLINED;
  }
}
