/**
 * random_error: fail at random, for testing how clients and the mail system around this server
 * cope with temporary errors (qpsmtpd's `random_error`). Not for production.
 *
 * The argument is the percentage of messages that should fail somewhere on their way. A message
 * meets six checkpoints (connect, helo/ehlo, mail, rcpt, data, data_post), so each checkpoint
 * fails with the chance x that makes them add up: (1 - x)^6 = 1 - percentage/100. A failure is
 * DENYSOFT_DISCONNECT two times in five (the connection is closed), DENYSOFT otherwise, with the
 * text `random failure`; what the client sees follows the hook (connect 450 and closed, helo 450
 * or 421, mail 450 or 421, rcpt 450 or 421, data 451, data_post 452).
 *
 * Arguments: one number, the percentage (default 1; 0 or a negative number: never fail; 100:
 * fail at the first checkpoint, the connect), or none.
 * Connection note: `random_fail_%` is set to the percentage at connect; a plugin listed after
 * this one may change it for the rest of the session.
 * Config files: none. Hooks: connect, helo, ehlo, mail, rcpt, data, data_post.
 * Log: LOGINFO `to fail, rand(1) must be more than N` at each checkpoint.
 *
 * Difference from qpsmtpd, on purpose: `random_error 0` means never (qpsmtpd's `||` made it 1);
 * an argument that is no number stops the plugin from loading.
 */
import { Plugin, DECLINED, DENYSOFT, DENYSOFT_DISCONNECT, LOGINFO } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const CHECKPOINTS = 6;

export default class RandomError extends Plugin {
  private percent = 1;

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length > 1) throw new Error(`random_error: invalid arguments "${args.join(' ')}": expected one percentage`);
    const value = args[0];
    if (value !== undefined) {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`random_error: "${value}" is no percentage`);
      this.percent = n;
    }
  }

  hook_connect(_tx: Transaction): HookResult {
    this.connection.notes['random_fail_%'] = this.percent;
    return this.randomFail();
  }

  hook_helo(): HookResult {
    return this.randomFail();
  }

  hook_ehlo(): HookResult {
    return this.randomFail();
  }

  hook_mail(): HookResult {
    return this.randomFail();
  }

  hook_rcpt(): HookResult {
    return this.randomFail();
  }

  hook_data(): HookResult {
    return this.randomFail();
  }

  hook_data_post(): HookResult {
    return this.randomFail();
  }

  private randomFail(): HookResult {
    const noted = Number(this.connection.notes['random_fail_%']);
    const percent = Number.isFinite(noted) ? noted : this.percent;
    if (percent <= 0) return DECLINED;
    const success = Math.max(0, 1 - percent / 100);
    const pass = success ** (1 / CHECKPOINTS);
    this.log(LOGINFO, `to fail, rand(1) must be more than ${pass}`);
    if (Math.random() < pass) return DECLINED;
    return Math.random() * 5 < 2 ? [DENYSOFT_DISCONNECT, 'random failure'] : [DENYSOFT, 'random failure'];
  }
}
