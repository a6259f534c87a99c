/**
 * helo: check the name a client gives in HELO/EHLO (qpsmtpd's `helo`, which replaced
 * check_spamhelo; that name loads this plugin too), and record it in an X-HELO header.
 *
 * The checks, run in this order, the first failure decides:
 *   is_in_badhelo       the name is listed in config/badhelo (see below).
 *                       Reply: "I do not believe you are <name>." (or the line's reason)
 *   invalid_localhost   the name is `localhost` but the client is not (127.0.0.0/8, ::1).
 *                       Reply: "You are not localhost"
 *   is_forged_literal   an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) that is not the
 *                       client's own address. Reply: "Forged IPs not accepted here"
 *   is_plain_ip         a bare IP address, neither a name nor a literal.
 *                       Reply: "Plain IP is invalid HELO hostname (RFC 2821)"
 *   is_not_fqdn         no dot in the name, or characters other than letters, digits, `-` and
 *                       `.` (address literals are not checked). Replies: "HELO name is not fully
 *                       qualified. Read RFC 2821", "HELO name contains invalid FQDN characters.
 *                       Read RFC 1035"
 *   is_address_literal  any address literal. Reply: "RFC 2821 allows an address literal, but we
 *                       do not"
 *   no_forward_dns      the name has no A or AAAA record (address literals are not looked up).
 *                       Replies: "HELO hostname does not exist" (NXDOMAIN), "HELO hostname did
 *                       not resolve" (no address). An address that is the client's, or in its
 *                       network (IPv4 /24, IPv6 /96, as qpsmtpd), sets the connection note
 *                       `helo_forward_match`.
 *   no_reverse_dns      the client's address has no PTR record. Reply: "no rDNS for <ip>". A PTR
 *                       name equal to the HELO name, or in the same domain (the last two labels),
 *                       sets the connection note `helo_reverse_match`.
 *   no_matching_dns     neither of those two notes is set (both set: karma +1). Reply: "That HELO
 *                       hostname fails FCrDNS"
 * A lookup that fails temporarily (time-out, SERVFAIL) is logged and the check is skipped, as is
 * no_matching_dns after it: a DNS outage never refuses a client.
 * chosen by the policy:
 *   lenient (default)   is_in_badhelo, invalid_localhost, is_forged_literal, is_plain_ip
 *   rfc                 lenient + is_not_fqdn, no_forward_dns, no_reverse_dns
 *   strict              rfc + is_address_literal, no_matching_dns
 *
 * config/badhelo, one entry a line, optionally followed by a reason (white space between), which
 * then is the reply text:
 *   a name          matched exactly, case-insensitive:   yahoo.com
 *   a pattern       an entry holding one of / ^ $ * + ! % ? \ is a (Perl) regular expression,
 *                   matched anywhere in the name, case-insensitive:   ^mail\d+\.example\.net$
 *                   A leading ! negates it: `!\.` refuses every name WITHOUT a dot.
 *   /re/            a regular expression between slashes (the flags m and s may follow the
 *                   closing slash), also after a leading !.
 * Perl's syntax is translated as for badmailfrom (the shared perlRegExp); a pattern that is no
 * valid regular expression, or uses Perl syntax JavaScript lacks, is skipped with a warning.
 *
 * Not checked (the shared immunity): relay clients, hosts with the connection note
 * `whitelisthost`; senders are not known yet at HELO.
 *
 * At data_post the header `X-HELO: <name>` is put on top of every message (an X-HELO the client
 * sent is removed first), for immune clients too.
 *
 * Arguments (pairs):
 *   policy lenient|rfc|strict   see above
 *   reject 0|1|naughty          1 (default): refuse; 0: only log; naughty: leave it to the naughty
 *                               plugin (the reply is noted as `(helo) <reply>`)
 *   reject_type perm|temp|disconnect|temp_disconnect   default disconnect: 550 and the connection
 *                               closed; perm 550, temp 450, temp_disconnect 421 and closed
 *   timeout N, dns_timeout N    seconds: a cap on the DNS lookups below the limits here under
 *   loglevel N                  the usual log level adjustment
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal).
 * Config files: badhelo. Hooks: helo, ehlo, data_post.
 * Connection notes: `karma` -1 for a failed check, `helo_forward_match`, `helo_reverse_match`.
 * Log (LOGINFO): `pass`, `fail, <why>`, `skip, ...`.
 *
 * Differences from qpsmtpd, on purpose:
 *   - reject_type is honoured; qpsmtpd forced disconnect whatever was configured.
 *   - is_forged_literal checks address literals (`[a.b.c.d]`, and IPv6 ones); qpsmtpd's version
 *     never matched a literal and refused plain IPs as "forged" instead (they now get the plain IP
 *     reply).
 *   - An address containing 255 (192.168.255.1) is an IP address like any other (qpsmtpd's
 *     is_valid_ip said no), and IPv6 literals count as literals.
 *   - badhelo entries are patterns by the characters listed above (qpsmtpd's helo also took
 *     `[`, `(`, `{`, `|` as signs of a pattern, so `[192.0.2.1]` was a character class), may carry
 *     a reason, may be written /re/, and patterns match case-insensitively (qpsmtpd matched the
 *     lower-cased name, so a pattern with an upper-case letter never matched).
 *   - An unknown policy or reject_type stops the plugin from loading (qpsmtpd fell back quietly).
 *   - A temporary DNS failure skips no_reverse_dns (qpsmtpd refused: "error getting reverse DNS")
 *     and no_matching_dns; A and AAAA are both asked for no_forward_dns.
 */
import { Plugin, DECLINED, LOGDEBUG, LOGERROR, LOGINFO, LOGNOTICE, LOGWARN, ConfigCache, getReject, isImmune, isListPattern, perlRegExp, adjustKarma, parseIp, normalizeIp, ipInCidr, lookUp, ptrName, withTimeout } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

/** A failed check: the reply for the client, and the reason for the log. */
type Failure = readonly [reply: string, why: string];
type Check = (host: string) => Failure | undefined | Promise<Failure | undefined>;

const POLICIES = {
  lenient: ['is_in_badhelo', 'invalid_localhost', 'is_forged_literal', 'is_plain_ip'],
  rfc: ['is_in_badhelo', 'invalid_localhost', 'is_forged_literal', 'is_plain_ip', 'is_not_fqdn', 'no_forward_dns', 'no_reverse_dns'],
  strict: [
    'is_in_badhelo',
    'invalid_localhost',
    'is_forged_literal',
    'is_plain_ip',
    'is_not_fqdn',
    'no_forward_dns',
    'no_reverse_dns',
    'is_address_literal',
    'no_matching_dns',
  ],
} as const;
type Policy = keyof typeof POLICIES;
type TestName = (typeof POLICIES)[Policy][number];

const KNOWN_ARGS = new Set(['policy', 'reject', 'reject_type', 'timeout', 'dns_timeout', 'loglevel']);
const REJECT_TYPES = /^(perm|hard|temp|soft|disconnect|temp_disconnect)$/i;

interface BadHelo {
  /** The entry as written (first word of the line). */
  readonly entry: string;
  readonly reason: string | undefined;
  /** For patterns: the expression, and whether a match means "not bad". */
  readonly regex: RegExp | undefined;
  readonly negated: boolean;
}

export default class Helo extends Plugin {
  private tests: TestName[] = [];
  private reject: string | undefined;
  private rejectType = 'disconnect';
  private timeout: number | undefined;
  /** badhelo, parsed, rebuilt only when its lines change; shared by every session. */
  private readonly badhelo = new ConfigCache('badhelo', (lines, plugin) => parseBadhelo(lines, plugin));

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) throw new Error(`helo: unrecognized/mismatched arguments "${args.join(' ')}": expected pairs such as "policy rfc"`);
    let policy: Policy = 'lenient';
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      if (!KNOWN_ARGS.has(key)) this.log(LOGWARN, `ignoring unknown argument "${key} ${value}"`);
      switch (key) {
        case 'policy': {
          const wanted = value.toLowerCase();
          if (wanted !== 'lenient' && wanted !== 'rfc' && wanted !== 'strict') throw new Error(`helo: policy "${value}": expected lenient, rfc or strict`);
          policy = wanted;
          break;
        }
        case 'reject':
          this.reject = value;
          break;
        case 'reject_type':
          if (!REJECT_TYPES.test(value)) throw new Error(`helo: reject_type "${value}": expected perm, temp, disconnect or temp_disconnect`);
          this.rejectType = value;
          break;
        case 'timeout':
        case 'dns_timeout':
          if (!Number.isFinite(Number(value)) || Number(value) <= 0) throw new Error(`helo: ${key} "${value}" is no number of seconds`);
          this.timeout = Number(value);
          break;
      }
    }
    this.tests = [...POLICIES[policy]];

    this.registerHook('helo', 'heloHandler');
    this.registerHook('ehlo', 'heloHandler');
    this.registerHook('data_post', 'dataPostHandler');
  }

  async heloHandler(_tx: Transaction, host: string): Promise<HookResult> {
    if (host === '') {
      this.log(LOGINFO, 'fail, tolerated, no helo host');
      adjustKarma(this, -2);
      return DECLINED;
    }
    if (isImmune(this)) return DECLINED;
    const notes = this.connection.notes;
    delete notes['helo_forward_match'];
    delete notes['helo_reverse_match'];
    return withTimeout(this.signal, this.timeout, (signal) => this.runChecks(host, { signal, unknown: false }));
  }

  /** The configured tests in order; the first that fails decides. */
  private async runChecks(host: string, dns: DnsState): Promise<HookResult> {
    const checks: Record<TestName, Check> = {
      is_in_badhelo: (h) => this.isInBadhelo(h),
      invalid_localhost: (h) => this.invalidLocalhost(h),
      is_forged_literal: (h) => this.isForgedLiteral(h),
      is_plain_ip: isPlainIp,
      is_not_fqdn: isNotFqdn,
      is_address_literal: isAddressLiteral,
      no_forward_dns: (h) => this.noForwardDns(h, dns),
      no_reverse_dns: (h) => this.noReverseDns(h, dns),
      no_matching_dns: () => this.noMatchingDns(dns),
    };
    for (const test of this.tests) {
      const failed = await checks[test](host);
      if (failed === undefined) continue;
      adjustKarma(this, -1);
      return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message: failed[0], logMessage: failed[1] });
    }
    this.log(LOGINFO, 'pass');
    return DECLINED;
  }

  dataPostHandler(tx: Transaction): HookResult {
    const host = this.connection.helloHost;
    tx.header.delete('X-HELO');
    if (host !== undefined) tx.header.add('X-HELO', host, 0);
    return DECLINED;
  }

  // ---- the checks that need the session --------------------------------------------------------

  private isInBadhelo(host: string): Failure | undefined {
    const name = host.toLowerCase();
    for (const bad of this.badhelo.get(this)) {
      let why: string | undefined;
      if (bad.entry.toLowerCase() === name) why = 'in badhelo';
      else if (bad.regex !== undefined && bad.regex.test(name) !== bad.negated) why = `badhelo pattern match (${bad.entry})`;
      if (why === undefined) continue;
      return [bad.reason ?? `I do not believe you are ${name}.`, why];
    }
    return undefined;
  }

  private invalidLocalhost(host: string): Failure | undefined {
    if (isLocalhost(this.connection.remoteIp)) {
      this.log(LOGDEBUG, 'pass, is localhost');
      return undefined;
    }
    if (host.toLowerCase() !== 'localhost') return undefined;
    return ['You are not localhost', 'invalid localhost'];
  }

  // ---- the checks that need DNS ----------------------------------------------------------------

  private async noForwardDns(host: string, dns: DnsState): Promise<Failure | undefined> {
    if (literalIp(host) !== undefined) return undefined;
    const [a, aaaa] = await Promise.all([lookUp(this.dns, host, 'A', dns.signal), lookUp(this.dns, host, 'AAAA', dns.signal)]);
    const addresses = [...(a.status === 'found' ? a.records : []), ...(aaaa.status === 'found' ? aaaa.records : [])];
    if (addresses.length === 0) {
      const error = a.status === 'error' ? a : aaaa.status === 'error' ? aaaa : undefined;
      if (error !== undefined) {
        dns.unknown = true;
        this.log(LOGERROR, `skip, forward lookup of ${host} failed (${error.code})`);
        return undefined;
      }
      if (a.status === 'none' && a.code === 'ENOTFOUND') return ['HELO hostname does not exist', 'no such host'];
      return ['HELO hostname did not resolve', 'no forward DNS'];
    }
    const ip = this.connection.remoteIp;
    for (const address of addresses) {
      const match = addressMatch(address, ip);
      if (match === undefined) continue;
      if (match === 'network') this.log(LOGNOTICE, 'forward network match');
      else this.log(LOGDEBUG, 'forward ip match');
      this.connection.notes['helo_forward_match'] = 1;
      break;
    }
    return undefined;
  }

  private async noReverseDns(host: string, dns: DnsState): Promise<Failure | undefined> {
    const ip = normalizeIp(this.connection.remoteIp) ?? this.connection.remoteIp;
    const name = ptrName(ip);
    if (name === undefined) return undefined;
    const ptr = await lookUp(this.dns, name, 'PTR', dns.signal);
    if (ptr.status === 'error') {
      dns.unknown = true;
      this.log(LOGERROR, `skip, reverse lookup of ${ip} failed (${ptr.code})`);
      return undefined;
    }
    if (ptr.status === 'none') return [`no rDNS for ${ip}`, 'no rDNS'];
    const helo = host.toLowerCase();
    for (const dnsName of ptr.records.map((n) => n.toLowerCase())) {
      const labels = dnsName.split('.');
      if (labels.length < 2) continue;
      if (dnsName === helo) this.log(LOGDEBUG, 'reverse name match');
      else if (labels.slice(-2).join('.') === helo.split('.').slice(-2).join('.')) this.log(LOGNOTICE, 'reverse domain match');
      else continue;
      this.connection.notes['helo_reverse_match'] = 1;
      break;
    }
    return undefined;
  }

  private noMatchingDns(dns: DnsState): Failure | undefined {
    const notes = this.connection.notes;
    const forward = notes['helo_forward_match'] === 1;
    const reverse = notes['helo_reverse_match'] === 1;
    if (forward && reverse) {
      this.log(LOGDEBUG, 'forward and reverse match');
      adjustKarma(this, 1);
      return undefined;
    }
    if (forward || reverse) return undefined;
    if (dns.unknown) {
      this.log(LOGINFO, 'skip, no_matching_dns after a failed lookup');
      return undefined;
    }
    return ['That HELO hostname fails FCrDNS', 'no matching DNS'];
  }

  private isForgedLiteral(host: string): Failure | undefined {
    const literal = literalIp(host);
    if (literal === undefined) return undefined;
    if (literal === normalizeIp(this.connection.remoteIp)) return undefined;
    return ['Forged IPs not accepted here', 'forged IP literal'];
  }
}

/** The lines of config/badhelo as entries; a pattern that does not compile is logged and left out. */
function parseBadhelo(lines: readonly string[], plugin: Plugin): BadHelo[] {
  const entries: BadHelo[] = [];
  for (const line of lines) {
    const m = /^(\S+)(?:\s+(.+))?$/.exec(line.trim());
    if (m === null) continue;
    const entry = m[1]!;
    const reason = m[2]?.trim() || undefined;
    if (!isListPattern(entry)) {
      entries.push({ entry, reason, regex: undefined, negated: false });
      continue;
    }
    const negated = entry.startsWith('!');
    const body = negated ? entry.slice(1) : entry;
    const delimited = /^\/(.+)\/([a-z]*)$/.exec(body);
    const source = delimited ? delimited[1]! : body;
    const flags = 'i' + (delimited ? delimited[2]!.replace(/[^ms]/g, '') : '');
    const compiled = perlRegExp(source, flags);
    if ('error' in compiled) {
      plugin.log(LOGWARN, `badhelo: "${entry}" is no valid regular expression (${compiled.error}); skipped`);
      continue;
    }
    entries.push({ entry, reason, regex: compiled.regexp, negated });
  }
  return entries;
}

// ---- the checks on the name alone ------------------------------------------------------------

function isPlainIp(host: string): Failure | undefined {
  return parseIp(host) === undefined ? undefined : ['Plain IP is invalid HELO hostname (RFC 2821)', 'plain IP'];
}

function isAddressLiteral(host: string): Failure | undefined {
  return literalIp(host) === undefined ? undefined : ['RFC 2821 allows an address literal, but we do not', 'bracketed IP'];
}

function isNotFqdn(host: string): Failure | undefined {
  if (literalIp(host) !== undefined) return undefined;
  if (!host.includes('.')) return ['HELO name is not fully qualified. Read RFC 2821', 'not FQDN'];
  if (/[^a-zA-Z0-9.-]/.test(host)) return ['HELO name contains invalid FQDN characters. Read RFC 1035', 'invalid FQDN chars'];
  return undefined;
}

/** The canonical IP of an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, `[2001:db8::1]`), or undefined. */
function literalIp(host: string): string | undefined {
  const m = /^\[(?:IPv6:)?([^\]]+)\]$/i.exec(host);
  return m === null ? undefined : normalizeIp(m[1]!);
}

/** What the DNS checks of one HELO share: the lookups' signal, and whether one failed temporarily. */
interface DnsState {
  readonly signal: AbortSignal;
  unknown: boolean;
}

/** `exact` when `address` is the client's, `network` in its /24 (IPv4) or /96 (IPv6, as qpsmtpd). */
function addressMatch(address: string, client: string): 'exact' | 'network' | undefined {
  const ip = normalizeIp(client);
  if (ip === undefined) return undefined;
  if (normalizeIp(address) === ip) return 'exact';
  return ipInCidr(address, `${ip}/${ip.includes(':') ? 96 : 24}`) ? 'network' : undefined;
}

/** 127.0.0.0/8 and ::1, also as ::ffff:127.x.y.z. */
function isLocalhost(ip: string): boolean {
  const canonical = normalizeIp(ip);
  return canonical !== undefined && (canonical.startsWith('127.') || canonical === '::1');
}
