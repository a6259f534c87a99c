/**
 * karma: remember how each client behaved, and refuse the ones that were naughty more often than
 * nice (qpsmtpd's `karma`). Other plugins judge the session: they add to the connection note
 * `karma` (`adjustKarma(this, -1)` from 'qpsmtpd': badmailfrom, whitelist, naughty ...). When the
 * session ends, karma stores its verdict for the client's address: a total of `strikes` or more is
 * a nice connection, `-strikes` or less a naughty one. A naughty connection from a client whose
 * naughty connections now outnumber its nice ones by `negative` or more sends it to the penalty
 * box for `penalty_days`: its next connections are refused ("You were naughty. You cannot connect
 * for N more days."). A client with no nice connection and a history below -5 gets a day more in
 * the box for each naughty connection (qpsmtpd's "penalty box bonus").
 *
 * For other plugins: connection note `karma_history` (nice minus naughty connections so far; a
 * history above 10 also earns +1 karma for this session) and note `karma` (this session's total).
 *
 * The history lives in the shared state store (`config/store`: a SQLite file, or Redis shared
 * by several servers): counters `karma:IP:naughty`, `:nice`, `:connects` (kept `history_days`
 * after their last change) and `karma:IP:penalty` (the time the penalty began; it expires with
 * the penalty).
 *
 * Arguments, in pairs:
 *   negative N          (1) how far below zero nice minus naughty may go before a naughty
 *                       connection is penalized
 *   strikes N           (3) the total that makes a connection nice (N) or naughty (-N)
 *   penalty_days D      (1) days in the penalty box (fractions allowed)
 *   reject 0|1|connect|naughty   (naughty) how a penalized client is refused: 1 or connect at
 *                       connect, naughty through the naughty plugin, 0 only logged
 *   reject_type T       (disconnect) perm, temp, disconnect or temp_disconnect
 *   history_days D      (365) how long a quiet client's counters are kept
 *   store_error temp|pass   (temp) when the store fails at connect: a temporary refusal, or
 *                       serve the client without its history; logged either way
 *   loglevel N
 * Config file `karma_tlds` (optional): `tld:adjustment` lines (`jp:-4`, `fr:+1`) applied at MAIL
 * to a sender in that top-level domain. Not judged: relay clients and whitelisted hosts/senders
 * (is_immune). Further effects, as qpsmtpd: a client with no good history and no good karma in
 * this session gets one recipient per message (the rest: 450, "too many recipients for karma"),
 * and a session whose karma falls below -4 is refused at DATA ("very bad karma").
 *
 * Hooks: connect, mail, rcpt, data, data_post, disconnect. Log (LOGINFO): `pass, no record`,
 * `pass, no penalty (N naughty, N nice, N connects)`, `fail, ...`, `negative, sent to penalty
 * box`, `positive`, `neutral`.
 *
 * Differences from qpsmtpd: a naughty connection counts in `naughty` (qpsmtpd 1.0 lowered only
 * the history it computed, so the stored naughty count never grew); the note `karma` is kept
 * when a plugin before karma already set it (qpsmtpd reset it to 0 at connect); the recipient
 * limit answers 450 rather than 550, so the other recipients are retried, not bounced; the
 * store replaces the DBM file (`db_dir`, `nfslock` ignored); counters expire (`history_days`)
 * instead of a prune pass; the envelope-syntax check (`illegal_envelope_format`) is left out.
 */
import { Plugin, DECLINED, DENYSOFT, LOGDEBUG, LOGINFO, LOGWARN, adjustKarma, getReject, isImmune, normalizeIp, openStore, pairArguments, storeErrorPolicy, storeFailure } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Store, StoreErrorPolicy, Transaction } from 'qpsmtpd';

const DAY_MS = 86_400_000;
const KNOWN = ['negative', 'strikes', 'penalty_days', 'reject', 'reject_type', 'history_days', 'store_error', 'db_dir', 'nfslock'];

interface History {
  readonly naughty: number;
  readonly nice: number;
  readonly connects: number;
  /** When the penalty began (ms), if the client is in the box. */
  readonly penaltyStart: number | undefined;
}

export default class Karma extends Plugin {
  private negative = 1;
  private strikes = 3;
  private penaltyDays = 1;
  private historyMs = 365 * DAY_MS;
  private reject = 'naughty';
  private rejectType = 'disconnect';
  private storeError: StoreErrorPolicy = 'temp';
  private store: Store | undefined;

  async register(_qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, KNOWN);
    const number = (name: string, fallback: number): number => {
      const value = pairs.get(name);
      if (value === undefined) return fallback;
      if (!/^\d+(\.\d+)?$/.test(value) || Number(value) === 0) throw new Error(`${this.name}: ${name} "${value}": expected a positive number`);
      return Number(value);
    };
    this.negative = number('negative', 1);
    this.strikes = number('strikes', 3);
    this.penaltyDays = number('penalty_days', 1);
    this.historyMs = number('history_days', 365) * DAY_MS;
    this.reject = pairs.get('reject') ?? 'naughty';
    this.rejectType = pairs.get('reject_type') ?? 'disconnect';
    this.storeError = storeErrorPolicy(this, pairs.get('store_error'));
    for (const name of ['db_dir', 'nfslock']) if (pairs.has(name)) this.log(LOGWARN, `argument ${name} is ignored: the history lives in the state store (config/store)`);
    this.store = await openStore(this);
  }

  async shutdown(): Promise<void> {
    await this.store?.close();
  }

  async hook_connect(_tx: Transaction): Promise<HookResult> {
    const notes = this.connection.notes;
    if (notes['karma'] === undefined) notes['karma'] = 0;
    if (isImmune(this)) return DECLINED;
    let history: History;
    try {
      history = await this.read();
    } catch (err) {
      return storeFailure(this, err, this.storeError, 'cannot read the karma history');
    }
    if (history.naughty === 0 && history.nice === 0 && history.penaltyStart === undefined) {
      this.log(LOGINFO, 'pass, no record');
      return DECLINED;
    }
    const karma = history.nice - history.naughty;
    notes['karma_history'] = karma;
    if (karma > 10) adjustKarma(this, 1);
    const summary = `${history.naughty} naughty, ${history.nice} nice, ${history.connects} connects`;
    if (history.penaltyStart === undefined) {
      this.log(LOGINFO, `pass, no penalty (${summary})`);
      return DECLINED;
    }
    const left = (this.penaltyDays * DAY_MS - (Date.now() - history.penaltyStart)) / DAY_MS;
    // Counted here too, as qpsmtpd: the session's own end may store nothing (no karma).
    await this.store!.incr(this.key('connects'), 1, this.historyMs, { signal: this.signal }).catch((err: unknown) => this.log(LOGWARN, `cannot count the connection: ${String(err)}`));
    return getReject({
      plugin: this,
      reject: this.reject,
      rejectType: this.rejectType,
      message: `You were naughty. You cannot connect for ${left.toFixed(2)} more days.`,
      logMessage: summary,
    });
  }

  hook_mail(_tx: Transaction, sender: Address): HookResult {
    const host = sender.host.toLowerCase();
    if (host === '') return DECLINED;
    for (const line of this.configList('karma_tlds')) {
      const [tld = '', score = ''] = line.split(':', 2).map((s) => s.trim());
      const value = Number(score);
      if (tld === '' || !Number.isFinite(value) || value === 0) continue;
      if (host.endsWith(`.${tld.toLowerCase()}`)) {
        this.log(LOGINFO, `adjusting karma for .${tld} envelope sender`);
        adjustKarma(this, value);
      }
    }
    return DECLINED;
  }

  hook_rcpt(tx: Transaction, rcpt: Address): HookResult {
    if (isImmune(this)) return DECLINED;
    const accepted = tx.recipients.length;
    if (accepted === 0) return DECLINED;
    this.log(LOGINFO, `recipients t: ${accepted} (${rcpt.address})`);
    const history = Number(this.connection.notes['karma_history']) || 0;
    if (history > 0) {
      this.log(LOGINFO, 'info, good history');
      return DECLINED;
    }
    const karma = Number(this.connection.notes['karma']) || 0;
    if (karma > 0) {
      this.log(LOGINFO, 'info, good connection');
      return DECLINED;
    }
    return [DENYSOFT, `too many recipients for karma ${karma} (h: ${history})`];
  }

  hook_data(_tx: Transaction): HookResult {
    return this.veryBad();
  }

  hook_data_post(_tx: Transaction): HookResult {
    return this.veryBad();
  }

  /** The session's end: store its verdict. */
  async hook_disconnect(): Promise<HookResult> {
    const karma = Number(this.connection.notes['karma']) || 0;
    if (karma === 0) {
      this.log(LOGDEBUG, 'no karma');
      return DECLINED;
    }
    const store = this.store!;
    const options = { signal: this.signal };
    try {
      const connects = store.incr(this.key('connects'), 1, this.historyMs, options);
      if (karma >= this.strikes) {
        await Promise.all([connects, store.incr(this.key('nice'), 1, this.historyMs, options)]);
        this.log(LOGINFO, `positive, (msg: ${karma})`);
      } else if (karma <= -this.strikes) {
        const [, naughty, nice] = await Promise.all([
          connects,
          store.incr(this.key('naughty'), 1, this.historyMs, options),
          store.get(this.key('nice'), options).then((v) => Number(v ?? 0) || 0),
        ]);
        const history = nice - naughty;
        if (history <= -this.negative) {
          // No nice connection ever and a long bad record: a day more for each naughty one.
          const bonus = nice === 0 && history < -5 ? Math.abs(history) * DAY_MS : 0;
          const start = Date.now() + bonus;
          await store.set(this.key('penalty'), String(start), this.penaltyDays * DAY_MS + bonus, options);
          this.log(LOGINFO, `negative, sent to penalty box${bonus > 0 ? ', penalty box bonus!' : ''}, (msg: ${karma}, his: ${history})`);
        } else {
          this.log(LOGINFO, `negative, (msg: ${karma}, his: ${history})`);
        }
      } else {
        await connects;
        this.log(LOGINFO, `neutral, (msg: ${karma})`);
      }
    } catch (err) {
      // The session is over: nothing to refuse; the verdict is lost.
      this.log(LOGWARN, `cannot store the verdict (karma ${karma}): ${err instanceof Error ? err.message : String(err)}`);
    }
    return DECLINED;
  }

  private veryBad(): HookResult {
    if (isImmune(this)) return DECLINED;
    const naughty = this.connection.notes['naughty'];
    if (typeof naughty === 'string' && naughty !== '') return DECLINED; // the naughty plugin refuses
    const karma = Number(this.connection.notes['karma']) || 0;
    if (karma >= -4) return DECLINED;
    return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message: `very bad karma: ${karma}` });
  }

  private async read(): Promise<History> {
    const options = { signal: this.signal };
    const [naughty, nice, connects, penalty] = await Promise.all(
      (['naughty', 'nice', 'connects', 'penalty'] as const).map((name) => this.store!.get(this.key(name), options)),
    );
    const penaltyStart = penalty === undefined ? undefined : Number(penalty);
    return {
      naughty: Number(naughty ?? 0) || 0,
      nice: Number(nice ?? 0) || 0,
      connects: Number(connects ?? 0) || 0,
      penaltyStart: penaltyStart !== undefined && Date.now() - penaltyStart < this.penaltyDays * DAY_MS ? penaltyStart : undefined,
    };
  }

  private key(name: 'naughty' | 'nice' | 'connects' | 'penalty'): string {
    const ip = this.connection.remoteIp;
    return `karma:${normalizeIp(ip) ?? ip}:${name}`;
  }
}
