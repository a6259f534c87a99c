/**
 * stunnel: take the real client's address from a PROXY protocol v1 line that a local TLS
 * terminator (stunnel with `protocol = proxy`, HAProxy `send-proxy`) sends as the first command
 * (qpsmtpd's `stunnel`, loaded as `stunnel proxy on`).
 *
 *   PROXY TCP4 192.0.2.7 198.51.100.1 50060 465
 *   PROXY TCP6 2001:db8::7 2001:db8::1 50060 465
 *   PROXY UNKNOWN            (the proxy's own health check: nothing is changed)
 *
 * The line is accepted only
 *   - from a client that may send it: 127.0.0.1 or ::1 (the proxy on this machine), or an
 *     address in config/proxy_trusted;
 *   - once, and before any other command (HELO, EHLO, MAIL, RCPT, DATA, NOOP, VRFY, HELP,
 *     STARTTLS or any other verb).
 * Then every plugin from here on sees the client it names (`connection.remoteIp`, `remotePort`,
 * `localIp`, `localPort`; `connection.proxiedBy` is the proxy), the connection notes `proxy`
 * (`YES`), `protocol` (TCP4/TCP6), `remote_ip`, `local_ip`, `remote_port`, `local_port` are set
 * as qpsmtpd sets them, the line is logged (LOGINFO `stunnel : ip:port`), and nothing is answered
 * (DONE): the proxy does not read a reply, it would reach the client as an answer to nothing.
 * From anyone else, a second time or after another command the line gets `521 5.7.1 ...`, a
 * malformed one `521 5.5.2 Malformed PROXY line`, and the connection is closed (DENY_DISCONNECT).
 * Every other unknown verb is left to the plugins after this one and to the core's 500
 * (DECLINED).
 *
 * The greeting and the connect hook happened before the line arrived, with the proxy's address:
 * plugins that judge the client at connect (dnsbl, earlytalker, relay ...) judged the proxy. The
 * core's own PROXY support (config/proxy_trusted: v1 and v2, read before the connect hook) has no
 * such gap and is the better choice; this plugin is for configurations carried over from qpsmtpd.
 * A proxy listed in proxy_trusted is served by the core, which reads its header before any plugin.
 *
 * Arguments (pairs): `proxy on|off` (off, the default, loads the plugin without effect), `loglevel N`.
 * Config files: proxy_trusted. Hooks: unrecognized_command (put in front of the other plugins on
 * it, so that count_unrecognized_commands does not count the PROXY line), and helo, ehlo, mail,
 * rcpt, data, vrfy, noop, help to see that another command came first (always DECLINED).
 *
 * Differences from qpsmtpd, on purpose:
 *   - Other unknown verbs are DECLINED; qpsmtpd answered OK to every one of them, so no later
 *     plugin ever saw them and the client got a 250 for any nonsense.
 *   - ::1 and the proxy_trusted addresses may send the line, not only 127.0.0.1; the line must
 *     come first; the addresses are checked (family, IP, port), not just split into five words.
 *   - The client's host name is not looked up (qpsmtpd set remote_host from its PTR record):
 *     it is `[ip]` until a DNS plugin finds it.
 */
import { Plugin, DECLINED, DENY_DISCONNECT, DONE, LOGINFO, LOGWARN, IpList, normalizeIp, parseIp, parseProxyHeader } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

/** Connection note: a command other than PROXY has been seen. */
const SEEN = 'stunnel_other_command';
const LOCAL = new Set(['127.0.0.1', '::1']);
const OTHER_COMMANDS = ['helo', 'ehlo', 'mail', 'rcpt', 'data', 'vrfy', 'noop', 'help'] as const;

export default class Stunnel extends Plugin {
  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) this.log(LOGWARN, `bad arguments "${args.join(' ')}": expected "proxy on"`);
    let proxy = '';
    for (let i = 0; i + 1 < args.length; i += 2) {
      if (args[i] === 'proxy') proxy = args[i + 1]!;
      else if (args[i] !== 'loglevel') this.log(LOGWARN, `ignoring unknown argument "${args[i]} ${args[i + 1]}"`);
    }
    if (proxy.toUpperCase() !== 'ON') {
      this.log(LOGINFO, 'proxy protocol not enabled (give "proxy on")');
      return;
    }
    this.log(LOGINFO, 'proxy protocol enabled');
    this.registerHook('unrecognized_command', 'stunnel', { first: true });
    for (const hook of OTHER_COMMANDS) this.registerHook(hook, 'otherCommand', { first: true });
  }

  otherCommand(_tx: Transaction): HookResult {
    this.connection.notes[SEEN] = true;
    return DECLINED;
  }

  stunnel(_tx: Transaction, verb: string, rest: string): HookResult {
    const c = this.connection;
    if (verb !== 'proxy') {
      c.notes[SEEN] = true;
      return DECLINED;
    }
    const from = c.remoteIp;
    // Once: after a PROXY line (or the core's header) the client is no longer the proxy.
    if (c.notes['proxy'] !== undefined || c.proxiedBy !== undefined) {
      this.log(LOGWARN, `fail, a second PROXY line (client ${from}, through ${c.proxiedBy ?? from})`);
      return [DENY_DISCONNECT, '5.7.1 PROXY already given'];
    }
    if (!this.mayProxy(from)) {
      this.log(LOGWARN, `fail, PROXY line from ${from}, which may not send one`);
      return [DENY_DISCONNECT, '5.7.1 PROXY not accepted from you'];
    }
    if (c.notes[SEEN] === true || (c.tls !== undefined && !c.implicitTls)) {
      this.log(LOGWARN, `fail, PROXY line from ${from} after other commands`);
      return [DENY_DISCONNECT, '5.7.1 PROXY must come first'];
    }
    const parsed = parseProxyHeader(Buffer.from(`PROXY ${rest}\r\n`, 'latin1'));
    if (parsed.kind !== 'ok' || parsed.version !== 1) {
      const reason = parsed.kind === 'invalid' ? parsed.reason : 'malformed PROXY v1 line';
      this.log(LOGWARN, `fail, ${reason}: PROXY ${rest}`);
      return [DENY_DISCONNECT, '5.5.2 Malformed PROXY line'];
    }
    const addresses = parsed.addresses;
    if (addresses === undefined) {
      // PROXY UNKNOWN: the proxy talks for itself; the connection keeps its addresses.
      c.notes['proxy'] = 'YES';
      c.notes['protocol'] = 'UNKNOWN';
      this.log(LOGINFO, `stunnel : UNKNOWN, keeping ${from}`);
      return DONE;
    }
    const family = rest.split(' ')[0];
    const remote = parseIp(addresses.remoteIp);
    const local = parseIp(addresses.localIp);
    const want = family === 'TCP4' ? 4 : 6;
    if (remote?.family !== want || local?.family !== want) {
      this.log(LOGWARN, `fail, addresses do not match ${family ?? ''}: PROXY ${rest}`);
      return [DENY_DISCONNECT, '5.5.2 Malformed PROXY line'];
    }
    c.adoptProxied(addresses);
    c.notes['proxy'] = 'YES';
    c.notes['protocol'] = family;
    c.notes['remote_ip'] = addresses.remoteIp;
    c.notes['local_ip'] = addresses.localIp;
    c.notes['remote_port'] = addresses.remotePort;
    c.notes['local_port'] = addresses.localPort;
    this.log(LOGINFO, `stunnel : ${addresses.remoteIp}:${addresses.remotePort}`);
    return DONE;
  }

  /** 127.0.0.1, ::1 (also as ::ffff:127.0.0.1), or listed in proxy_trusted. */
  private mayProxy(ip: string): boolean {
    if (LOCAL.has(normalizeIp(ip) ?? ip)) return true;
    const trusted = this.configList('proxy_trusted');
    return trusted.length > 0 && new IpList(trusted).match(ip) !== undefined;
  }
}
