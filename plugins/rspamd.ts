/**
 * rspamd: scan each message with rspamd (its normal worker's HTTP protocol, `POST /checkv2`) and
 * do what rspamd recommends. New here (qpsmtpd users asked for it: smtpd/qpsmtpd#293; Haraka has
 * a plugin of its own).
 *
 * rspamd is told the envelope and the connection with the message (src/scan/rspamd.ts): the
 * client's IP, HELO name and verified host name, the envelope sender and each recipient, the
 * transaction id (Queue-Id), the authenticated user, our name (MTA-Name), the TLS cipher and
 * version. Its recommended action becomes:
 *   reject           DENY (552), with rspamd's SMTP message if it gave one, else `Spam message rejected`
 *                    (reject no: delivered, marked as spam)
 *   soft reject      DENYSOFT (452), rspamd's message or `Try again later` (soft_reject pass: delivered)
 *   greylist         DENYSOFT (452) as well (greylist pass: delivered; use it when another plugin
 *                    greylists)
 *   rewrite subject  the Subject rspamd rewrote (rewrite_subject no: left alone); marked as spam
 *   add header       marked as spam: `X-Spam-Flag: YES`
 *   no action        delivered
 * Marks: `X-Spam-Status: Yes|No, score=S required=R action=A tests=SYM1,SYM2` and
 * `X-Spam-Level: ****` (a star a point) on top, SpamAssassin's style so that existing filters
 * work; `X-Spam-Flag: YES` for spam (add header, rewrite subject, an unenforced reject). rspamd's
 * own header changes (`milter.remove_headers`, then `milter.add_headers`, at the positions it
 * names) are made on every delivered message: its milter_headers module's fields (X-Spamd-Result,
 * X-Rspamd-Server, Authentication-Results ...), and the removal of an X-Spam field from upstream.
 *
 * Arguments, in pairs:
 *   rspamd_socket HOST:PORT|PATH   rspamd's normal worker (default localhost:11333; a path: a unix socket)
 *   reject yes|no                  act on reject (default yes)
 *   reject_type perm|temp|disconnect|temp_disconnect   the code for reject (default perm)
 *   soft_reject temp|pass          default temp
 *   greylist temp|pass             default temp
 *   rewrite_subject yes|no         default yes
 *   headers always|spam|none       X-Spam-* marks on every scanned message (default), only on spam, never
 *   milter yes|no                  make rspamd's header changes (default yes)
 *   smtp_message yes|no            use rspamd's SMTP message for refusals (default yes)
 *   leave_old_headers drop|rename|keep   X-Spam-Status/-Level/-Flag the message brought: renamed to
 *                                  X-Old-Spam-* (default), dropped or kept
 *   settings_id ID                 rspamd's Settings-ID (a settings profile on rspamd's side)
 *   relayclient skip|scan          relay clients (and whitelisted hosts and senders) are skipped
 *                                  (default) or scanned
 *   size_limit BYTES               larger messages are not scanned (logged; default 10000000; 0: no limit)
 *   timeout SECONDS                the whole exchange (default 20; plugin_timeout ends it sooner)
 *   defer_on_error yes|no          rspamd down, silent or confused: no (default): deliver unscanned,
 *                                  logged (LOGERROR); yes: 452 `4.3.0 Unable to scan for spam, try again later`
 *   loglevel N                     the usual
 * Transaction note `rspamd`: { score, required_score, action, is_skipped, symbols: { NAME: { score,
 * options? } }, message_id? }. Karma: -1 for spam and for refusals. Config files: me.
 * Hooks: data_post. Log (LOGINFO): `pass, ACTION, score S / R`, `fail, ...`, `skip, ...`.
 */
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Plugin, DECLINED, DENYSOFT, LOGINFO, LOGWARN, RSPAMD_MAX_REPLY, adjustKarma, applyRspamdHeaderChanges, clearOldHeader, describeScanTarget, httpResponseComplete, isImmune, overSizeLimit, choiceArgument, flagArgument, pairArguments, parseCount, parseOldHeaders, parseRspamdReply, parseScanTarget, parseSeconds, rejectCode, rspamdCheckRequest, scanFailure, socketRequest } from 'qpsmtpd';
import type { HookResult, OldHeaders, PluginHost, RspamdEnvelope, RspamdResult, RspamdSymbol, ScanTarget, Transaction } from 'qpsmtpd';

/** The transaction note `rspamd`. */
export interface RspamdNote {
  readonly score: number;
  readonly required_score: number;
  readonly action: string;
  readonly is_skipped: boolean;
  readonly symbols: Readonly<Record<string, RspamdSymbol>>;
  readonly message_id?: string;
}

const SPAM_ACTIONS = new Set(['reject', 'rewrite subject', 'add header']);
const MARKS = ['X-Spam-Flag', 'X-Spam-Level', 'X-Spam-Status'];

export default class Rspamd extends Plugin {
  private target: ScanTarget = { host: 'localhost', port: 11333 };
  private reject = true;
  private rejectType: string | undefined;
  private softReject = true;
  private greylist = true;
  private rewriteSubject = true;
  private headers: 'always' | 'spam' | 'none' = 'always';
  private milter = true;
  private smtpMessage = true;
  private oldHeaders: OldHeaders = 'rename';
  private settingsId: string | undefined;
  private scanRelayClients = false;
  private sizeLimit = 10_000_000;
  private timeoutMs = 20_000;
  private deferOnError = false;

  register(qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, [
      'rspamd_socket', 'reject', 'reject_type', 'soft_reject', 'greylist', 'rewrite_subject', 'headers', 'milter', 'smtp_message',
      'leave_old_headers', 'settings_id', 'relayclient', 'size_limit', 'timeout', 'defer_on_error',
    ]);
    this.target = parseScanTarget(pairs.get('rspamd_socket') ?? 'localhost:11333', 11333, dirname(qp.configDir), 'rspamd_socket');
    const flag = (key: string, fallback: boolean): boolean => flagArgument(pairs, key, fallback);
    const choice = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => choiceArgument(pairs, key, allowed, fallback);
    this.reject = flag('reject', true);
    this.rejectType = pairs.get('reject_type');
    this.softReject = choice('soft_reject', ['temp', 'pass'], 'temp') === 'temp';
    this.greylist = choice('greylist', ['temp', 'pass'], 'temp') === 'temp';
    this.rewriteSubject = flag('rewrite_subject', true);
    this.headers = choice('headers', ['always', 'spam', 'none'], 'always');
    this.milter = flag('milter', true);
    this.smtpMessage = flag('smtp_message', true);
    const old = pairs.get('leave_old_headers');
    if (old !== undefined) this.oldHeaders = parseOldHeaders(old);
    this.settingsId = pairs.get('settings_id');
    this.scanRelayClients = choice('relayclient', ['skip', 'scan'], 'skip') === 'scan';
    const size = pairs.get('size_limit');
    if (size !== undefined) this.sizeLimit = parseCount('size_limit', size);
    const timeout = pairs.get('timeout');
    if (timeout !== undefined) this.timeoutMs = parseSeconds('timeout', timeout);
    this.deferOnError = flag('defer_on_error', false);
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (!(this.scanRelayClients && this.connection.relayClient) && isImmune(this)) return DECLINED;
    if (overSizeLimit(this, tx, this.sizeLimit)) return DECLINED;
    const target = this.target;
    const peer = `rspamd at ${describeScanTarget(target)}`;
    let result: RspamdResult;
    try {
      const reply = await socketRequest(() => connect(target), {
        peer,
        timeoutMs: this.timeoutMs,
        signal: this.signal,
        request: () => rspamdCheckRequest(tx, this.envelope(tx), 'path' in target ? 'localhost' : describeScanTarget(target)),
        maxReplyBytes: RSPAMD_MAX_REPLY,
        replyComplete: httpResponseComplete,
      });
      result = parseRspamdReply(reply, peer);
    } catch (err) {
      return scanFailure(this, err, this.deferOnError, 'Unable to scan for spam, try again later');
    }
    tx.notes['rspamd'] = {
      score: result.score,
      required_score: result.requiredScore,
      action: result.action,
      is_skipped: result.isSkipped,
      symbols: result.symbols,
      ...(result.messageId !== undefined ? { message_id: result.messageId } : {}),
    } satisfies RspamdNote;
    const status = `${result.action}, score ${result.score} / ${result.requiredScore}`;

    const refusal = this.refusal(result);
    if (refusal !== undefined) {
      adjustKarma(this, -1);
      this.log(LOGINFO, `fail, ${status}`);
      return refusal;
    }
    const spam = SPAM_ACTIONS.has(result.action);
    if (spam) adjustKarma(this, -1);
    this.log(LOGINFO, `${spam ? 'fail, tolerated' : 'pass'}, ${status}`);
    if (this.milter) {
      const refused = applyRspamdHeaderChanges(tx.header, result);
      if (refused.length > 0) this.log(LOGWARN, `rspamd asked to add fields that are no field names: ${refused.map((n) => JSON.stringify(n)).join(', ')}`);
    }
    if (result.action === 'rewrite subject' && this.rewriteSubject) {
      tx.header.replace('Subject', result.subject ?? `*** SPAM *** ${tx.header.get('Subject') ?? ''}`);
    }
    this.mark(tx, result, spam);
    return DECLINED;
  }

  /** The refusal an action calls for, as configured; undefined: deliver. */
  private refusal(result: RspamdResult): HookResult | undefined {
    const text = (fallback: string): string => (this.smtpMessage && result.smtpMessage !== undefined ? result.smtpMessage.replace(/[\r\n]+/g, ' ') : fallback);
    switch (result.action) {
      case 'reject':
        return this.reject ? [rejectCode(this.rejectType), text('Spam message rejected')] : undefined;
      case 'soft reject':
        return this.softReject ? [DENYSOFT, text('Try again later')] : undefined;
      case 'greylist':
        return this.greylist ? [DENYSOFT, text('Try again later')] : undefined;
      default:
        return undefined;
    }
  }

  /** X-Spam-Status, X-Spam-Level and (for spam) X-Spam-Flag on top, as `headers` says. */
  private mark(tx: Transaction, result: RspamdResult, spam: boolean): void {
    if (this.headers === 'none' || (this.headers === 'spam' && !spam)) return;
    for (const name of MARKS) clearOldHeader(tx.header, name, this.oldHeaders);
    const tests = Object.keys(result.symbols).sort().join(',');
    const required = Number.isNaN(result.requiredScore) ? '' : ` required=${result.requiredScore.toFixed(1)}`;
    tx.header.add('X-Spam-Status', `${spam ? 'Yes' : 'No'}, score=${result.score.toFixed(1)}${required} action=${result.action.replace(/ /g, '_')}\n\ttests=${tests || 'none'}`, 0);
    if (result.score >= 1) tx.header.add('X-Spam-Level', '*'.repeat(Math.min(50, Math.floor(result.score))), 0);
    if (spam) tx.header.add('X-Spam-Flag', 'YES', 0);
  }

  private envelope(tx: Transaction): RspamdEnvelope {
    const conn = this.connection;
    const optional = (key: keyof RspamdEnvelope, value: string | undefined): Partial<RspamdEnvelope> => (value === undefined || value === '' ? {} : { [key]: value });
    return {
      rcpts: tx.recipients.map((r) => r.address),
      ...optional('ip', conn.remoteIp),
      ...optional('helo', conn.helloHost),
      // `[192.0.2.1]` is no host name: rspamd is told only a name that was found.
      ...optional('hostname', conn.remoteHost.startsWith('[') ? undefined : conn.remoteHost),
      ...optional('from', tx.sender === undefined || tx.sender.isNull ? undefined : tx.sender.address),
      ...optional('queueId', tx.id),
      ...optional('user', conn.authUser),
      ...optional('mtaName', this.config('me')),
      ...optional('tlsCipher', conn.tls?.cipher),
      ...optional('tlsVersion', conn.tls?.protocol),
      ...optional('settingsId', this.settingsId),
    };
  }
}
