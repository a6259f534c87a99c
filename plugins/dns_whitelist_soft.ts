/**
 * dns_whitelist_soft: a DNS-based whitelist ("DNSWL") for the other plugins (qpsmtpd's
 * `dns_whitelist_soft`). List it before the plugins it should override.
 *
 * At connect the client's address (IPv4, or IPv6 as 32 nibbles) is reversed and asked of every
 * zone in config/whitelist_zones at once (A and TXT). Listed (an A record in 127.0.0.0/8, or a TXT
 * record): the connection note `whitelisthost` is set to the TXT text (or "Listed by <zone>"),
 * and every plugin using the shared immunity (dnsbl, rhsbl, helo, resolvable_fromhost, fcrdns,
 * uribl ...) skips the client for the rest of the session. Nothing is ever refused; other connect
 * plugins still run (the answer is DECLINED), as in qpsmtpd.
 *
 * Config file whitelist_zones: one zone a line (words after the zone are ignored).
 * Arguments (pairs): `timeout N` (seconds: a cap on the lookups below the limits here under),
 * `loglevel N`.
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal). A zone that does not answer is logged
 * (LOGERROR, "temporary error") and whitelists nobody.
 * Connection notes: `whitelisthost`, `dns_whitelist_soft_zones` (the listing zones).
 * Hooks: connect. Log: `pass, ... is whitelisted` (LOGNOTICE), `skip, ...`.
 *
 * Differences from qpsmtpd: the note is set at connect (qpsmtpd set it at the first RCPT, so
 * HELO and MAIL checks were not spared); IPv6 clients are looked up; A is asked too.
 */
import { Plugin, DECLINED, LOGDEBUG, LOGERROR, LOGINFO, LOGNOTICE, ConfigCache, askZones, pairArguments, reverseIpLabels, withTimeout, timeoutArgument } from 'qpsmtpd';
import type { HookResult, PluginHost } from 'qpsmtpd';

export default class DnsWhitelistSoft extends Plugin {
  private timeout: number | undefined;
  private readonly zones = new ConfigCache<string[]>('whitelist_zones', (lines) =>
    lines.map((l) => (l.trim().split(/\s+/)[0] ?? '').replace(/^\.+|\.+$/g, '').toLowerCase()).filter((z) => z !== ''),
  );

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['timeout']);
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
  }

  async hook_connect(): Promise<HookResult> {
    const zones = this.zones.get(this);
    if (zones.length === 0) {
      this.log(LOGDEBUG, 'skip, no zones');
      return DECLINED;
    }
    const ip = this.connection.remoteIp;
    const reversed = reverseIpLabels(ip);
    if (reversed === undefined) return DECLINED;
    const asked = zones.map((zone) => ({ zone, txt: true }));
    const { listed, failed } = await withTimeout(this.signal, this.timeout, (signal) => askZones(this.dns, asked, (zone) => `${reversed}.${zone}`, signal));
    for (const f of failed) this.log(LOGERROR, `${f.zone}: temporary error (${f.code})`);
    const first = listed[0];
    if (first === undefined) {
      this.log(LOGINFO, `skip, ${ip} is not listed`);
      return DECLINED;
    }
    const note = first.txt ?? `Listed by ${first.zone}`;
    this.connection.notes['whitelisthost'] = note;
    this.connection.notes['dns_whitelist_soft_zones'] = listed.map((l) => l.zone);
    this.log(LOGNOTICE, `pass, host ${ip} is whitelisted: ${note}`);
    return DECLINED;
  }
}
