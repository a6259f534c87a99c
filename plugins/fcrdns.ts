/**
 * fcrdns: forward-confirmed reverse DNS of the client (qpsmtpd's `fcrdns`; RFC 8601 "iprev").
 *
 * At connect the client's address is looked up in reverse (PTR, IPv4 or IPv6), then every name
 * found (at most 10) forward (A and AAAA, all at once). The client passes when one of those
 * addresses is its own. The outcome goes into the Authentication-Results header of every message
 * of the session (RFC 8601 §2.7.3, §3):
 *   iprev=pass (<name>) smtp.remote-ip=<ip>        a name maps back to the address; karma +1
 *   iprev=fail (...) smtp.remote-ip=<ip>           names, but none maps back; karma -1
 *   iprev=permerror smtp.remote-ip=<ip>            no PTR record (NXDOMAIN or none); karma -1
 *   iprev=temperror smtp.remote-ip=<ip>            the lookups failed (time-out, SERVFAIL)
 * A name whose address is in the client's network (same /24, IPv6 same /64: pools of servers that
 * name each other) is noted as `network` and not refused (qpsmtpd's leniency), but reported as
 * `iprev=fail (network match only)`: RFC 8601 wants the address itself for a pass.
 * A client on the loopback network is not looked up (karma +1).
 *
 * Arguments (pairs):
 *   reject 0|1|naughty   0 (default, as qpsmtpd): only note and log; 1: refuse a client that got
 *                        fail or permerror (never temperror); naughty: leave it to naughty
 *   reject_type perm|temp|disconnect|temp_disconnect   default temp (qpsmtpd forced temp)
 *   timeout N            seconds: a cap on the lookups below the limits here under
 *   loglevel N
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal).
 * Connection notes: `fcrdns` (pass, network, fail, permerror, temperror), `fcrdns_ptr` (the PTR
 * names), `fcrdns_name` (the confirmed name, on pass), `karma`. Not checked (the shared
 * immunity): relay clients and whitelisted hosts. Hooks: connect. Log (LOGINFO): `pass, ...`,
 * `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: reject is applied (qpsmtpd's fcrdns never refused, whatever it was
 * told); IPv6 clients are confirmed too; PTR names are asked A and AAAA at once; a network match
 * is no iprev pass; qpsmtpd's is_fqdn test on the name the core had looked up is left out (the
 * daemon does no reverse lookup of its own).
 */
import { Plugin, DECLINED, LOGDEBUG, LOGINFO, LOGNOTICE, addAuthResult, adjustKarma, getReject, ipInCidr, isImmune, lookUp, normalizeIp, pairArguments, ptrName, withTimeout, timeoutArgument } from 'qpsmtpd';
import type { HookResult, PluginHost } from 'qpsmtpd';

const MAX_NAMES = 10;

type Outcome = 'pass' | 'network' | 'fail' | 'permerror' | 'temperror';

export default class Fcrdns extends Plugin {
  private reject = '0';
  private rejectType = 'temp';
  private timeout: number | undefined;

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['reject', 'reject_type', 'timeout']);
    this.reject = pairs.get('reject') ?? '0';
    this.rejectType = pairs.get('reject_type') ?? 'temp';
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
  }

  async hook_connect(): Promise<HookResult> {
    if (isImmune(this)) return DECLINED;
    const ip = normalizeIp(this.connection.remoteIp);
    if (ip === undefined) return DECLINED;
    if (ipInCidr(ip, '127.0.0.0/8') || ip === '::1') {
      adjustKarma(this, 1);
      this.log(LOGINFO, 'pass, is localhost');
      return DECLINED;
    }
    const notes = this.connection.notes;
    const { outcome, names, name, detail } = await withTimeout(this.signal, this.timeout, (signal) => this.confirm(ip, signal));
    notes['fcrdns'] = outcome;
    notes['fcrdns_ptr'] = names;
    if (name !== undefined) notes['fcrdns_name'] = name;
    const comment = outcome === 'network' ? 'network match only' : outcome === 'fail' ? names.join(' ') : name;
    addAuthResult(this.connection.authResults, {
      method: 'iprev',
      result: outcome === 'network' ? 'fail' : outcome,
      comment,
      properties: { 'smtp.remote-ip': ip },
    });
    switch (outcome) {
      case 'pass':
        adjustKarma(this, 1);
        this.log(LOGINFO, `pass, ${detail}`);
        return DECLINED;
      case 'network':
        this.log(LOGNOTICE, `pass, ${detail}`);
        return DECLINED;
      case 'temperror':
        this.log(LOGINFO, `skip, temporary error: ${detail}`);
        return DECLINED;
      default:
        adjustKarma(this, -1);
        return getReject({
          plugin: this,
          reject: this.reject,
          rejectType: this.rejectType,
          message: outcome === 'permerror' ? `No reverse DNS for ${ip}` : `Reverse DNS of ${ip} does not match its forward DNS`,
          logMessage: detail,
        });
    }
  }

  private async confirm(ip: string, signal: AbortSignal): Promise<{ outcome: Outcome; names: string[]; name?: string; detail: string }> {
    const ptr = await lookUp(this.dns, ptrName(ip)!, 'PTR', signal);
    if (ptr.status === 'error') return { outcome: 'temperror', names: [], detail: `PTR of ${ip}: ${ptr.code}` };
    if (ptr.status === 'none') return { outcome: 'permerror', names: [], detail: `no rDNS for ${ip} (${ptr.code})` };
    const names = [...new Set(ptr.records.map((n) => n.toLowerCase()))].slice(0, MAX_NAMES);
    this.log(LOGDEBUG, `PTR: ${names.join(', ')}`);
    const forward = await Promise.all(
      names.flatMap((name) => (['A', 'AAAA'] as const).map(async (type) => ({ name, answer: await lookUp(this.dns, name, type, signal) }))),
    );
    let network: string | undefined;
    let errors = 0;
    let found = 0;
    for (const { name, answer } of forward) {
      if (answer.status === 'error') errors++;
      if (answer.status !== 'found') continue;
      found += answer.records.length;
      for (const address of answer.records) {
        if (normalizeIp(address) === ip) return { outcome: 'pass', names, name, detail: `${name} has ${ip}` };
        if (ipInCidr(address, `${ip}/${ip.includes(':') ? 64 : 24}`)) network ??= name;
      }
    }
    if (network !== undefined) return { outcome: 'network', names, detail: `forward network match (${network})` };
    if (found === 0 && errors > 0) return { outcome: 'temperror', names, detail: `forward lookups of ${names.join(', ')} failed` };
    return { outcome: 'fail', names, detail: found === 0 ? `no PTR hosts have forward DNS (${names.join(', ')})` : `no PTR host has ${ip} (${names.join(', ')})` };
  }
}
