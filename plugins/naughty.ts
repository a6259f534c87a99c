/**
 * naughty: refuse, at one chosen point of the session, the clients other plugins found naughty
 * (qpsmtpd's `naughty`, deferred rejection).
 *
 * A plugin given `reject naughty` (dnsbl, earlytalker, helo, karma ...) does not refuse the client
 * itself: the shared policy notes its reply in the connection note `naughty` (`(<plugin>)
 * <message>`, several joined as lines of one reply) and, the first time, its reject_type in
 * `naughty_reject_type`. This plugin then refuses the client at the hook named by its `reject`
 * argument, with the noted message as the reply text. Deciding late lets a roaming user
 * authenticate first: a successful AUTH clears the note (the core does that), and the client
 * is served. Clients without the note pass (LOGINFO `pass`).
 *
 * How the refusal looks depends on the hook and the type (the noted naughty_reject_type, else this
 * plugin's reject_type, else disconnect):
 *   disconnect (default)  connect 550, mail 550, rcpt 550, data 554, data_post 552; then closed
 *   perm                  the same codes, the session goes on (at data and data_post the message
 *                         is dropped)
 *   temp                  connect 450 (closed), mail 450, rcpt 450, data 451, data_post 452
 *   temp_disconnect       connect 450, mail 421, rcpt 421, data 451, data_post 452; then closed
 *
 * Arguments (pairs):
 *   reject connect|mail|rcpt|data|data_post   where to refuse (default rcpt). Unless it is
 *                  data_post, the plugin also checks at data_post, in case a plugin listed before
 *                  it on the chosen hook answered first (rcpt_ok's OK ends the rcpt chain: list
 *                  naughty before it, or choose data).
 *   reject_type perm|temp|disconnect|temp_disconnect   the type when the noting plugin gave none.
 *   loglevel N     the usual log level adjustment.
 * Config files: none. Hooks: the chosen one, and data_post.
 *
 * Difference from qpsmtpd, on purpose: an unknown `reject` hook stops the plugin from loading
 * (qpsmtpd logged an error and refused at data_post only); qpsmtpd's `hook_queue_post` is not
 * accepted (a refusal after the queue step can refuse nothing).
 */
import { Plugin, DECLINED, DENY_DISCONNECT, LOGDEBUG, LOGINFO, LOGWARN, rejectCode } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const HOOKS = ['connect', 'mail', 'rcpt', 'data', 'data_post'] as const;
type RejectHook = (typeof HOOKS)[number];
const REJECT_TYPES = /^(perm|hard|temp|soft|disconnect|temp_disconnect)$/i;

export default class Naughty extends Plugin {
  private rejectType = 'disconnect';

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) throw new Error(`naughty: unrecognized/mismatched arguments "${args.join(' ')}": expected pairs such as "reject rcpt"`);
    let hook: RejectHook = 'rcpt';
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      if (key === 'reject') {
        const wanted = value.toLowerCase();
        const found = HOOKS.find((h) => h === wanted);
        if (found === undefined) throw new Error(`naughty: reject "${value}": expected one of ${HOOKS.join(', ')}`);
        hook = found;
      } else if (key === 'reject_type') {
        if (!REJECT_TYPES.test(value)) throw new Error(`naughty: reject_type "${value}": expected perm, temp, disconnect or temp_disconnect`);
        this.rejectType = value;
      } else if (key !== 'loglevel') {
        this.log(LOGWARN, `ignoring unknown argument "${key} ${value}"`);
      }
    }
    this.log(LOGDEBUG, `registering hook ${hook}`);
    this.registerHook(hook, 'naughty');
    // In case the client got past the chosen hook (a plugin before this one answered first).
    if (hook !== 'data_post') this.registerHook('data_post', 'naughty');
  }

  naughty(_tx: Transaction): HookResult {
    const noted = this.connection.notes['naughty'];
    if (noted === undefined || noted === null || noted === false || noted === '' || noted === 0 || noted === '0') {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    const storedType = this.connection.notes['naughty_reject_type'];
    const type = typeof storedType === 'string' && storedType !== '' ? storedType : this.rejectType;
    const code = rejectCode(type, rejectCode(this.rejectType, DENY_DISCONNECT));
    this.log(LOGINFO, 'disconnecting');
    // A plugin may have noted just a flag (qpsmtpd's is_naughty(1)): then the hook's own default
    // reply text rather than "1".
    return typeof noted === 'string' ? [code, noted] : code;
  }
}
