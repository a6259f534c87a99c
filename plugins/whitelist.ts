/**
 * whitelist: exempt chosen hosts, HELO names, senders and recipients from the checks of the
 * plugins listed after it (qpsmtpd's `whitelist`). List it before the plugins it should override.
 *
 * Each config file works at its own stage and leaves a note for later plugins. A whitelisted host
 * is not made a relay client, but the shared immunity rule spares it (and a whitelisted sender)
 * in every plugin that uses it, rcpt_ok included, which then accepts any recipient, as in
 * qpsmtpd: whitelist only hosts you would let relay, and remember that a sender address is
 * whatever the client says it is.
 *
 *   whitelisthosts    at connect: the client's IP is an entry (a full address, any spelling),
 *                     starts with an entry (`192.168.` or qpsmtpd's bare fragments such as `10.1`,
 *                     compared as text), or lies in an entry's CIDR block (`10.0.0.0/8`,
 *                     `2001:db8::/32`).
 *                     Sets the connection note `whitelisthost` (1), which every plugin using the
 *                     shared immunity rule honours for the whole session; answers OK, so the
 *                     connect plugins listed after this one do not run; karma +5.
 *                     WHITELISTCLIENT in the daemon's environment (tcpserver rules) does the same
 *                     for every client but sets the connection note `whitelistclient` instead.
 *   whitelisthelo     at HELO/EHLO: the name (case-insensitive) is an entry. Sets the connection
 *                     note `whitelisthelo` (1) and answers OK: later helo/ehlo plugins do not run.
 *   whitelistsenders  at MAIL: the sender address, or its domain, is an entry (case-insensitive;
 *                     the null sender never matches). Sets the transaction note `whitelistsender`
 *                     (1), which the shared immunity rule honours for this message; answers OK:
 *                     later mail plugins do not run.
 *   whitelistrcpt     at RCPT: the recipient address, or its domain, is an entry. Counts in the
 *                     transaction note `whitelistrcpt` and answers OK, which ACCEPTS the recipient
 *                     (rcpt_ok and the other rcpt plugins listed later do not run): list only
 *                     addresses and domains you take mail for.
 * Entries: the first word of each line.
 *
 * Arguments (pairs):
 *   per_recipient 1   run every check at RCPT instead, with the recipient's own settings (the
 *                     `user_config` hook, e.g. the user_config plugin) for each of the four files.
 *   merge 0|1         with per_recipient: 1 (default) uses the global entries and the
 *                     recipient's; 0 only the recipient's (the global file when the recipient
 *                     has none).
 *   loglevel N        the usual log level adjustment.
 * Config files: whitelisthosts, whitelisthelo, whitelistsenders, whitelistrcpt.
 * Hooks: connect, helo, ehlo, mail, rcpt (with per_recipient: helo, ehlo, rcpt).
 *
 * Differences from qpsmtpd, on purpose:
 *   - With per_recipient, a whitelisted host, HELO name or sender only sets its note at RCPT and
 *     lets the rcpt plugins decide; qpsmtpd answered OK there, which accepted any recipient, a
 *     foreign one too: an open relay for anyone who merely said a whitelisted HELO name. (A
 *     whitelisted host or sender is immune, and rcpt_ok accepts any recipient from immune
 *     clients, as in qpsmtpd.) A whitelistrcpt match still answers OK. qpsmtpd 1.00 never passed
 *     the recipient to its config lookup, so its per-recipient files were never read; here they
 *     are.
 *   - A full address in whitelisthosts is that address only; qpsmtpd compared text, so
 *     192.0.2.25 also whitelisted 192.0.2.250 to 192.0.2.255. Shorter fragments still match as
 *     text (`10.1` covers 10.1.x.x and 10.10.x.x, as in qpsmtpd).
 *   - IPv6 CIDR blocks work; a line that is no address fragment or block never matches (qpsmtpd
 *     could die on one).
 *   - Matches are logged at LOGINFO, as the other plugins' `pass` lines (qpsmtpd used level 2,
 *     LOGCRIT).
 */
import { Plugin, DECLINED, OK, LOGDEBUG, LOGINFO, LOGWARN, IpList, isIp, normalizeIp, adjustKarma } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const OFF = /^(0|no|false|off)?$/i;
/** A bare fragment of an address: digits, hex digits, dots, colons. */
const FRAGMENT = /^[0-9a-f.:]+$/i;

type ListName = 'whitelisthosts' | 'whitelisthelo' | 'whitelistsenders' | 'whitelistrcpt';

/**
 * whitelisthosts, parsed: the entries that are a start of the address text, and one list of the
 * addresses, prefixes and CIDR blocks (one parse of the client's address per check, not one per entry).
 */
interface HostEntries {
  readonly fragments: readonly string[];
  readonly list: IpList;
}

export default class Whitelist extends Plugin {
  private perRecipient = false;
  private merge = true;
  private hosts: { key: string; entries: HostEntries } | undefined;

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) this.log(LOGWARN, `bad arguments "${args.join(' ')}": expected pairs such as "per_recipient 1"`);
    for (let i = 0; i + 1 < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      if (key === 'per_recipient') this.perRecipient = !OFF.test(value.trim());
      else if (key === 'merge') this.merge = !OFF.test(value.trim());
      else if (key !== 'loglevel') this.log(LOGWARN, `ignoring unknown argument "${key} ${value}"`);
    }
    if (!this.perRecipient) {
      this.registerHook('connect', 'connectHandler');
      this.registerHook('helo', 'heloHandler');
      this.registerHook('ehlo', 'heloHandler');
      this.registerHook('mail', 'mailHandler');
      this.registerHook('rcpt', 'rcptHandler');
    } else {
      this.registerHook('rcpt', 'perRecipientHandler');
    }
  }

  // ---- the normal mode: one check per stage ---------------------------------------------------

  connectHandler(_tx: Transaction): HookResult {
    return this.checkHost(this.entries('whitelisthosts')) ? OK : DECLINED;
  }

  heloHandler(_tx: Transaction, host: string): HookResult {
    return this.checkHelo(host, this.entries('whitelisthelo')) ? OK : DECLINED;
  }

  mailHandler(tx: Transaction, sender: Address): HookResult {
    return this.checkSender(tx, sender, this.entries('whitelistsenders')) ? OK : DECLINED;
  }

  rcptHandler(tx: Transaction, rcpt: Address): HookResult {
    return this.checkRcpt(tx, rcpt, this.entries('whitelistrcpt')) ? OK : DECLINED;
  }

  // ---- per_recipient: everything at RCPT, with the recipient's settings ----------------------

  perRecipientHandler(tx: Transaction, rcpt: Address): HookResult {
    this.checkHost(this.entries('whitelisthosts', rcpt));
    const helo = this.connection.helloHost;
    if (helo !== undefined) this.checkHelo(helo, this.entries('whitelisthelo', rcpt));
    if (tx.sender !== undefined) this.checkSender(tx, tx.sender, this.entries('whitelistsenders', rcpt));
    return this.checkRcpt(tx, rcpt, this.entries('whitelistrcpt', rcpt)) ? OK : DECLINED;
  }

  // ---- the checks ----------------------------------------------------------------------------

  private checkHost(entries: string[]): boolean {
    const ip = this.connection.remoteIp;
    if (this.env['WHITELISTCLIENT'] !== undefined) {
      this.connection.notes['whitelistclient'] = 1;
      this.log(LOGINFO, `pass, ${ip} is whitelisted client`);
      adjustKarma(this, 5);
      return true;
    }
    const hosts = this.hostEntries(entries);
    let hit: string | undefined;
    if (hosts.fragments.length > 0) {
      const texts = [ip.toLowerCase(), (normalizeIp(ip) ?? ip).toLowerCase()];
      if (hosts.fragments.some((f) => texts.some((t) => t.startsWith(f)))) hit = 'exact';
    }
    hit ??= hosts.list.match(ip)?.kind;
    if (hit === undefined) {
      this.log(LOGDEBUG, `skip: ${ip} is not whitelisted`);
      return false;
    }
    this.connection.notes['whitelisthost'] = 1;
    this.log(LOGINFO, hit === 'cidr' ? `pass, ${ip} is in a whitelisted block` : `pass, ${ip} is a whitelisted host`);
    adjustKarma(this, 5);
    return true;
  }

  /** whitelisthosts entries, parsed; the last list parsed is kept (shared by every session). */
  private hostEntries(entries: string[]): HostEntries {
    const key = entries.join('\n');
    if (this.hosts?.key === key) return this.hosts.entries;
    // qpsmtpd compared the start of the address text with the entry: `10.1` covers 10.1.x.x and
    // 10.10.x.x alike. A full address is that address only (qpsmtpd: 192.0.2.25 also covered
    // 192.0.2.250 to .255).
    const fragments = entries.map((e) => e.toLowerCase()).filter((text) => FRAGMENT.test(text) && !isIp(text));
    this.hosts = { key, entries: { fragments, list: new IpList(entries) } };
    return this.hosts.entries;
  }

  private checkHelo(host: string, entries: string[]): boolean {
    const name = host.toLowerCase();
    if (name === '' || !entries.some((e) => e.toLowerCase() === name)) return false;
    this.connection.notes['whitelisthelo'] = 1;
    this.log(LOGINFO, `helo host ${host} in whitelisthelo`);
    return true;
  }

  private checkSender(tx: Transaction, sender: Address, entries: string[]): boolean {
    if (sender.isNull) return false;
    const address = sender.address.toLowerCase();
    const host = sender.host.toLowerCase();
    if (address === '' || host === '') return false;
    if (!entries.some((e) => matchesAddress(e, address, host))) return false;
    tx.notes['whitelistsender'] = 1;
    this.log(LOGINFO, `envelope sender ${address} in whitelistsenders`);
    return true;
  }

  private checkRcpt(tx: Transaction, rcpt: Address, entries: string[]): boolean {
    const address = rcpt.address.toLowerCase();
    const host = rcpt.host.toLowerCase();
    if (address === '' || host === '') return false;
    if (!entries.some((e) => matchesAddress(e, address, host))) return false;
    tx.notes['whitelistrcpt'] = (Number(tx.notes['whitelistrcpt']) || 0) + 1;
    this.log(LOGINFO, `recipient ${address} in whitelistrcpt`);
    return true;
  }

  /** The entries (first words) of a list: global, or for one recipient in per_recipient mode. */
  private entries(name: ListName, rcpt?: Address): string[] {
    let lines: string[];
    if (rcpt === undefined) {
      lines = this.configList(name);
    } else {
      const own = rcpt.configList(name);
      lines = this.merge ? [...new Set([...this.configList(name), ...own])] : own;
    }
    const out: string[] = [];
    for (const line of lines) {
      const word = line.trim().split(/\s+/)[0];
      if (word !== undefined && word !== '') out.push(word);
    }
    return out;
  }
}

function matchesAddress(entry: string, address: string, host: string): boolean {
  const e = entry.toLowerCase();
  return e === address || e === host;
}
