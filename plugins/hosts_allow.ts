/**
 * hosts_allow: decide, before the greeting, whether a client may connect at all (qpsmtpd's
 * `hosts_allow`). It runs on `pre-connection`, the earliest hook, so a refused client costs
 * nothing more than one reply line.
 *
 * Two checks, in this order:
 *
 *   1. Concurrency: more than the allowed number of simultaneous sessions from the client's IP
 *      (this one included; the hook's `connectionsFromIp`) is refused with DENYSOFT:
 *      `451 4.7.1 too many connections from <ip>, try again later`, and the connection closed.
 *      The allowed number is the `max_from_ip` argument, else config/max_connections_per_ip (the
 *      core's own hard limit, qpsmtpd-forkserver's --max-from-ip), else 50. As in qpsmtpd, the
 *      connection note `karma_history` (set by a karma plugin listed earlier) bends it: above 5
 *      allows 3 more, 0 or less allows only 1. (The core refuses clients over
 *      max_connections_per_ip with 421 before any plugin runs, so without `max_from_ip` below it
 *      this check only matters for a client with poor karma.)
 *
 *   2. config/hosts_allow, one rule a line, the first rule matching the client wins:
 *        IP-or-net/mask  CODE  [message]
 *      e.g.
 *        192.168.3.4     DECLINED
 *        192.168.3.0/24  DENY Sorry, known spam only source
 *      lets 192.168.3.4 in and refuses the rest of 192.168.3.0/24. CODE is a return code name
 *      (OK, DENY, DENYSOFT, DENY_DISCONNECT, DENYHARD, DENYSOFT_DISCONNECT, DECLINED, DONE);
 *      the plugin returns it with the message:
 *        DENY, DENY_DISCONNECT           550 (the message, or "Sorry, service not available for you")
 *        DENYSOFT, DENYSOFT_DISCONNECT   451 (the message, or "Sorry, try again later")
 *        anything else                   the client goes on to the greeting; OK also skips the
 *                                        pre-connection plugins listed after this one.
 *      The connection is closed after a refusal. A CODE that is no code name ends the search as
 *      DECLINED (what qpsmtpd does), with a warning in the log; a line with no CODE is skipped.
 *
 * Arguments (pairs): `max_from_ip N` (ours: qpsmtpd took the limit from the forkserver's
 * command line), `loglevel N`.
 * Config files: hosts_allow, max_connections_per_ip. Hooks: pre-connection.
 * Log: LOGINFO `fail, ...` for each refusal; LOGDEBUG `pass`.
 *
 * Differences from qpsmtpd, on purpose:
 *   - IPv6 clients and rules work (qpsmtpd's rules were IPv4 only), and an IPv4 client seen as
 *     `::ffff:a.b.c.d` matches IPv4 rules.
 *   - A net whose host bits are set (`192.168.3.5/24`) means its network; qpsmtpd compared the
 *     masked client address with the text as written, so such a rule never matched. The prefix
 *     forms of relayclients (`192.168.3.`) are understood too.
 *   - Code names are case-insensitive; a refusal is logged (qpsmtpd's log test never matched).
 *   - Only the connections of this process are counted (each `--workers` worker has its own
 *     count), as the core's max_connections_per_ip.
 */
import { Plugin, DENY, DENYSOFT, DENY_DISCONNECT, DENYSOFT_DISCONNECT, DECLINED, LOGDEBUG, LOGINFO, LOGWARN, ConfigCache, IpList, returnCodeByName } from 'qpsmtpd';
import type { HookResult, PluginHost, PreConnectionInfo, Transaction } from 'qpsmtpd';

/** The core's default for max_connections_per_ip. */
const DEFAULT_MAX_FROM_IP = 50;

interface Rule {
  readonly net: string;
  readonly list: IpList;
  readonly code: string;
  readonly message: string | undefined;
}

export default class HostsAllow extends Plugin {
  private maxFromIp: number | undefined;
  /** The parsed rules, rebuilt only when the lines of config/hosts_allow change. */
  private readonly rules = new ConfigCache('hosts_allow', (lines, plugin) => parseRules(lines, plugin));

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) throw new Error(`hosts_allow: unrecognized/mismatched arguments "${args.join(' ')}": expected pairs such as "max_from_ip 5"`);
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      if (key === 'max_from_ip') {
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1) throw new Error(`hosts_allow: max_from_ip "${value}" is no positive whole number`);
        this.maxFromIp = n;
      } else if (key !== 'loglevel') {
        this.log(LOGWARN, `ignoring unknown argument "${key} ${value}"`);
      }
    }
  }

  hook_pre_connection(_tx: Transaction, info: PreConnectionInfo): HookResult {
    const ip = info.remoteIp;

    const max = this.limit();
    if (info.connectionsFromIp > max) {
      const why = `too many connections from ${ip}`;
      this.log(LOGINFO, `fail: ${why} (${info.connectionsFromIp} > ${max})`);
      return [DENYSOFT, `${why}, try again later`];
    }

    for (const rule of this.rules.get(this)) {
      if (rule.list.match(ip) === undefined) continue;
      const code = returnCodeByName(rule.code.toUpperCase());
      if (code === undefined) {
        this.log(LOGWARN, `hosts_allow: "${rule.code}" (for ${rule.net}) is no return code name; taken as DECLINED`);
        return DECLINED;
      }
      const refused = code === DENY || code === DENYSOFT || code === DENY_DISCONNECT || code === DENYSOFT_DISCONNECT;
      this.log(refused ? LOGINFO : LOGDEBUG, `${refused ? 'fail' : 'pass'}, ${ip} matches ${rule.net} ${rule.code.toUpperCase()}${rule.message ? `, ${rule.message}` : ''}`);
      return rule.message === undefined ? code : [code, rule.message];
    }

    this.log(LOGDEBUG, 'pass');
    return DECLINED;
  }

  /** The allowed sessions from one IP, bent by the karma history as qpsmtpd's karma_bump. */
  private limit(): number {
    let max = this.maxFromIp;
    if (max === undefined) {
      const configured = Number(this.config('max_connections_per_ip'));
      max = Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_MAX_FROM_IP;
    }
    const history = this.connection.notes['karma_history'];
    if (history === undefined || history === null || history === '') return max;
    const karma = Number(history);
    if (karma > 5) {
      this.log(LOGDEBUG, 'connect limit +3 for positive karma');
      return max + 3;
    }
    if (karma <= 0) {
      this.log(LOGINFO, `connect limit 1, karma ${karma}`);
      return 1;
    }
    return max;
  }
}

/** The lines of config/hosts_allow as rules; a line without a CODE is skipped, as in qpsmtpd. */
function parseRules(lines: readonly string[], plugin: Plugin): Rule[] {
  const rules: Rule[] = [];
  for (const line of lines) {
    const match = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line.trim());
    if (match === null) continue;
    const [, net, code, message] = match as unknown as [string, string, string, string | undefined];
    const list = new IpList([net]);
    if (list.size === 0) {
      plugin.log(LOGWARN, `hosts_allow: "${net}" is no IP address or net/mask; line skipped`);
      continue;
    }
    rules.push({ net, list, code, message: message === undefined || message.trim() === '' ? undefined : message.trim() });
  }
  return rules;
}
