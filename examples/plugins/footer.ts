// The talk's "Nervige Werbung": register() prepares state once for all sessions and attaches a
// method to data_post; the hook appends to the message body and declines, so the other content
// filters and the queue still run. Only mail from 127.0.0.1 gets the footer.
import { Plugin, DECLINED } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';

export default class Footer extends Plugin {
  footer = '';

  register() {
    this.footer = `\nSupermail, Mail im Jahr ${new Date().getFullYear()}\n`;
    this.registerHook('data_post', 'addFooter');
  }

  async addFooter(tx: Transaction) {
    if (this.qp.connection.remoteIp === '127.0.0.1') {
      await tx.bodyWrite(this.footer);
    }
    return DECLINED;
  }
}
