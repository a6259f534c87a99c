/**
 * dnsbl: look the client's IP address up in DNS block lists ("RBLs") and refuse its recipients
 * when it is listed (qpsmtpd's `dnsbl`).
 *
 * At connect the address (IPv4, or IPv6 as 32 nibbles) is reversed and asked of every zone at
 * once: `2.0.0.127.zen.example` (A, and TXT for zones without a message of their own). Listed: an
 * A record in 127.0.0.0/8, or, for a list that publishes TXT only, a TXT record. The first zone of
 * config/dnsbl_zones that lists the client decides the reply:
 *   - the zone's own message (after a colon in dnsbl_zones), `%IP%` replaced by the address;
 *   - else the zone's TXT record;
 *   - else "Blocked by <zone>".
 * The lines of config/dnsbl_rejectmsg, if any, come first (a multi-line reply).
 *
 * The refusal comes at RCPT, as in qpsmtpd, so that the client can still reach postmaster,
 * abuse, mailer-daemon and root (any domain), and can still authenticate: a client that became a
 * relay client (AUTH) or a whitelisted host by then is let through. `reject_type disconnect`
 * closes the connection at the first refused recipient.
 *
 * Config files:
 *   dnsbl_zones       one zone a line, optionally `zone:message` (the message may hold %IP%):
 *                       zen.spamhaus.example
 *                       rbl.example:Listed by rbl.example, see https://rbl.example/q?ip=%IP%
 *   dnsbl_allow       addresses never looked up: a full address, a prefix ending in a dot
 *                     (`172.16.33.`) or colon (IPv6 groups), or a CIDR block (`10.0.0.0/8`)
 *   dnsbl_rejectmsg   text put before the list's message in the reply
 * Environment (rblsmtpd's RBLSMTPD, as tcpserver rules set it):
 *   unset             the zones are asked
 *   set and empty     the client is not looked up at all
 *   set, non-empty    nothing is looked up, and the client's recipients are refused with that text
 *                     (after dnsbl_rejectmsg; %IP% replaced): temporarily (450), or permanently
 *                     (550) when the text starts with `-` (the `-` is not shown), as rblsmtpd does
 *
 * Arguments (pairs; a single word is the reject_type, qpsmtpd's old form `dnsbl disconnect`):
 *   reject 0|1|naughty   1 (default): refuse at RCPT; 0: only log and note; naughty: note the
 *                        refusal at connect for the naughty plugin
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm (550)
 *   timeout N            seconds: a cap on the lookups below the limits here under
 *   loglevel N
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal).
 * A zone that does not answer (time-out, SERVFAIL, refused) is logged (LOGERROR, "temporary
 * error") and counts as not listing the client: the session goes on.
 *
 * Connection notes: `dnsbl` the reply text when listed (what qpsmtpd noted), `dnsbl_zones` the
 * zones that list the client, `karma` -1 when listed. Not checked (the shared immunity): relay
 * clients, whitelisted hosts (`whitelisthost`, from whitelist or dns_whitelist_soft listed
 * before this plugin), also when they become so before RCPT.
 * Hooks: connect, rcpt. Log (LOGINFO): `pass`, `fail, ...`, `skip, ...`.
 *
 * Differences from qpsmtpd: every zone is asked at once and every listing is noted (qpsmtpd asked
 * in turn and stopped at the first); A is asked of every zone, so a zone with TXT only and one
 * with A only both work; A answers outside 127.0.0.0/8 and the 127.255.255.x error codes are not
 * listings; the refusal waits for RCPT (qpsmtpd 0.9x refused at connect unless naughty);
 * RBLSMTPD honours the leading `-`; dnsbl_allow takes IPv6 prefixes and CIDR blocks.
 */
import {
  Plugin,
  DECLINED,
  DENY,
  DENYSOFT,
  LOGDEBUG,
  LOGERROR,
  LOGINFO,
  LOGWARN,
  ConfigCache,
  IpList,
  adjustKarma,
  askZones,
  getReject,
  isImmune,
  pairArguments,
  reverseIpLabels,
  withTimeout,
  timeoutArgument,
} from 'qpsmtpd';
import type { Address, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

interface Zone {
  readonly zone: string;
  readonly message: string | undefined;
}

/** Recipients a listed client may still write to. */
const SPECIAL_RECIPIENT = /^(?:postmaster|abuse|mailer-daemon|root)$/i;

export default class Dnsbl extends Plugin {
  private reject = '1';
  private rejectType = 'perm';
  private timeout: number | undefined;
  private readonly zones = new ConfigCache<Zone[]>('dnsbl_zones', parseZones);
  private readonly allow = new ConfigCache<IpList>('dnsbl_allow', (lines, plugin) => {
    const list = new IpList(lines);
    for (const bad of list.invalid) plugin.log(LOGWARN, `dnsbl_allow: "${bad}" is no address, prefix or CIDR block; skipped`);
    return list;
  });

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args.length === 1 ? ['reject_type', args[0]!] : args, ['reject', 'reject_type', 'timeout']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type') ?? 'perm';
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
  }

  async hook_connect(): Promise<HookResult> {
    const notes = this.connection.notes;
    if (isImmune(this)) return DECLINED;
    const ip = this.connection.remoteIp;
    const rblsmtpd = this.env['RBLSMTPD'];
    if (rblsmtpd !== undefined) {
      if (rblsmtpd === '') {
        this.log(LOGINFO, `skip, RBLSMTPD set, but empty for ${ip}`);
        return DECLINED;
      }
      this.log(LOGDEBUG, `RBLSMTPD="${rblsmtpd}" for ${ip}`);
      notes['dnsbl'] = this.replyText(rblsmtpd.replace(/^-/, '').replaceAll('%IP%', ip));
      notes['dnsbl_rblsmtpd'] = rblsmtpd.startsWith('-') ? 'perm' : 'temp';
      return this.decidedNow('RBLSMTPD');
    }
    const allowed = this.allow.get(this).match(ip);
    if (allowed !== undefined) {
      this.log(LOGINFO, `skip, ${ip} is in dnsbl_allow (${allowed.entry})`);
      return DECLINED;
    }
    const zones = this.zones.get(this);
    if (zones.length === 0) {
      this.log(LOGDEBUG, 'skip, no zones');
      return DECLINED;
    }
    const reversed = reverseIpLabels(ip);
    if (reversed === undefined) {
      this.log(LOGWARN, `skip, "${ip}" is no IP address`);
      return DECLINED;
    }

    const asked = zones.map((z) => ({ zone: z.zone, txt: z.message === undefined }));
    const { listed, failed } = await withTimeout(this.signal, this.timeout, (signal) => askZones(this.dns, asked, (zone) => `${reversed}.${zone}`, signal));
    for (const f of failed) this.log(LOGERROR, `${f.zone}: temporary error (${f.code}), not counted`);
    const first = listed[0];
    if (first === undefined) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    for (const l of listed) this.log(LOGDEBUG, `${l.zone}: listed (${[...l.addresses, l.txt].filter(Boolean).join(', ')})`);
    const message = zones.find((z) => z.zone === first.zone)?.message;
    adjustKarma(this, -1);
    notes['dnsbl'] = this.replyText(message !== undefined ? message.replaceAll('%IP%', ip) : (first.txt ?? `Blocked by ${first.zone}`));
    notes['dnsbl_zones'] = listed.map((l) => l.zone);
    return this.decidedNow(`${ip} listed by ${listed.map((l) => l.zone).join(', ')}`);
  }

  /** At connect: with reject 0 or naughty the matter is settled now (logged, or noted for naughty). */
  private decidedNow(why: string): HookResult {
    if (this.isNaughty() || this.isTolerant()) {
      const rejectType = this.connection.notes['dnsbl_rblsmtpd'] ?? this.rejectType;
      return getReject({ plugin: this, reject: this.reject, rejectType: rejectType as string, message: this.connection.notes['dnsbl'] as string, logMessage: why });
    }
    this.log(LOGINFO, `fail, ${why}; refusing recipients`);
    return DECLINED;
  }

  hook_rcpt(_tx: Transaction, recipient: Address, _params: EsmtpParams): HookResult {
    const notes = this.connection.notes;
    const message = notes['dnsbl'];
    if (typeof message !== 'string' || message === '') return DECLINED;
    if (this.isNaughty() || this.isTolerant()) return DECLINED;
    if (SPECIAL_RECIPIENT.test(recipient.user)) {
      this.log(LOGWARN, `skip, don't blacklist special account: ${recipient.user}`);
      return DECLINED;
    }
    if (isImmune(this)) return DECLINED;
    const rblsmtpd = notes['dnsbl_rblsmtpd'];
    if (rblsmtpd !== undefined) {
      this.log(LOGINFO, `fail, RBLSMTPD`);
      return [rblsmtpd === 'perm' ? DENY : DENYSOFT, message];
    }
    const zones = notes['dnsbl_zones'];
    return getReject({
      plugin: this,
      reject: this.reject,
      rejectType: this.rejectType,
      message,
      logMessage: `listed by ${Array.isArray(zones) ? zones.join(', ') : 'a zone'}`,
    });
  }

  /** dnsbl_rejectmsg's lines, then the message. */
  private replyText(message: string): string {
    return [...this.configList('dnsbl_rejectmsg'), message].join('\n');
  }

  private isNaughty(): boolean {
    return this.reject.trim().toLowerCase() === 'naughty';
  }

  private isTolerant(): boolean {
    return /^(0|no|false|off)?$/i.test(this.reject.trim());
  }
}

/** `zone` or `zone:message`, one a line. */
function parseZones(lines: readonly string[]): Zone[] {
  const zones: Zone[] = [];
  for (const line of lines) {
    const text = line.trim();
    if (text === '') continue;
    const colon = text.indexOf(':');
    const zone = (colon === -1 ? text : text.slice(0, colon)).trim().replace(/^\.+|\.+$/g, '').toLowerCase();
    if (zone === '') continue;
    const message = colon === -1 ? undefined : text.slice(colon + 1).trim() || undefined;
    zones.push({ zone, message });
  }
  return zones;
}
