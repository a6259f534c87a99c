/**
 * relay: decide at connect time whether the client may relay (qpsmtpd's `relay`, which replaced
 * check_relay, check_norelay and relay_only).
 *
 * On `connect` it sets `connection.relayClient`, checking in this order; the first that decides wins:
 *   1. config/norelayclients: a match forces relayClient = false (it overrides everything below,
 *      RELAYCLIENT included). Entries as in relayclients (CIDR blocks are accepted here too).
 *   2. RELAYCLIENT in the daemon's environment (tcpserver rules, `RELAYCLIENT= ./bin/qpsmtpd`):
 *      relayClient = true.
 *   3. config/relayclients, one entry a line:
 *        a full address         192.0.2.25 / 2001:db8::25 (any spelling of the same address)
 *        a prefix               192.168.42.  (ends in a dot: whole octets)
 *                               2001:db8:e431:ae06:  (ends in a colon: whole groups)
 *        a CIDR block           10.1.0.0/24  2001:db8:e431:ae06::/64 (network and broadcast
 *                               addresses included: qpsmtpd's strict comparison left them out)
 *   4. config/morerelayclients: a map (morerelayclients.cdb when present, else the plain file),
 *      looked up by full address and by prefix (`192.168.42.`, `2001:db8:e431:ae06:`), no CIDR.
 *   Otherwise relayClient is left as it was (false unless another plugin set it).
 * An IPv4 client seen as `::ffff:a.b.c.d` is matched as `a.b.c.d`.
 *
 * Unlike qpsmtpd, `::1` is NOT always a relay client: list it in relayclients if local IPv6
 * clients may relay (the shipped config does not, so a local proxy cannot open a relay by accident).
 *
 * Arguments:
 *   only 1   also register a `rcpt` hook that answers OK for relay clients and DENY (550 5.7.1)
 *            for everyone else: a submission-only server. List this plugin before the other rcpt
 *            plugins: for relay clients its OK ends the rcpt chain. Relay permission is looked at
 *            per recipient, so a client that authenticated after connecting is let through.
 *
 * Hooks: connect (always DECLINED), rcpt (with `only 1`).
 * Log (LOGINFO): `pass, ...` when relaying is allowed, `fail, disabled by norelayclients`, or
 * `skip, no match`.
 */
import { Plugin, DECLINED, DENY, OK, LOGDEBUG, LOGERROR, LOGINFO, LOGWARN, IpList, ipPrefixKeys } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

/** The parsed list of a config file, rebuilt only when the file's lines change. */
interface CachedList {
  readonly key: string;
  readonly list: IpList;
}

export default class Relay extends Plugin {
  private readonly lists = new Map<string, CachedList>();

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) this.log(LOGERROR, 'bad arguments: expected pairs such as "only 1"');
    const options = new Map<string, string>();
    for (let i = 0; i + 1 < args.length; i += 2) options.set(args[i]!, args[i + 1]!);
    const only = options.get('only');
    if (only !== undefined && !/^(0|no|false|off)?$/i.test(only)) this.registerHook('rcpt', 'relayOnly');
  }

  hook_connect(_tx: Transaction): HookResult {
    const c = this.connection;
    const ip = c.remoteIp;

    const blocked = this.list('norelayclients').match(ip);
    if (blocked !== undefined) {
      c.relayClient = false;
      this.log(LOGINFO, `fail, disabled by norelayclients (${ip} matches ${blocked.entry})`);
      return DECLINED;
    }

    if (this.env['RELAYCLIENT'] !== undefined) {
      c.relayClient = true;
      this.log(LOGINFO, 'pass, enabled by env');
      return DECLINED;
    }

    const allowed = this.list('relayclients').match(ip);
    if (allowed !== undefined) {
      c.relayClient = true;
      const how = allowed.kind === 'cidr' ? 'cidr match' : 'octet match in relayclients';
      this.log(LOGINFO, `pass, ${how} (${ip} matches ${allowed.entry})`);
      return DECLINED;
    }

    const more = this.configMap('morerelayclients');
    const key = ipPrefixKeys(ip).find((k) => more.has(k));
    if (key !== undefined) {
      c.relayClient = true;
      this.log(LOGINFO, `pass, octet match in morerelayclients (${ip} matches ${key})`);
      return DECLINED;
    }

    this.log(LOGINFO, 'skip, no match');
    return DECLINED;
  }

  /** `only 1`: relay clients may send anywhere, nobody else may send at all. */
  relayOnly(_tx: Transaction): HookResult {
    if (this.connection.relayClient) {
      this.log(LOGINFO, 'pass, relay client');
      return OK;
    }
    this.log(LOGINFO, 'fail, not a relay client (relay only)');
    return [DENY, '5.7.1 Relaying denied'];
  }

  /** A config file as an IpList; parsed again only when its content changed. */
  private list(name: string): IpList {
    const lines = this.configList(name);
    const key = lines.join('\n');
    const hit = this.lists.get(name);
    if (hit !== undefined && hit.key === key) return hit.list;
    const list = new IpList(lines, { cidr: true });
    for (const bad of list.invalid) this.log(LOGWARN, `${name}: ignoring "${bad}": not an address, prefix or CIDR block`);
    if (list.size === 0) this.log(LOGDEBUG, `${name}: no entries`);
    this.lists.set(name, { key, list });
    return list;
  }
}
