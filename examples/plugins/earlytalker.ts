// The talk's check_earlytalker: register() attaches a method with another name to a hook, and
// the hook waits, asynchronously, for the client. An SMTP client must wait for the greeting;
// spam software often does not. config/plugins: `earlytalker [milliseconds]` (default 1000).
import { Plugin, DECLINED, DENYSOFT, LOGDEBUG } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';

export default class EarlyTalker extends Plugin {
  waitMs = 1000;

  register(_qp: PluginHost, ms?: string) {
    if (ms !== undefined) this.waitMs = Number(ms);
    if (!(this.waitMs > 0)) throw new Error(`earlytalker: "${ms}" is no number of milliseconds`);
    this.registerHook('connect', 'connectHandler');
  }

  async connectHandler() {
    if (await this.qp.waitForInput(this.waitMs)) {
      this.log(LOGDEBUG, 'client talked before the greeting');
      return [DENYSOFT, 'SMTP protocol violation: you talked before the greeting'];
    }
    return DECLINED;
  }
}
