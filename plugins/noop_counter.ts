/**
 * noop_counter: disconnect a client after too many consecutive NOOPs (qpsmtpd's `noop_counter`,
 * its example of hook_noop). A client that keeps a connection open with NOOP and nothing else is
 * wasting a slot.
 *
 * Each NOOP counts; below the limit the core answers `250 2.0.0 OK`, on the Nth consecutive one
 * the plugin answers DENY_DISCONNECT: `500 5.5.1 Stop wasting my time, too many consecutive
 * NOOPs` and the connection is closed. Any other command resets the count: HELO, EHLO, MAIL, RCPT,
 * DATA, RSET (through reset_transaction), VRFY, HELP (qpsmtpd's hooks) and, as qpsmtpd's
 * documentation promises ("any other command"), unrecognized commands. AUTH does not reset it:
 * a plugin on the `auth` hook would make the core advertise AUTH.
 *
 * List it early in config/plugins: a command whose hook another plugin ends first (an OK from
 * rcpt_ok on RCPT, say) does not reach this plugin and does not reset the count.
 *
 * Arguments: N, the number of consecutive NOOPs that ends the connection (default 3; an argument
 * that is not a positive whole number is ignored, as in qpsmtpd).
 * Connection note: `noop_count`, the consecutive NOOPs so far.
 * Config files: none.
 * Hooks: noop; helo, ehlo, mail, rcpt, data, reset_transaction, vrfy, help, unrecognized_command
 * (all DECLINED, to reset the count).
 */
import { Plugin, DECLINED, DENY_DISCONNECT, LOGINFO } from 'qpsmtpd';
import type { HookName, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_MAX = 3;
const NOTE = 'noop_count';
/** The hooks of the other commands: each resets the count. */
const RESETTING: readonly HookName[] = ['helo', 'ehlo', 'mail', 'rcpt', 'data', 'reset_transaction', 'vrfy', 'help', 'unrecognized_command'];

export default class NoopCounter extends Plugin {
  private max = DEFAULT_MAX;

  register(_qp: PluginHost, ...args: string[]): void {
    const limit = args[0];
    if (limit !== undefined && /^\d+$/.test(limit) && Number(limit) > 0) this.max = Number(limit);
    for (const hook of RESETTING) this.registerHook(hook, 'resetNoopCounter');
  }

  hook_noop(_tx: Transaction): HookResult {
    const notes = this.connection.notes;
    const count = (Number(notes[NOTE]) || 0) + 1;
    notes[NOTE] = count;
    if (count >= this.max) {
      this.log(LOGINFO, `fail, ${count} consecutive NOOPs`);
      return [DENY_DISCONNECT, 'Stop wasting my time, too many consecutive NOOPs'];
    }
    return DECLINED;
  }

  resetNoopCounter(_tx: Transaction): HookResult {
    this.connection.notes[NOTE] = 0;
    return DECLINED;
  }
}
