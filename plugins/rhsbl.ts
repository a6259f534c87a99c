/**
 * rhsbl: look the envelope sender's domain up in right-hand-side block lists (qpsmtpd's `rhsbl`).
 *
 * At MAIL the sender's domain is asked of every zone in config/rhsbl_zones at once:
 * `example.com.dbl.example` (A, and TXT for zones without a message of their own). Listed: an A
 * record in 127.0.0.0/8, or, for a list that publishes TXT only, a TXT record. The first listing
 * zone in file order decides the reply: "Mail from <domain> rejected because it <text>", where
 * the text is the zone's own message, else its TXT record, else "is listed by <zone>".
 *
 * Config file rhsbl_zones, one zone a line, optionally followed (after white space) by the
 * message for lists that answer with A records only:
 *   dbl.example
 *   abuse.rfc-ignorant.example does not support abuse@domain
 *
 * Arguments (pairs; a single word is the reject_type, qpsmtpd's old form `rhsbl disconnect`):
 *   reject 0|1|naughty   1 (default): refuse (550); 0: only log and note; naughty: leave it to naughty
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm
 *   timeout N            seconds: a cap on the lookups below the limits here under
 *   loglevel N
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal). A zone that does not answer is logged
 * (LOGERROR, "temporary error") and counts as not listing the domain.
 *
 * Not checked: the null sender, a sender without domain or with an address literal; relay clients,
 * whitelisted hosts and senders (the shared immunity). Transaction note `rhsbl`: the zones that
 * list the domain; karma -1 when listed. Hooks: mail. Log (LOGINFO): `pass`, `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: the zones are asked at once; A is asked of every zone (TXT-only and
 * A-only zones both work); answers outside 127.0.0.0/8 and 127.255.255.x are no listing; the
 * reply always names the sender's domain (qpsmtpd named the HELO host when the TXT text did not
 * start with the domain). The HELO name is not checked (qpsmtpd had that commented out too).
 */
import { Plugin, DECLINED, LOGDEBUG, LOGERROR, LOGINFO, ConfigCache, adjustKarma, askZones, getReject, isImmune, pairArguments, withTimeout, timeoutArgument } from 'qpsmtpd';
import type { Address, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

interface Zone {
  readonly zone: string;
  readonly message: string | undefined;
}

export default class Rhsbl extends Plugin {
  private reject = '1';
  private rejectType = 'perm';
  private timeout: number | undefined;
  private readonly zones = new ConfigCache<Zone[]>('rhsbl_zones', (lines) =>
    lines.flatMap((line) => {
      const m = /^(\S+)(?:\s+(.*))?$/.exec(line.trim());
      const zone = m?.[1]!.replace(/^\.+|\.+$/g, '').toLowerCase();
      return m === null || !zone ? [] : [{ zone, message: m[2]?.trim() || undefined }];
    }),
  );

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args.length === 1 ? ['reject_type', args[0]!] : args, ['reject', 'reject_type', 'timeout']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type') ?? 'perm';
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
  }

  async hook_mail(tx: Transaction, sender: Address, _params: EsmtpParams): Promise<HookResult> {
    if (isImmune(this)) return DECLINED;
    if (sender.isNull) {
      this.log(LOGINFO, 'pass, null sender');
      return DECLINED;
    }
    const host = sender.host.toLowerCase();
    if (host === '' || host.startsWith('[')) {
      this.log(LOGDEBUG, `skip, no domain to look up (${host || 'none'})`);
      return DECLINED;
    }
    const zones = this.zones.get(this);
    if (zones.length === 0) {
      this.log(LOGINFO, 'pass, no zones');
      return DECLINED;
    }
    const asked = zones.map((z) => ({ zone: z.zone, txt: z.message === undefined }));
    const { listed: listing, failed } = await withTimeout(this.signal, this.timeout, (signal) => askZones(this.dns, asked, (zone) => `${host}.${zone}`, signal));
    for (const f of failed) this.log(LOGERROR, `${f.zone}: temporary error (${f.code}), not counted`);
    const first = listing[0];
    if (first === undefined) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    const text = zones.find((z) => z.zone === first.zone)?.message ?? first.txt ?? `is listed by ${first.zone}`;
    const listed = listing.map((l) => l.zone);
    tx.notes['rhsbl'] = listed;
    adjustKarma(this, -1);
    return getReject({
      plugin: this,
      reject: this.reject,
      rejectType: this.rejectType,
      message: `Mail from ${host} rejected because it ${text}`,
      logMessage: `${host} listed by ${listed.join(', ')}`,
    });
  }
}
