// The talk's "Mein erstes Plugin": one hook method, one decision. Refuses mail to a single
// recipient (the address compared case-insensitively) and leaves everyone else to other plugins.
import { Plugin, DECLINED, DENY } from 'qpsmtpd';
import type { Transaction, Address } from 'qpsmtpd';

export default class RejectHans extends Plugin {
  hook_rcpt(tx: Transaction, rcpt: Address) {
    if (rcpt.address.toLowerCase() === 'hans@meine.do.main') {
      return [DENY, `Mail to ${rcpt} not accepted here`];
    }
    return DECLINED;
  }
}
