/**
 * dont_require_anglebrackets: accept `MAIL FROM:user@example.com` and `RCPT TO:user@example.com`,
 * addresses without the angle brackets RFC 5321 requires (qpsmtpd's plugin of that name).
 *
 * On mail_pre and rcpt_pre (after the command was split into the address and its parameters,
 * before the address is parsed) an address not written as `<...>` gets the brackets added, so
 * `MAIL FROM:user@example.com SIZE=100` becomes `<user@example.com>` with SIZE=100. Each repair
 * costs the client karma -2 (connection note `karma`) and logs `fail, added MAIL angle brackets`
 * (or RCPT) at LOGINFO. What is inside is checked as usual afterwards: `MAIL FROM:a b@c` is still
 * refused.
 *
 * Arguments: `loglevel N` only. Config files: none. Hooks: mail_pre, rcpt_pre.
 *
 * Difference from qpsmtpd: an address that already has its brackets is left to the next mail_pre
 * or rcpt_pre plugin (DECLINED); qpsmtpd answered OK with it unchanged, which ended the chain.
 */
import { Plugin, DECLINED, OK, LOGINFO, adjustKarma } from 'qpsmtpd';
import type { EsmtpParams, HookResult, Transaction } from 'qpsmtpd';

export default class DontRequireAngleBrackets extends Plugin {
  hook_mail_pre(_tx: Transaction, address: string, _params: EsmtpParams): HookResult<string> {
    return this.bracket(address, 'MAIL');
  }

  hook_rcpt_pre(_tx: Transaction, address: string, _params: EsmtpParams): HookResult<string> {
    return this.bracket(address, 'RCPT');
  }

  private bracket(address: string, verb: 'MAIL' | 'RCPT'): HookResult<string> {
    if (/^<.*>$/s.test(address)) return DECLINED;
    adjustKarma(this, -2);
    this.log(LOGINFO, `fail, added ${verb} angle brackets`);
    return [OK, `<${address}>`];
  }
}
