/**
 * resolvable_fromhost: the domain of the envelope sender must be able to receive mail: it has an
 * MX whose host has a usable address, or (no MX) an A or AAAA record of its own that is usable
 * (qpsmtpd's `resolvable_fromhost`; its old name `require_resolvable_fromhost` loads it too).
 *
 * Checked at MAIL:
 *   null sender `<>`          not checked (note `null`)
 *   `user@[192.0.2.1]`        an address literal: not looked up, karma -1 (note `ip`)
 *   MX records                every MX host is looked up (A and AAAA, at once); one usable
 *                             address is enough (note `mx`). MX hosts that all have no address or
 *                             only addresses in the invalid networks fail ("invalid MX for ...").
 *   a null MX (RFC 7505)      `MX 0 .`: the domain says it takes no mail: fails, and the refusal
 *                             is permanent (550 5.7.27 "Sender address has null MX")
 *   no MX                     the domain's own A and AAAA records; a usable one passes (note `a`)
 *   nothing                   NXDOMAIN, or no MX, A nor AAAA: fails ("<domain> has no MX or A")
 *   a temporary DNS failure   (time-out, SERVFAIL) when nothing passed: 450 4.4.3 "Temporary
 *                             address resolution failure", whatever reject_type says (qpsmtpd's
 *                             temp_resolver_failed), so the client tries again later
 * A failure replies "FQDN required in the envelope sender" (qpsmtpd's text, X.1.8), 450 by
 * default (reject_type temp), and costs karma -1.
 *
 * Config file `invalid_resolvable_fromhost`: the networks no mail server of the sender lives in,
 * CIDR blocks (IPv4 and IPv6) or addresses, one a line. Without the file: 0.0.0.0/8,
 * 10.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/4,
 * 240.0.0.0/4, ::/128, ::1/128, fc00::/7, fe80::/10, ff00::/8.
 *
 * Arguments (pairs):
 *   reject 0|1|naughty   1 (default): refuse; 0: only log and note; naughty: leave it to naughty
 *   reject_type perm|temp|disconnect|temp_disconnect   default temp (450), as qpsmtpd
 *   timeout N            seconds: a cap on the lookups below the limits here under
 *   loglevel N
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal); at most 10 MX hosts are looked up.
 * Transaction notes: `resolvable_fromhost` (`mx`, `a`, `ip`, `null`, or what failed),
 * `resolvable_fromhost_host` (the domain). Not checked (the shared immunity): relay clients,
 * whitelisted hosts and senders. Hooks: mail. Log (LOGINFO): `pass, ...`, `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: IPv6 networks in the config file and in the default; a default list
 * when the file is missing (qpsmtpd had none: its sample had five IPv4 blocks); every MX host's
 * every address is considered (qpsmtpd checked the first address of each); null MX is recognised;
 * NXDOMAIN for the MX ends the check (the name does not exist).
 */
import { Plugin, DECLINED, DENY, DENYSOFT, LOGDEBUG, LOGINFO, LOGWARN, ConfigCache, IpList, adjustKarma, getReject, isImmune, lookUp, pairArguments, parseAddressLiteral, parseIp, withTimeout, timeoutArgument } from 'qpsmtpd';
import type { Address, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_INVALID = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
];
const MAX_MX_HOSTS = 10;

/** The outcome of the DNS checks: a pass (note), a failure (why), or unknown for now. */
type Verdict = { readonly pass: string } | { readonly fail: string; readonly nullMx?: boolean } | { readonly temp: string };

/** Addresses of some names: the usable ones, and whether a lookup failed temporarily. */
interface Addresses {
  readonly usable: string[];
  readonly unusable: string[];
  readonly tempError: string | undefined;
}

export default class ResolvableFromhost extends Plugin {
  private reject = '1';
  private rejectType = 'temp';
  private timeout: number | undefined;
  private readonly invalid = new ConfigCache<IpList>('invalid_resolvable_fromhost', (lines, plugin) => {
    const list = new IpList(lines.length > 0 ? lines : DEFAULT_INVALID);
    for (const bad of list.invalid) plugin.log(LOGWARN, `invalid_resolvable_fromhost: "${bad}" is no network; skipped`);
    return list;
  });

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['reject', 'reject_type', 'timeout']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type') ?? 'temp';
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
    this.invalid.get(this);
  }

  async hook_mail(tx: Transaction, sender: Address, _params: EsmtpParams): Promise<HookResult> {
    if (isImmune(this)) return DECLINED;
    if (sender.isNull) {
      tx.notes['resolvable_fromhost'] = 'null';
      this.log(LOGINFO, 'pass, null sender');
      return DECLINED;
    }
    const host = sender.host.toLowerCase();
    tx.notes['resolvable_fromhost_host'] = host;
    const verdict = await this.check(host);
    if ('pass' in verdict) {
      tx.notes['resolvable_fromhost'] = verdict.pass;
      return DECLINED;
    }
    if ('temp' in verdict) {
      tx.notes['resolvable_fromhost'] = verdict.temp;
      if (/^(0|no|false|off)?$/i.test(this.reject.trim())) {
        this.log(LOGINFO, `fail, tolerated, ${verdict.temp}`);
        return DECLINED;
      }
      return getReject({ plugin: this, reject: this.reject, rejectType: 'temp', message: '4.4.3 Temporary address resolution failure', logMessage: verdict.temp });
    }
    tx.notes['resolvable_fromhost'] = verdict.fail;
    adjustKarma(this, -1);
    if (verdict.nullMx === true) {
      const rejected = getReject({ plugin: this, reject: this.reject, rejectType: 'perm', message: '5.7.27 Sender address has null MX', logMessage: verdict.fail });
      return Array.isArray(rejected) ? [DENY, rejected[1]] : rejected;
    }
    return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message: '5.1.8 FQDN required in the envelope sender', logMessage: verdict.fail });
  }

  private async check(host: string): Promise<Verdict> {
    if (host === '') return { fail: 'unparsable host' };
    if (parseAddressLiteral(host) !== undefined) {
      this.log(LOGINFO, `skip, ${host} is an IP`);
      adjustKarma(this, -1);
      return { pass: 'ip' };
    }
    return withTimeout(this.signal, this.timeout, (signal) => this.lookUpHost(host, signal));
  }

  /** MX, then A/AAAA of the MX hosts or of the host itself. */
  private async lookUpHost(host: string, signal: AbortSignal): Promise<Verdict> {
    const mx = await lookUp(this.dns, host, 'MX', signal);
    if (mx.status === 'error') return { temp: `MX of ${host}: ${mx.code}` };
    if (mx.status === 'none' && mx.code === 'ENOTFOUND') return { fail: `${host} does not exist` };
    if (mx.status === 'found') {
      if (mx.records.some((r) => r.exchange === '' || r.exchange === '.')) return { fail: `${host} has a null MX`, nullMx: true };
      const exchanges = [...new Set(mx.records.sort((a, b) => a.priority - b.priority).map((r) => r.exchange.toLowerCase()))].slice(0, MAX_MX_HOSTS);
      const found = await this.addressesOf(exchanges, signal);
      if (found.usable.length > 0) {
        this.log(LOGINFO, `pass, ${host} has MX at ${exchanges.join(', ')}`);
        return { pass: 'mx' };
      }
      if (found.tempError !== undefined) return { temp: `MX host of ${host}: ${found.tempError}` };
      const what = found.unusable.length > 0 ? `in invalid networks (${found.unusable.join(', ')})` : 'without addresses';
      return { fail: `invalid MX for ${host}: MX hosts ${what}` };
    }
    this.log(LOGDEBUG, `${host} has no MX`);
    const own = await this.addressesOf([host], signal);
    if (own.usable.length > 0) {
      this.log(LOGINFO, `pass, found A for ${host}`);
      return { pass: 'a' };
    }
    if (own.tempError !== undefined) return { temp: `A/AAAA of ${host}: ${own.tempError}` };
    if (own.unusable.length > 0) return { fail: `${host} has no MX, and its addresses are in invalid networks (${own.unusable.join(', ')})` };
    return { fail: `${host} has no MX or A` };
  }

  /** The A and AAAA records of every name (an IP address stands for itself), at once. */
  private async addressesOf(names: readonly string[], signal: AbortSignal): Promise<Addresses> {
    const invalid = this.invalid.get(this);
    const usable: string[] = [];
    const unusable: string[] = [];
    let tempError: string | undefined;
    const sort = (ip: string): void => {
      if (invalid.match(ip) === undefined) usable.push(ip);
      else unusable.push(ip);
    };
    await Promise.all(
      names.flatMap((name) => {
        if (parseIp(name) !== undefined) {
          sort(name);
          return [];
        }
        return (['A', 'AAAA'] as const).map(async (type) => {
          const r = await lookUp(this.dns, name, type, signal);
          if (r.status === 'found') r.records.forEach(sort);
          else if (r.status === 'error') tempError ??= `${type} ${name}: ${r.code}`;
        });
      }),
    );
    return { usable, unusable, tempError };
  }
}
