/**
 * rcpt_ok: accept a recipient when we take mail for its domain, refuse it otherwise (qpsmtpd's
 * `rcpt_ok`, which does what qmail-smtpd does with rcpthosts and morercpthosts.cdb).
 * List it as the LAST rcpt plugin: the plugins before it may refuse, this one says the final yes.
 *
 * Per recipient, the first rule that applies:
 *   1. The client is a relay client (plugins/relay, successful AUTH, any plugin that sets
 *      `connection.relayClient`): OK, any recipient. Unlike qpsmtpd, a host or sender merely
 *      whitelisted by another plugin (notes `whitelisthost`, `whitelistsender`) is not: whitelisting
 *      spares a client the filters, it does not let it relay — an envelope sender is trivially
 *      forged, so a whitelisted sender would make the server an open relay for anyone naming it.
 *   2. A local part (after unquoting) that holds `%`, `!` or `@` is refused with
 *      `5.7.1 Relaying denied`, even when the domain is ours: `u%other.example@example.test`
 *      (the percent hack), `other.example!u@example.test` (a UUCP bang path) and
 *      `"u@other.example"@example.test` are routing forms that qmail, sendmail and other MTAs
 *      behind us would forward to the other host, so accepting them would make us an open relay
 *      by proxy. Relay clients (rule 1) may still send them. (Source routes `<@a:u@b>` and a second
 *      `@` outside quotes never get here: the core's address parser refuses them with 501.)
 *      qpsmtpd does not do this.
 *   3. No domain: only `postmaster` and `abuse` (any case) are accepted, as local addresses;
 *      any other bare local part is refused. (The core's parser only lets a bare `<postmaster>`
 *      through; a rcpt_parse plugin may let others in.)
 *   4. The domain, compared case-insensitively, is config/me, or is in config/rcpthosts, where a
 *      line `example.com` accepts that domain and a line `.example.com` accepts every subdomain
 *      of example.com but not example.com itself (list both to have both): OK.
 *   5. The domain is a key of the morercpthosts map (morercpthosts.cdb when present, else the plain
 *      file morercpthosts): OK. As in qmail, its parents with a leading dot are looked up too
 *      (`.example.com` for `mx.example.com`); qpsmtpd looked up the exact domain only.
 *   6. An address literal (`user@[192.0.2.1]`, `user@[IPv6:2001:db8::1]`) naming the local IP of
 *      this connection (the address the client connected to) is accepted, as mail to this very
 *      host (RFC 5321 §4.1.3); qpsmtpd does not do this. `literals 0` turns it off. A literal
 *      written into rcpthosts (`[192.0.2.1]`) is accepted by rule 4 either way.
 *   Otherwise: DENY with `5.7.1 Relaying denied` (550 5.7.1).
 *
 * Arguments: `literals 0|1` (rule 6; default 1).
 * Config files: me, rcpthosts, morercpthosts(.cdb).
 * Hooks: rcpt.
 */
import { Plugin, DENY, OK, LOGERROR, LOGINFO, parseAddressLiteral, parseIp, unmapIp, formatIp } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const LOCAL_WITHOUT_DOMAIN = new Set(['postmaster', 'abuse']);
/** Characters in a local part that another MTA would read as a route to a further host. */
const ROUTING_IN_LOCAL_PART = /[%!@]/;

export default class RcptOk extends Plugin {
  private acceptLiterals = true;

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) this.log(LOGERROR, 'bad arguments: expected pairs such as "literals 0"');
    for (let i = 0; i + 1 < args.length; i += 2) {
      if (args[i] === 'literals') this.acceptLiterals = !/^(0|no|false|off)$/i.test(args[i + 1]!);
    }
  }

  hook_rcpt(tx: Transaction, rcpt: Address): HookResult {
    if (this.mayRelay()) return OK;

    if (ROUTING_IN_LOCAL_PART.test(rcpt.user)) {
      this.log(LOGINFO, `fail: the local part of ${rcpt} is a routing form (%, ! or @)`);
      return [DENY, '5.7.1 Relaying denied'];
    }

    if (rcpt.host === '') {
      if (LOCAL_WITHOUT_DOMAIN.has(rcpt.user.toLowerCase())) {
        this.log(LOGINFO, `pass: ${rcpt.user} without a domain is local`);
        return OK;
      }
      this.log(LOGINFO, `fail: ${rcpt.user} has no domain`);
      return [DENY, '5.7.1 Relaying denied'];
    }

    const host = rcpt.host.toLowerCase();
    if (this.inRcpthosts(host) || this.isOwnLiteral(host) || this.inMorercpthosts(host)) return OK;
    return [DENY, '5.7.1 Relaying denied'];
  }

  private mayRelay(): boolean {
    if (!this.connection.relayClient) return false;
    this.log(LOGINFO, 'skip, relay client');
    return true;
  }

  private inRcpthosts(host: string): boolean {
    const me = this.config('me');
    if (me !== undefined && host === me.trim().toLowerCase()) {
      this.log(LOGINFO, `pass: ${host} is me`);
      return true;
    }
    for (const line of this.configList('rcpthosts')) {
      const allowed = (line.trim().split(/\s+/)[0] ?? '').toLowerCase();
      if (allowed === '') continue;
      if (host === allowed) {
        this.log(LOGINFO, `pass: ${host} in rcpthosts`);
        return true;
      }
      if (allowed.startsWith('.') && allowed.length > 1 && host.endsWith(allowed)) {
        this.log(LOGINFO, `pass: ${host} in rcpthosts as ${allowed}`);
        return true;
      }
    }
    return false;
  }

  private inMorercpthosts(host: string): boolean {
    const map = this.configMap('morercpthosts');
    if (map.has(host)) {
      this.log(LOGINFO, `pass: ${host} found in morercpthosts`);
      return true;
    }
    // qmail: `.example.com` in morercpthosts accepts every subdomain of example.com.
    for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      const parent = host.slice(dot);
      if (parent.length > 1 && map.has(parent)) {
        this.log(LOGINFO, `pass: ${host} found in morercpthosts as ${parent}`);
        return true;
      }
    }
    this.log(LOGINFO, `fail: ${host} not in morercpthosts`);
    return false;
  }

  /** `[ip]` naming the address the client connected to. */
  private isOwnLiteral(host: string): boolean {
    if (!this.acceptLiterals || !host.startsWith('[')) return false;
    const literal = parseAddressLiteral(host);
    const local = parseIp(this.connection.localIp);
    if (literal === undefined || local === undefined) return false;
    if (formatIp(unmapIp(literal)) !== formatIp(unmapIp(local))) return false;
    this.log(LOGINFO, `pass: ${host} is the local address of this connection`);
    return true;
  }
}
