/**
 * auth/authdeny: the last word on AUTH (qpsmtpd's `auth/authdeny`). It accepts nobody: on the
 * generic `auth` hook, which the core runs only after every plugin on the mechanism's own hook
 * (auth-plain, auth-login, auth-cram-md5) declined, it logs the attempt at LOGWARN
 * (`fail: cannot authenticate "user" (MECHANISM)`) and declines, so the client gets
 * `535 5.7.8 <MECHANISM> authentication failed for <user>`.
 *
 * As in qpsmtpd it answers DECLINED, not DENY: an attempt that nothing accepted fails anyway, and
 * a plugin listed after it on the `auth` hook is still asked. (qpsmtpd also gave the message
 * "<user> is not free to abuse my relay", which its core appended to the 535; ours gives no text
 * for a declined AUTH, so none is returned.) Like any plugin on the `auth` hook it makes PLAIN,
 * LOGIN and CRAM-MD5 advertised. qpsmtpd calls it a proof of concept; here it is mainly useful to
 * log, at a level seen by default, every AUTH that no other plugin accepted (list it after them).
 *
 * Arguments: none (besides the common `loglevel N`).
 * Config files: none.
 * Hooks: auth.
 */
import { Plugin, DECLINED, LOGWARN } from 'qpsmtpd';
import type { HookResult, Transaction } from 'qpsmtpd';

export default class AuthDeny extends Plugin {
  hook_auth(_tx: Transaction, mechanism: string, user: string): HookResult {
    this.log(LOGWARN, `fail: cannot authenticate ${JSON.stringify(user)} (${mechanism})`);
    return DECLINED;
  }
}
