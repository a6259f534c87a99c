/**
 * headers: check the header block of every message (qpsmtpd's `headers`, which replaced
 * check_basicheaders; that old name loads this plugin too).
 *
 * At `data_post`, in this order:
 *   1. A message without any data is refused ("You must send some data first"), immune or not.
 *   2. Immune clients pass (qpsmtpd's is_immune: relay clients, the connection note
 *      `whitelisthost`, the transaction note `whitelistsender`).
 *   3. Required headers: each must be there with a value that is not empty.
 *   4. Singular headers: Date From Sender Reply-To To Cc Bcc Message-Id In-Reply-To References
 *      Subject may each appear once at most (RFC 5322 §3.6).
 *   5. The Date window: with `past N` a Date more than N days old is refused, with `future N` one
 *      more than N days ahead. A Date that cannot be parsed is not judged (logged as a skip).
 * A Date problem is the reply when there is one; otherwise the first problem of 3 and 4. Every
 * problem costs one point of karma (the connection note `karma`) and is logged.
 *
 * Arguments (pairs, config/plugins):
 *   require H1,H2,...   the required headers; default `From` (qpsmtpd's default: see its POD on why
 *                       Date is not required by default). Loaded as check_basicheaders the default
 *                       is `From,Date`, what that plugin required.
 *   past N, future N    days (fractions allowed); unset means not checked.
 *   days N              check_basicheaders' form: past N and future N, unless those are given; a
 *                       single bare number (`check_basicheaders 5`) means the same.
 *   reject 0|1|naughty  default 1; 0 only logs; naughty leaves the rejection to the naughty plugin.
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   loglevel N          the usual log level adjustment.
 * Bad arguments (an odd count, a number that is none) stop the plugin from loading.
 *
 * Replies (data_post): perm 552, temp 452 (the disconnect forms close), e.g.
 *   552 5.7.1 We require a valid From header
 *   552 5.7.1 Only one Subject header allowed. See RFC 5322, Section 3.6
 *   552 5.7.1 The Date header is too far in the past
 *
 * Config files: none. Hooks: data_post. Log (LOGINFO): `pass`, `fail, ...`, `skip, ...`.
 *
 * Deliberate differences from qpsmtpd:
 *   - qpsmtpd answers a required/singular failure with the numeric return code as its text
 *     ("552 901"); we answer with the problem itself.
 *   - qpsmtpd stores a deferred (naughty) rejection for every problem whatever `reject` says; we
 *     do that only with `reject naughty`, like every other plugin.
 *   - An empty required header ("From:" with nothing after it) counts as missing, as qpsmtpd's
 *     documentation says ("missing or empty values"); Mail::Header made qpsmtpd's code miss it.
 *   - The required list belongs to the instance (qpsmtpd kept it in a file-wide variable, so a
 *     second instance's `require` changed the first one's).
 *   - Dates are parsed with JavaScript's RFC 2822 parser, comments removed, instead of
 *     Date::Parse: the usual forms and obsolete zone names (GMT, EST, ...) are read alike.
 */
import { Plugin, DECLINED, LOGINFO, getReject, isImmune, adjustKarma } from 'qpsmtpd';
import type { Header, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const SINGULAR = ['Date', 'From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc', 'Message-Id', 'In-Reply-To', 'References', 'Subject'] as const;
const KNOWN = new Set(['require', 'past', 'future', 'days', 'reject', 'reject_type', 'loglevel']);
const REJECT_TYPES = /^(perm|hard|temp|soft|disconnect|temp_disconnect)$/i;
const DAY_MS = 24 * 60 * 60 * 1000;

export default class Headers extends Plugin {
  required: readonly string[] = ['From'];
  pastDays: number | undefined;
  futureDays: number | undefined;
  reject: string | undefined;
  rejectType = 'perm';

  register(_qp: PluginHost, ...args: string[]): void {
    const options = new Map<string, string>();
    if (args.length === 1 && /^\d+(\.\d+)?$/.test(args[0]!)) {
      options.set('days', args[0]!); // check_basicheaders' single positional argument
    } else {
      if (args.length % 2 !== 0) throw new Error(`${this.name}: arguments come in pairs, such as "past 5" (got "${args.join(' ')}")`);
      for (let i = 0; i < args.length; i += 2) {
        const key = args[i]!.toLowerCase();
        if (!KNOWN.has(key)) throw new Error(`${this.name}: unknown argument "${args[i]}"`);
        options.set(key, args[i + 1]!);
      }
    }
    if (/^check_basicheaders(:|$)/.test(this.name)) this.required = ['From', 'Date'];
    const require = options.get('require');
    if (require !== undefined) this.required = require.split(',').map((h) => h.trim()).filter((h) => h !== '');

    const days = dayCount(this.name, 'days', options.get('days'));
    this.pastDays = dayCount(this.name, 'past', options.get('past')) ?? days;
    this.futureDays = dayCount(this.name, 'future', options.get('future')) ?? days;

    this.reject = options.get('reject');
    const type = options.get('reject_type');
    if (type !== undefined) {
      if (!REJECT_TYPES.test(type)) throw new Error(`${this.name}: reject_type "${type}": expected perm, temp, disconnect or temp_disconnect`);
      this.rejectType = type;
    }
  }

  hook_data_post(tx: Transaction): HookResult {
    if (tx.dataSize === 0) return this.refuse('You must send some data first', 'no data');
    if (isImmune(this)) return DECLINED;

    const header = tx.header;
    const problems: string[] = [];
    for (const name of this.required) {
      const value = header.get(name);
      if (value !== undefined && value !== '') continue;
      problems.push(`We require a valid ${name} header`);
      this.log(LOGINFO, `fail, no ${name} header`);
      adjustKarma(this, -1);
    }
    for (const name of SINGULAR) {
      if (header.count(name) <= 1) continue;
      problems.push(`Only one ${name} header allowed. See RFC 5322, Section 3.6`);
      this.log(LOGINFO, `fail, too many ${name} headers`);
      adjustKarma(this, -1);
    }

    const dateProblem = this.dateProblem(header);
    if (dateProblem !== undefined) return this.refuse(dateProblem, dateProblem);
    if (problems.length > 0) return this.refuse(problems[0]!, `RFC 5322 validation errors: ${problems.join('; ')}`);

    this.log(LOGINFO, 'pass');
    return DECLINED;
  }

  /** The reply for a Date outside the window, or undefined. */
  private dateProblem(header: Header): string | undefined {
    if (this.pastDays === undefined && this.futureDays === undefined) return undefined;
    const date = header.get('Date');
    if (date === undefined || date === '') return undefined;
    const time = parseDate(date);
    if (time === undefined) {
      this.log(LOGINFO, `skip, date not parseable (${date})`);
      return undefined;
    }
    const now = Date.now();
    if (this.pastDays && time < now - this.pastDays * DAY_MS) {
      this.log(LOGINFO, `fail, date too old (${date})`);
      adjustKarma(this, -1);
      return 'The Date header is too far in the past';
    }
    if (this.futureDays && time > now + this.futureDays * DAY_MS) {
      this.log(LOGINFO, `fail, date in future (${date})`);
      adjustKarma(this, -1);
      return 'The Date header is too far in the future';
    }
    return undefined;
  }

  private refuse(message: string, logMessage: string): HookResult {
    return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message, logMessage });
  }
}

/** A number of days from an argument; undefined when not given; a load error when not a number. */
function dayCount(plugin: string, option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new Error(`${plugin}: ${option} "${text}" is no number of days`);
  return value;
}

/**
 * An RFC 5322 date (obsolete forms included) as milliseconds, or undefined. Comments such as
 * `(CEST)` are removed first; JavaScript's parser reads the rest, numeric and named zones alike.
 */
export function parseDate(text: string): number | undefined {
  let plain = text;
  // Comments may nest: remove the innermost ones until none is left.
  for (let i = 0; i < 5 && plain.includes('('); i++) plain = plain.replace(/\([^()]*\)/g, ' ');
  plain = plain.replace(/\s+/g, ' ').trim();
  if (plain === '') return undefined;
  const time = Date.parse(plain);
  return Number.isNaN(time) ? undefined : time;
}
