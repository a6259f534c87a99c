/**
 * uribl: look the host names and addresses of the links in a message up in URI block lists
 * (SURBL-style; qpsmtpd's `uribl`), at the end of DATA.
 *
 * The message's text is read as a mail reader would show it: every text part of the MIME tree
 * with base64 and quoted-printable undone and the charset decoded (attachments that are not text
 * are skipped); then %XX and &#NN; escapes are undone. Found in it:
 *   - host names in URLs (`scheme://[user@]host`), names starting with `www.`, and other names
 *     ending in a common generic top-level domain (com, net, org, info, biz ...) or a two-letter
 *     country code;
 *   - with `checkip yes` (default), IPv4 addresses in URLs (`http://192.0.2.1/`, and the integer
 *     form `http://3221225985/`), asked reversed (`1.2.0.192.<zone>`).
 * Each name is reduced to the domain its owner registered, which is what URI lists list: the last
 * two labels, or three under a multi-level suffix (`spam.example.co.uk`). The default suffixes
 * are: co/org/ac/gov/me/ltd/plc/net/sch.uk, com/net/org/edu/gov/id.au, co/org/net.nz,
 * co/ne/or/ac/go.jp, com/net/org.br, com/net/org.cn, co/org.za, com.mx, com.ar, com.tr, com.tw,
 * com.hk, com.sg, co.in, co.kr, co.il, co.id; config/uribl_multilevel_tlds, when present,
 * replaces them (one suffix a line).
 * At most 50 domains and addresses a message are asked, 8 lookups at a time.
 *
 * Config file uribl_zones, one zone a line: `zone [mask[,mask...]] [action]`. An A answer counts
 * when it ANDed with the mask is not zero (SURBL's multi lists: 127.0.0.X, each bit a list);
 * without a mask, or with a negative one, every bit (0x00ffffff) counts. The action overrides the
 * `action` argument for that zone:
 *   multi.surbl.example   2,8   deny
 *   black.uribl.example         add-header
 * A line with a bad mask or action is logged (LOGERROR) and skipped.
 * Config file uribl_whitelist_domains: registered domains never asked (one a line).
 *
 * Actions for a match ("<domain> in <zone>: <TXT text, else the A answer>"):
 *   add-header (default)  an `X-URIBL-Match: <match>` header on top of the message
 *   deny                  552 with the match (DENY at data_post)
 *   denysoft              452 with the match (DENYSOFT)
 *   log                   only the log line (LOGWARN)
 * A deny match wins over denysoft, which wins over the headers.
 *
 * Arguments (pairs): `action add-header|deny|denysoft|log`, `checkip yes|no`, `scan-headers 1`
 * (also `check-headers`: look in the header fields' values too), `timeout N` (seconds: a cap on
 * the lookups below the limits here under), `loglevel N`.
 * Lookups are bounded by the resolver's `dns_timeout` × `dns_tries` and by the hook's time limit
 * (`plugin_timeout`, through the hook's AbortSignal). A lookup that fails is logged (LOGINFO,
 * "temporary error") and matches nothing.
 * Transaction note `uribl`: the matches. Not checked (the shared immunity): relay clients,
 * whitelisted hosts and senders. Hooks: data_post. Log: `pass, ...` (LOGINFO), each match
 * (LOGWARN), `skip, ...`.
 *
 * Differences from qpsmtpd: MIME parts are decoded (qpsmtpd read the raw body, undoing
 * quoted-printable by guesswork and never base64); only the registered domain is asked (qpsmtpd
 * asked every name from the full host down); a short list of multi-level suffixes replaces
 * qpsmtpd's ccTLD list (which treated every `.co`, `.ca`, `.at` ... domain as third-level); TXT
 * is asked only for matches; the number of lookups is capped; answers outside 127.0.0.0/8 are
 * no match.
 */
import { Plugin, DECLINED, DENY, DENYSOFT, LOGDEBUG, LOGERROR, LOGINFO, LOGWARN, ConfigCache, isImmune, lookUp, messageTexts, pairArguments, txtText, withTimeout, timeoutArgument } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

type Action = 'add-header' | 'deny' | 'denysoft' | 'log';
const ACTIONS: readonly string[] = ['add-header', 'deny', 'denysoft', 'log'];

interface Zone {
  readonly zone: string;
  readonly mask: number;
  readonly action: Action | undefined;
}

interface Match {
  readonly name: string;
  readonly zone: string;
  readonly action: Action;
  readonly description: string;
}

const ALL_BITS = 0x00ffffff;
const MAX_NAMES = 50;
const PARALLEL = 8;

const DEFAULT_MULTILEVEL = [
  ...['co', 'org', 'ac', 'gov', 'me', 'ltd', 'plc', 'net', 'sch'].map((s) => `${s}.uk`),
  ...['com', 'net', 'org', 'edu', 'gov', 'id'].map((s) => `${s}.au`),
  ...['co', 'org', 'net'].map((s) => `${s}.nz`),
  ...['co', 'ne', 'or', 'ac', 'go'].map((s) => `${s}.jp`),
  ...['com', 'net', 'org'].map((s) => `${s}.br`),
  ...['com', 'net', 'org'].map((s) => `${s}.cn`),
  'co.za',
  'org.za',
  ...['mx', 'ar', 'tr', 'tw', 'hk', 'sg'].map((c) => `com.${c}`),
  ...['in', 'kr', 'il', 'id'].map((c) => `co.${c}`),
];

/** Generic top-level domains a bare name (no scheme, no www.) must end in, besides any two-letter one. */
const GENERIC_TLDS = 'com|net|org|info|biz|name|pro|mobi|asia|tel|xxx|edu|gov|mil|int|aero|coop|museum|jobs|travel|cat|top|xyz|site|online|club|shop|store|app|dev|io|link|click|live|work|ru';

const URL_HOST = /\b[a-z][a-z0-9+.-]{1,15}:\/+(?:[^\s/@<>"']+@)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9])/gi;
const WWW_HOST = /(?<![\w.-])(www\d{0,3}\.(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z][a-z0-9-]*[a-z0-9])(?![\w-])/gi;
const BARE_HOST = new RegExp(`(?<![\\w.@-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)+(?:${GENERIC_TLDS}|[a-z]{2}))(?![\\w-]|\\.[\\w-])`, 'gi');
const URL_IP = /\b[a-z][a-z0-9+.-]{1,15}:\/+(?:[^\s/@<>"']+@)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])/gi;
const URL_INT_IP = /\b[a-z][a-z0-9+.-]{1,15}:\/+(?:[^\s/@<>"']+@)?(\d{7,10})(?=[/?:#\s"'<>]|$)/gim;

export default class Uribl extends Plugin {
  private action: Action = 'add-header';
  private checkIp = true;
  private scanHeaders = false;
  private timeout: number | undefined;
  private readonly zones = new ConfigCache<Zone[]>('uribl_zones', parseZones);
  private readonly whitelist = new ConfigCache<Set<string>>('uribl_whitelist_domains', (lines) => new Set(lines.map((l) => l.trim().toLowerCase()).filter(Boolean)));
  private readonly multilevel = new ConfigCache<Set<string>>('uribl_multilevel_tlds', (lines) => {
    const given = lines.map((l) => l.trim().toLowerCase().replace(/^\.+/, '')).filter(Boolean);
    return new Set(given.length > 0 ? given : DEFAULT_MULTILEVEL);
  });

  register(_qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['action', 'checkip', 'scan-headers', 'check-headers', 'timeout']);
    const action = pairs.get('action');
    if (action !== undefined) {
      if (!ACTIONS.includes(action)) throw new Error(`${this.name}: action "${action}": expected add-header, deny, denysoft or log`);
      this.action = action as Action;
    }
    this.checkIp = !/^(no|0|false|off)$/i.test(pairs.get('checkip') ?? 'yes');
    this.scanHeaders = /^(1|yes|true|on)$/i.test(pairs.get('scan-headers') ?? pairs.get('check-headers') ?? '0');
    this.timeout = timeoutArgument(this.name, pairs.get('timeout'));
    this.zones.get(this);
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (isImmune(this)) return DECLINED;
    const zones = this.zones.get(this);
    if (zones.length === 0) {
      this.log(LOGDEBUG, 'skip, no zones');
      return DECLINED;
    }
    const texts = messageTexts(tx.header, await tx.body.toBuffer());
    if (this.scanHeaders) texts.push(tx.header.toString());
    const names = this.namesIn(texts);
    if (names.length === 0) {
      this.log(LOGINFO, 'pass, no URIs found in mail');
      return DECLINED;
    }
    this.log(LOGDEBUG, `asking about ${names.join(', ')}`);
    const jobs = names.flatMap((name) => zones.map((zone) => ({ name, zone })));
    const started = performance.now();
    const results = await withTimeout(this.signal, this.timeout, (signal) => inParallel(jobs, PARALLEL, ({ name, zone }) => this.ask(name, zone, signal)));
    const matches = results.filter((m): m is Match => m !== undefined);
    this.log(LOGINFO, `${jobs.length} lookups finished in ${((performance.now() - started) / 1000).toFixed(2)} s (${matches.length} match${matches.length === 1 ? '' : 'es'})`);
    if (matches.length === 0) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    tx.notes['uribl'] = matches.map((m) => m.description);
    for (const m of matches) this.log(LOGWARN, m.description);
    const deny = matches.find((m) => m.action === 'deny');
    if (deny !== undefined) return [DENY, deny.description];
    const denysoft = matches.find((m) => m.action === 'denysoft');
    if (denysoft !== undefined) return [DENYSOFT, denysoft.description];
    for (const m of matches.filter((x) => x.action === 'add-header').reverse()) tx.header.add('X-URIBL-Match', m.description, 0);
    return DECLINED;
  }

  /** The registered domains and reversed addresses to ask about, in order of appearance. */
  private namesIn(texts: readonly string[]): string[] {
    const whitelist = this.whitelist.get(this);
    const multilevel = this.multilevel.get(this);
    const names = new Set<string>();
    const addHost = (host: string): void => {
      const domain = registeredDomain(host.toLowerCase().replace(/\.$/, ''), multilevel);
      if (domain === undefined) return;
      if (whitelist.has(domain)) this.log(LOGDEBUG, `skip, whitelisted URI domain ${domain}`);
      else names.add(domain);
    };
    for (const raw of texts) {
      const text = unescapeText(raw);
      if (this.checkIp) {
        for (const m of text.matchAll(URL_IP)) {
          const octets = m.slice(1, 5).map(Number);
          if (octets.every((o) => o <= 255)) names.add(octets.reverse().join('.'));
        }
        for (const m of text.matchAll(URL_INT_IP)) {
          const n = Number(m[1]);
          if (n > 0xffffffff) continue;
          names.add([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.'));
        }
      }
      for (const re of [URL_HOST, WWW_HOST, BARE_HOST]) for (const m of text.matchAll(re)) addHost(m[1]!);
      if (names.size >= MAX_NAMES) break;
    }
    return [...names].slice(0, MAX_NAMES);
  }

  private async ask(name: string, zone: Zone, signal: AbortSignal): Promise<Match | undefined> {
    const query = `${name}.${zone.zone}`;
    const a = await lookUp(this.dns, query, 'A', signal);
    if (a.status === 'error') {
      this.log(LOGINFO, `${query}: temporary error (${a.code})`);
      return undefined;
    }
    if (a.status !== 'found') return undefined;
    const hit = a.records.find((ip) => ip.startsWith('127.') && (ipValue(ip) & zone.mask) !== 0);
    if (hit === undefined) return undefined;
    const txt = await lookUp(this.dns, query, 'TXT', signal);
    const text = txt.status === 'found' ? txtText(txt.records) : hit;
    return { name, zone: zone.zone, action: zone.action ?? this.action, description: `${name} in ${zone.zone}: ${text}` };
  }
}

/** `zone [mask[,mask]] [action]` lines; a bad line is logged and skipped. */
function parseZones(lines: readonly string[], plugin: Plugin): Zone[] {
  const zones: Zone[] = [];
  for (const line of lines) {
    const [zone, maskText, action] = line.trim().split(/\s+/);
    if (zone === undefined || zone === '') continue;
    let mask = 0;
    let bad = false;
    for (const part of (maskText ?? '').split(',').filter(Boolean)) {
      if (!/^-?(?:\d+|0x[0-9a-f]+)$/i.test(part)) bad = true;
      const n = part.startsWith('-') ? -1 : Number(part);
      mask |= n < 0 ? ALL_BITS : n;
    }
    if (bad) {
      plugin.log(LOGERROR, `uribl_zones: malformed mask "${maskText}" for ${zone}; zone skipped`);
      continue;
    }
    if (action !== undefined && !ACTIONS.includes(action)) {
      plugin.log(LOGERROR, `uribl_zones: unknown action "${action}" for ${zone}; zone skipped`);
      continue;
    }
    zones.push({ zone: zone.replace(/^\.+|\.+$/g, '').toLowerCase(), mask: mask === 0 ? ALL_BITS : mask, action: action as Action | undefined });
  }
  return zones;
}

/** The last two labels, or three under a multi-level suffix; undefined for a single label. */
function registeredDomain(host: string, multilevel: ReadonlySet<string>): string | undefined {
  const labels = host.split('.').filter(Boolean);
  if (labels.length < 2) return undefined;
  const keep = multilevel.has(labels.slice(-2).join('.')) ? 3 : 2;
  if (labels.length < keep) return undefined;
  return labels.slice(-keep).join('.');
}

/** %XX and &#NN; / &#xHH; escapes undone, soft hyphens and zero-width characters removed. */
function unescapeText(text: string): string {
  return text
    .replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&#(\d{2,5});?/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&#x([0-9a-f]{2,4});?/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/[\u00ad\u200b-\u200d\u2060\ufeff]/g, '');
}

function ipValue(ip: string): number {
  return ip.split('.').reduce((v, o) => ((v << 8) | (Number(o) & 0xff)) >>> 0, 0);
}

/** `fn` over `items`, at most `limit` at a time; results in the items' order. */
async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
