/**
 * loop: refuse mail that has passed through too many hops, a sign of a mail loop (qpsmtpd's
 * `loop`, which does what qmail-smtpd does).
 *
 * At `data_post` it counts the `Received` and `Delivered-To` header fields (the Received field
 * this server has just added included, as in qpsmtpd) and refuses the message when there are
 * `max_hops` or more:
 *   552 5.4.6 Too many hops
 * (qpsmtpd's Qpsmtpd::DSN too_many_hops: DENY with the RFC 3463 status 5.4.6, "routing loop
 * detected"; a data_post DENY is 552.)
 *
 * Arguments (config/plugins):
 *   loop [MAX_HOPS]    default 100, qmail-smtpd's value. A value that is not a whole number above
 *                      0 is logged and the default used; further arguments are logged and ignored
 *                      (both as qpsmtpd does). `loglevel N` may follow, as for every plugin.
 *
 * Relay clients and whitelisted hosts are checked too: a loop is a loop, whoever sends it.
 *
 * Config files: none. Hooks: data_post. Log: LOGINFO `pass, N hops` or `fail, N hops (max M)`.
 *
 * Deliberate differences from qpsmtpd: none in behaviour. The reply carries the enhanced status
 * code the way this daemon sends them (`552 5.4.6 Too many hops`) rather than qpsmtpd's
 * `552 Too many hops (#5.4.6)`.
 */
import { Plugin, DECLINED, DENY, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_MAX_HOPS = 100;

export default class Loop extends Plugin {
  maxHops = DEFAULT_MAX_HOPS;

  register(_qp: PluginHost, ...rawArgs: string[]): void {
    const args = withoutLoglevel(rawArgs);
    const first = args[0];
    if (first !== undefined && first !== '' && first !== '0') {
      if (/^\d+$/.test(first)) this.maxHops = Number(first);
      else this.log(LOGWARN, `Invalid max_hops value "${first}" -- using default ${DEFAULT_MAX_HOPS}`);
    }
    if (args.length > 1) this.log(LOGWARN, `Ignoring additional arguments "${args.slice(1).join(' ')}"`);
  }

  hook_data_post(tx: Transaction): HookResult {
    const hops = tx.header.count('Received') + tx.header.count('Delivered-To');
    if (hops >= this.maxHops) {
      this.log(LOGINFO, `fail, ${hops} hops (max ${this.maxHops})`);
      return [DENY, '5.4.6 Too many hops'];
    }
    this.log(LOGINFO, `pass, ${hops} hops`);
    return DECLINED;
  }
}

/** The arguments without a `loglevel N` pair (the loader applies that one). */
function withoutLoglevel(args: readonly string[]): string[] {
  const at = args.findIndex((a) => a.toLowerCase() === 'loglevel');
  return at === -1 ? [...args] : [...args.slice(0, at), ...args.slice(at + 2)];
}
