/**
 * greylisting: delay mail from unknown senders (qpsmtpd's `greylisting`, RFC 6647). The first
 * attempt of an unknown triplet is answered 450 "This mail is temporarily denied"; real mail
 * servers retry, fire-and-forget spamware does not. A retry after `black_timeout` and before
 * `grey_timeout` (both counted from the first attempt) passes and whitelists the triplet for
 * `white_timeout`, renewed by each later delivery.
 *
 * The triplet (the key) is made of the parts switched on: the client's address (`remote_ip`, on
 * by default), the envelope sender (`sender`) and the first recipient (`recipient`). Records live
 * in the shared state store (`config/store`: a SQLite file by default, or Redis, which lets
 * several servers share one greylist); each expires on its own (no pruning pass).
 *
 * Arguments, in pairs (defaults may also come from `config/denysoft_greylist`, `NAME VALUE` lines,
 * as qpsmtpd; arguments win):
 *   remote_ip 0|1        (1) the client's address is part of the key
 *   sender 0|1           (0) the envelope sender is
 *   recipient 0|1        (0) the recipient is; the check then runs at RCPT, per recipient
 *   deny_late 0|1        (0) at MAIL, note the deferral (transaction note `greylist`) and give it
 *                        at DATA instead, so that every recipient is logged
 *   black_timeout S      (3000, 50 minutes) seconds during which retries are still deferred
 *   grey_timeout S       (12000, 3 h 20 min) seconds after the first attempt within which a
 *                        retry passes and whitelists the triplet
 *   white_timeout S      (3110400, 36 days) seconds a whitelisted triplet stays known
 *   per_recipient 0|1    (0) check at RCPT, with the recipient's own `denysoft_greylist`
 *                        (per-user config, see user_config) overriding the timeouts
 *   per_recipient_db 0|1 (0) a separate greylist per recipient (the key starts with it)
 *   reject 0|1           (1) 0: record and log, never defer (to seed the greylist first)
 *   mode denysoft|testonly|off   the old form of reject: testonly and off mean reject 0
 *   geoip CC,CC          never greylist clients whose connection note `geoip_country` is listed
 *   store_error temp|pass   (temp) when the store fails: 451 "try again later", or let the
 *                        mail pass ungreylisted (qpsmtpd's behaviour); logged either way
 *   loglevel N
 * Not greylisted: relay clients, whitelisted hosts and senders (the whitelist plugin's notes,
 * `is_immune`), hosts in the `greylist_exclude_files` (postgrey-style files, one entry a line:
 * an IP address, a host name compared with the client's name, or `/regex/` matched against it),
 * and, at DATA, a message whose every recipient is whitelisted (transaction note
 * `whitelistrcpt`). The null sender is deferred at DATA, not at RCPT (SMTP callout probes).
 *
 * Hooks: mail (or rcpt with recipient/per_recipient), data. Log (LOGWARN, LOGINFO): `fail:
 * initial DENYSOFT, unknown`, `fail: black DENYSOFT - N deferred connections`, `pass: updated
 * grey->white`, `pass: white, N deliveries`, `skip, ...`.
 *
 * Differences from qpsmtpd: the store replaces the DBM file (`db_dir`, `redis`, `nfslock` and
 * `upgrade` are ignored, with a warning: see `config/store`); the key holds the address as text,
 * not as an integer; a triplet whose grey window passed without a retry starts over (qpsmtpd
 * passed it without whitelisting it, "timed out (grey)"); the `p0f` exemption does not apply
 * (there is no p0f plugin); timeouts may be fractions of a second (for tests); per_recipient_db
 * keys the greylist by recipient instead of reading a per-recipient folder from a note that no
 * plugin set; on a store failure the default is a temporary failure (qpsmtpd let the mail pass).
 */
import { Plugin, DECLINED, DENYSOFT, LOGDEBUG, LOGINFO, LOGWARN, isImmune, normalizeIp, openStore, pairArguments, storeErrorPolicy, storeFailure } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Store, StoreErrorPolicy, Transaction } from 'qpsmtpd';
import { readFileSync } from 'node:fs';

const DENY_MESSAGE = 'This mail is temporarily denied';
const KNOWN = ['remote_ip', 'sender', 'recipient', 'deny_late', 'black_timeout', 'grey_timeout', 'white_timeout', 'per_recipient', 'per_recipient_db', 'reject', 'mode', 'geoip', 'store_error', 'db_dir', 'redis', 'nfslock', 'upgrade', 'p0f'];
const DEFAULTS: Readonly<Record<string, string>> = {
  remote_ip: '1',
  sender: '0',
  recipient: '0',
  deny_late: '0',
  black_timeout: String(50 * 60),
  grey_timeout: String(3 * 3600 + 20 * 60),
  white_timeout: String(36 * 24 * 3600),
  per_recipient: '0',
  per_recipient_db: '0',
};

/** The timeouts of one check, in milliseconds. */
interface Timeouts {
  readonly black: number;
  readonly grey: number;
  readonly white: number;
}

/** A record: first (or last white) attempt in ms, then qpsmtpd's new/black/white counters. */
interface GreyRecord {
  readonly ts: number;
  readonly fresh: number;
  readonly black: number;
  readonly white: number;
}

interface Exclusions {
  readonly ips: Set<string>;
  readonly hosts: Set<string>;
  readonly patterns: RegExp[];
}

export default class Greylisting extends Plugin {
  private settings = new Map<string, string>();
  private reject = true;
  private timeouts: Timeouts = { black: 0, grey: 0, white: 0 };
  private storeError: StoreErrorPolicy = 'temp';
  private store: Store | undefined;
  private exclusions: Exclusions = { ips: new Set(), hosts: new Set(), patterns: [] };

  async register(_qp: PluginHost, ...args: string[]): Promise<void> {
    const given = pairArguments(this, args, KNOWN);
    const fromFile = keyValueLines(this.configList('denysoft_greylist'));
    this.settings = new Map([...Object.entries(DEFAULTS), ...fromFile, ...given]);
    for (const name of ['db_dir', 'redis', 'nfslock', 'upgrade', 'p0f']) {
      if (this.settings.has(name)) this.log(LOGWARN, `argument ${name} is ignored: the greylist lives in the state store (config/store)${name === 'p0f' ? '; p0f matching is not supported' : ''}`);
    }
    const mode = this.settings.get('mode');
    const reject = this.settings.get('reject') ?? (mode !== undefined && /testonly|off/i.test(mode) ? '0' : '1');
    this.reject = isTrue(reject);
    this.timeouts = this.timeoutsFrom(this.settings);
    this.storeError = storeErrorPolicy(this, this.settings.get('store_error'));
    if (!['remote_ip', 'sender', 'recipient'].some((part) => this.flag(part))) {
      throw new Error(`${this.name}: enable one of remote_ip, sender or recipient`);
    }
    this.exclusions = this.loadExclusions();
    this.store = await openStore(this);

    this.registerHook('data', 'dataHandler');
    if (this.flag('recipient') || this.flag('per_recipient')) this.registerHook('rcpt', 'rcptHandler');
    else this.registerHook('mail', 'mailHandler');
  }

  async shutdown(): Promise<void> {
    await this.store?.close();
  }

  async mailHandler(tx: Transaction, sender: Address): Promise<HookResult> {
    const result = await this.greylist(sender, undefined, this.timeouts);
    if (result !== DENYSOFT) return result;
    if (!this.flag('deny_late')) return [DENYSOFT, DENY_MESSAGE];
    tx.notes['greylist'] = DENY_MESSAGE;
    return DECLINED;
  }

  async rcptHandler(tx: Transaction, rcpt: Address): Promise<HookResult> {
    const timeouts = this.flag('per_recipient') ? this.timeoutsFrom(new Map([...this.settings, ...keyValueLines(rcpt.configList('denysoft_greylist'))])) : this.timeouts;
    const sender = tx.sender;
    const result = await this.greylist(sender, rcpt, timeouts);
    if (result !== DENYSOFT) return result;
    // Deferred here, per recipient, unless the sender is <>: callout probes would take a 450 at
    // RCPT for "no such user"; the message is deferred at DATA instead.
    if (sender !== undefined && !sender.isNull) return [DENYSOFT, DENY_MESSAGE];
    tx.notes['greylist'] = DENY_MESSAGE;
    return DECLINED;
  }

  dataHandler(tx: Transaction): HookResult {
    const note = tx.notes['greylist'];
    if (typeof note !== 'string' || note === '') return DECLINED;
    if ((Number(tx.notes['whitelistrcpt']) || 0) === tx.recipients.length) {
      this.log(LOGWARN, 'skip: all recipients whitelisted');
      return DECLINED;
    }
    return [DENYSOFT, note];
  }

  /** DENYSOFT (a deferral, before `reject`), DECLINED, or what the store failure policy says. */
  private async greylist(sender: Address | undefined, rcpt: Address | undefined, timeouts: Timeouts): Promise<HookResult> {
    if (this.excluded()) return DECLINED;
    const key = this.keyOf(sender, rcpt ?? this.transaction.recipients[0]);
    try {
      const deferred = await this.check(key, timeouts);
      if (!deferred) return DECLINED;
      return this.reject ? DENYSOFT : DECLINED;
    } catch (err) {
      return storeFailure(this, err, this.storeError, 'cannot read the greylist');
    }
  }

  /** qpsmtpd's greylist_result: true when the attempt is deferred. */
  private async check(key: string, t: Timeouts): Promise<boolean> {
    const store = this.store!;
    const options = { signal: this.signal };
    const now = Date.now();
    const record = parseRecord(await store.get(key, options));
    const save = (r: GreyRecord, ttl: number): Promise<void> => store.set(key, `${r.ts}:${r.fresh}:${r.black}:${r.white}`, Math.max(1, ttl), options);

    if (record !== undefined && record.white > 0) {
      if (now - record.ts < t.white) {
        await save({ ...record, ts: now, white: record.white + 1 }, t.white);
        this.log(LOGINFO, `pass: white, ${record.white + 1} deliveries`);
        return false;
      }
      this.log(LOGINFO, `key ${key} has timed out (white)`);
    }
    if (record !== undefined && now - record.ts < t.black) {
      await save({ ...record, black: record.black + 1, white: 0 }, record.ts + t.grey - now);
      this.log(LOGWARN, `fail: black DENYSOFT - ${record.black + 1} deferred connections`);
      return true;
    }
    if (record !== undefined && record.white === 0 && now - record.ts < t.grey) {
      await save({ ...record, ts: now, white: 1 }, t.white);
      this.log(LOGWARN, 'pass: updated grey->white');
      return false;
    }
    // Unknown, or its grey window (or white period) is over: a first attempt again.
    await save({ ts: now, fresh: 1, black: 0, white: 0 }, t.grey);
    this.log(LOGWARN, 'fail: initial DENYSOFT, unknown');
    return true;
  }

  /** The store key: `greylist:` then [recipient namespace,] ip, sender, recipient as enabled. */
  private keyOf(sender: Address | undefined, rcpt: Address | undefined): string {
    const parts = ['greylist'];
    if (this.flag('per_recipient_db') && rcpt !== undefined) parts.push(`db=${rcpt.address.toLowerCase()}`);
    if (this.flag('remote_ip')) {
      const ip = this.connection.remoteIp;
      parts.push(normalizeIp(ip) ?? ip);
    }
    if (this.flag('sender')) parts.push(sender?.address.toLowerCase() ?? '');
    if (this.flag('recipient') && rcpt !== undefined) parts.push(rcpt.address.toLowerCase());
    return parts.join(':');
  }

  private excluded(): boolean {
    if (isImmune(this)) return true;
    const countries = this.settings.get('geoip');
    const country = this.connection.notes['geoip_country'];
    if (countries !== undefined && typeof country === 'string' && countries.split(',').some((c) => c.trim().toLowerCase() === country.toLowerCase())) {
      this.log(LOGINFO, `skip, geoip country match (${country})`);
      return true;
    }
    const { ips, hosts, patterns } = this.exclusions;
    const ip = this.connection.remoteIp;
    const host = this.connection.remoteHost;
    const named = host !== '' && !host.startsWith('[');
    if (ips.has(ip) || (named && (hosts.has(host.toLowerCase()) || patterns.some((re) => re.test(host))))) {
      this.log(LOGINFO, 'skip, in a greylist exclude file');
      return true;
    }
    return false;
  }

  /** The files named in `config/greylist_exclude_files`, read once (as qpsmtpd, at start). */
  private loadExclusions(): Exclusions {
    const out: Exclusions = { ips: new Set(), hosts: new Set(), patterns: [] };
    for (const file of this.configList('greylist_exclude_files')) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        this.log(LOGWARN, `cannot read greylist exclude file ${file}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      text.split('\n').forEach((raw, i) => {
        const entry = raw.replace(/#.*/, '').replace(/\s/g, '');
        if (entry === '') return;
        const re = /^\/(.*)\/$/.exec(entry);
        if (re === null) {
          if (normalizeIp(entry) !== undefined) out.ips.add(normalizeIp(entry)!);
          else out.hosts.add(entry.toLowerCase());
          return;
        }
        try {
          out.patterns.push(new RegExp(re[1]!));
        } catch (err) {
          this.log(LOGWARN, `${file}:${i + 1}: pattern skipped: ${err instanceof Error ? err.message : String(err)}`);
        }
      });
    }
    return out;
  }

  private timeoutsFrom(args: ReadonlyMap<string, string>): Timeouts {
    const seconds = (name: string): number => {
      const value = args.get(name) ?? DEFAULTS[name]!;
      if (!/^\d+(\.\d+)?$/.test(value)) throw new Error(`${this.name}: ${name} "${value}": expected seconds`);
      return Number(value) * 1000;
    };
    return { black: seconds('black_timeout'), grey: seconds('grey_timeout'), white: seconds('white_timeout') };
  }

  private flag(name: string): boolean {
    return isTrue(this.settings.get(name) ?? '0');
  }
}

function isTrue(value: string): boolean {
  return !/^(0|no|false|off)?$/i.test(value.trim());
}

/** `NAME VALUE` lines (config/denysoft_greylist), names lower-cased. */
function keyValueLines(lines: readonly string[]): [string, string][] {
  return lines.map((line) => {
    const [name = '', ...rest] = line.trim().split(/\s+/);
    return [name.toLowerCase(), rest.join(' ')];
  });
}

function parseRecord(value: string | undefined): GreyRecord | undefined {
  if (value === undefined) return undefined;
  const [ts, fresh, black, white] = value.split(':').map((n) => Number(n) || 0);
  return { ts: ts ?? 0, fresh: fresh ?? 0, black: black ?? 0, white: white ?? 0 };
}
