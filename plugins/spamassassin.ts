/**
 * spamassassin: score each message with SpamAssassin's daemon, spamd (qpsmtpd's spamassassin),
 * add its X-Spam-* header fields, and refuse or mark spam as configured.
 *
 * The message goes to spamd with the HEADERS command of the SPAMC/1.5 protocol (src/scan/spamc.ts),
 * streamed, after an `X-Envelope-From:` line that tells SpamAssassin the envelope sender. spamd
 * answers with the header block it would give the message; its X-Spam-* fields (X-Spam-Checker-
 * Version, X-Spam-Flag, X-Spam-Level, X-Spam-Status, X-Spam-Report ... as SpamAssassin's
 * `add_header` settings say) are added on top of ours, in spamd's order.
 *
 * Arguments, in pairs (qpsmtpd's):
 *   reject N|userprefs        refuse messages that score N or more (552 `spam score exceeded
 *                             threshold`); userprefs: at the threshold spamd applied for the user
 *                             (`required`). Default: never refuse. (reject_threshold: old name.)
 *   reject_type perm|temp|disconnect|temp_disconnect    how to refuse (default perm).
 *   munge_subject_threshold N prefix the Subject of messages scoring over N (and over `required`).
 *   subject_prefix TEXT       the prefix (default: config `subject_prefix`, else `*** SPAM ***`).
 *   spamd_socket PATH|HOST:PORT  where spamd listens (default localhost:783; a path: its unix socket).
 *   headers on|off            off (qpsmtpd: none): add no headers (and no Subject change); the note
 *                             is still made. Default on.
 *   leave_old_headers drop|rename|keep   X-Spam-* fields the message brought, of the names spamd
 *                             gives: rename to X-Old-Spam-* (default), drop, or keep.
 *   spamd_user NAME           whose SpamAssassin preferences apply (default: the user the daemon
 *                             runs as). `vpopmail`: the recipient's address, when there is one
 *                             recipient; with several, the message gets `X-Spam-User: NAME, N
 *                             recipients` so that a delivery agent can score it again per user.
 *   relayclient skip|scan     skip (default): relay clients (and whitelisted hosts and senders) are
 *                             not scanned; scan: relay clients are.
 *   size_limit BYTES          larger messages are not scanned (logged; default 500000).
 *   timeout SECONDS           the whole exchange with spamd (default 20; plugin_timeout ends it sooner).
 *   defer_on_error yes|no     spamd down, silent or refusing: no (default, as qpsmtpd): pass the
 *                             message unscanned, logged (LOGERROR); yes: 452 `4.3.0 Unable to scan
 *                             for spam, try again later`.
 *   loglevel N                the usual.
 *
 * Transaction note `spamassassin` (what other plugins read): the X-Spam-Status fields, as qpsmtpd
 * parses them — { is_spam: 'Yes'|'No', score, required, tests, autolearn, version, ... } — with
 * score and required as numbers and tests as `A,B,C` (no white space); from spamd's `Spam:` line
 * when SpamAssassin adds no X-Spam-Status.
 * Karma: spam -1; autolearn=spam -1, autolearn=ham +1.
 * Config files: subject_prefix. Hooks: data_post.
 * Log (LOGINFO): `pass, Ham, 1.2 < 5`, `fail, tolerated, Spam, 6 < 10`, `fail, Spam, 1003.3, > 5`,
 * `skip, ...`; LOGERROR `error, ...`.
 *
 * Differences from qpsmtpd: X-Spam-Report is kept (its folding survives here); X-Spam-Prev-Subject
 * is still left out; the protocol is SPAMC/1.5 (qpsmtpd said 1.4); the timeout and defer_on_error
 * are new; `relayclient scan` is new (qpsmtpd always skipped relay clients); unknown or bad
 * arguments are load errors, not log lines.
 */
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { Plugin, DECLINED, choiceArgument, flagArgument, LOGDEBUG, LOGINFO, SPAMD_MAX_REPLY, adjustKarma, clearOldHeader, describeScanTarget, isImmune, overSizeLimit, pairArguments, parseCount, parseFlag, parseOldHeaders, parseScanTarget, parseSeconds, parseSpamdReply, rejectCode, scanFailure, socketRequest, spamcHeadersRequest } from 'qpsmtpd';
import type { HookResult, OldHeaders, PluginHost, ScanTarget, SpamdField, SpamdReply, Transaction } from 'qpsmtpd';

/** The transaction note `spamassassin`. */
export interface SpamAssassinNote {
  readonly is_spam: 'Yes' | 'No';
  readonly score: number;
  readonly required: number;
  readonly tests?: string;
  readonly autolearn?: string;
  readonly version?: string;
  readonly [key: string]: string | number | undefined;
}

export default class SpamAssassin extends Plugin {
  private reject: number | 'userprefs' | undefined;
  private rejectType: string | undefined;
  private mungeThreshold: number | undefined;
  private subjectPrefix: string | undefined;
  private target: ScanTarget = { host: 'localhost', port: 783 };
  private headers = true;
  private oldHeaders: OldHeaders = 'rename';
  private spamdUser = '';
  private scanRelayClients = false;
  private sizeLimit = 500_000;
  private timeoutMs = 20_000;
  private deferOnError = false;

  register(qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, [
      'reject', 'reject_threshold', 'reject_type', 'munge_subject_threshold', 'subject_prefix', 'spamd_socket', 'headers',
      'leave_old_headers', 'spamd_user', 'relayclient', 'size_limit', 'timeout', 'defer_on_error',
    ]);
    const reject = pairs.get('reject') ?? pairs.get('reject_threshold');
    if (reject !== undefined && reject !== '0') this.reject = reject.toLowerCase() === 'userprefs' ? 'userprefs' : score('reject', reject);
    this.rejectType = pairs.get('reject_type');
    const munge = pairs.get('munge_subject_threshold');
    if (munge !== undefined && munge !== '0') this.mungeThreshold = score('munge_subject_threshold', munge);
    this.subjectPrefix = pairs.get('subject_prefix');
    this.target = parseScanTarget(pairs.get('spamd_socket') ?? 'localhost:783', 783, dirname(qp.configDir), 'spamd_socket');
    const headers = pairs.get('headers');
    if (headers !== undefined) this.headers = headers.toLowerCase() === 'none' ? false : parseFlag('headers', headers);
    const old = pairs.get('leave_old_headers');
    if (old !== undefined) this.oldHeaders = parseOldHeaders(old);
    this.spamdUser = pairs.get('spamd_user') ?? userInfo().username;
    this.scanRelayClients = choiceArgument(pairs, 'relayclient', ['skip', 'scan'], 'skip') === 'scan';
    const size = pairs.get('size_limit');
    if (size !== undefined) this.sizeLimit = parseCount('size_limit', size);
    const timeout = pairs.get('timeout');
    if (timeout !== undefined) this.timeoutMs = parseSeconds('timeout', timeout);
    this.deferOnError = flagArgument(pairs, 'defer_on_error', false);
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (!(this.scanRelayClients && this.connection.relayClient) && isImmune(this)) return DECLINED;
    if (overSizeLimit(this, tx, this.sizeLimit)) return DECLINED;
    const user = this.userFor(tx);
    let reply: SpamdReply;
    try {
      const target = this.target;
      const answer = await socketRequest(() => connect(target), {
        peer: `spamd at ${describeScanTarget(target)}`,
        timeoutMs: this.timeoutMs,
        signal: this.signal,
        request: () => spamcHeadersRequest(tx, { user, prefix: `X-Envelope-From: ${tx.sender === undefined ? '<>' : String(tx.sender)}\r\n` }),
        maxReplyBytes: SPAMD_MAX_REPLY,
      });
      reply = parseSpamdReply(answer);
    } catch (err) {
      return scanFailure(this, err, this.deferOnError, 'Unable to scan for spam, try again later');
    }
    const spamFields = reply.fields.filter((f) => /^X-Spam-/i.test(f.name) && !/^X-Spam-Prev-Subject$/i.test(f.name));
    const note = noteFrom(reply, spamFields);
    tx.notes['spamassassin'] = note;
    if (this.headers) {
      this.addHeaders(tx, newFields(tx, spamFields), user);
      this.mungeSubject(tx, note);
    }
    return this.verdict(note);
  }

  /** qpsmtpd's select_spamd_username. */
  private userFor(tx: Transaction): string {
    if (tx.recipients.length > 1) {
      this.log(LOGDEBUG, `message has ${tx.recipients.length} recipients`);
      return this.spamdUser;
    }
    if (this.spamdUser === 'vpopmail' && tx.recipients.length === 1) return tx.recipients[0]!.address;
    return this.spamdUser;
  }

  private addHeaders(tx: Transaction, fields: readonly SpamdField[], user: string): void {
    clearOldHeader(tx.header, 'X-Spam-User', this.oldHeaders);
    if (tx.recipients.length > 1) tx.header.add('X-Spam-User', `${user}, ${tx.recipients.length} recipients`, 0);
    for (const field of fields) clearOldHeader(tx.header, field.name, this.oldHeaders);
    // Each goes on top: the last first, so that they read in spamd's order.
    for (const field of [...fields].reverse()) tx.header.add(field.name, field.folded, 0);
  }

  private mungeSubject(tx: Transaction, note: SpamAssassinNote): void {
    if (this.mungeThreshold === undefined) return;
    if (note.score <= note.required || note.score <= this.mungeThreshold) return;
    const prefix = this.subjectPrefix ?? this.config('subject_prefix') ?? '*** SPAM ***';
    tx.header.replace('Subject', `${prefix} ${tx.header.get('Subject') ?? ''}`);
  }

  /** qpsmtpd's reject: karma, the log line, and a refusal at the threshold. */
  private verdict(note: SpamAssassinNote): HookResult {
    const spam = note.is_spam === 'Yes';
    if (spam) adjustKarma(this, -1);
    if (note.autolearn === 'ham') adjustKarma(this, 1);
    if (note.autolearn === 'spam') adjustKarma(this, -1);
    const status = `${spam ? 'Spam' : 'Ham'}, ${note.score}`;
    const learn = note.autolearn === undefined ? '' : `, learn=${note.autolearn}`;
    const threshold = this.reject === 'userprefs' ? note.required : this.reject;
    if (threshold === undefined) {
      this.log(LOGINFO, `${spam ? 'fail, tolerated' : 'pass'}, ${status}, reject disabled${learn}`);
      return DECLINED;
    }
    if (note.score < threshold) {
      this.log(LOGINFO, `${spam ? 'fail, tolerated' : 'pass'}, ${status} < ${threshold}${learn}`);
      return DECLINED;
    }
    this.log(LOGINFO, `fail, ${status}, > ${threshold}${learn}`);
    return [rejectCode(this.rejectType), 'spam score exceeded threshold'];
  }
}

function score(key: string, value: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new Error(`${key} "${value}": expected a score (a number)`);
  return Number(value);
}

/**
 * The fields spamd added: those the message did not already have with the same value (spamd may
 * hand back fields an earlier server added; those are not ours to add again).
 */
function newFields(tx: Transaction, fields: readonly SpamdField[]): SpamdField[] {
  const existing = new Map<string, number>();
  for (const { name, value } of tx.header.entries()) {
    const key = `${name.toLowerCase()}\0${value.replace(/\s+/g, ' ')}`;
    existing.set(key, (existing.get(key) ?? 0) + 1);
  }
  return fields.filter((f) => {
    const key = `${f.name.toLowerCase()}\0${f.value.replace(/\s+/g, ' ')}`;
    const left = existing.get(key) ?? 0;
    if (left === 0) return true;
    existing.set(key, left - 1);
    return false;
  });
}

/** qpsmtpd's parse_spam_header over X-Spam-Status (`Yes, score=6.1 required=5.0 tests=A,B ...`). */
function noteFrom(reply: SpamdReply, fields: readonly SpamdField[]): SpamAssassinNote {
  const status = fields.find((f) => /^X-Spam-Status$/i.test(f.name))?.value;
  const parsed: Record<string, string> = {};
  let isSpam: 'Yes' | 'No' = reply.isSpam ? 'Yes' : 'No';
  if (status !== undefined) {
    const [head = '', ...rest] = status.split(/\s+/);
    if (/^yes,?$/i.test(head)) isSpam = 'Yes';
    else if (/^no,?$/i.test(head)) isSpam = 'No';
    let last: string | undefined;
    for (const part of rest) {
      const at = part.indexOf('=');
      if (at > 0) {
        last = part.slice(0, at);
        parsed[last] = part.slice(at + 1);
      } else if (last !== undefined) {
        parsed[last] += part; // a folded tests list goes on after white space
      }
    }
    // SpamAssassin before 3 said hits=.
    if (parsed['hits'] !== undefined && parsed['score'] === undefined) {
      parsed['score'] = parsed['hits'];
      delete parsed['hits'];
    }
  }
  const number = (text: string | undefined, fallback: number): number => (text !== undefined && Number.isFinite(Number(text)) ? Number(text) : fallback);
  return { ...parsed, is_spam: isSpam, score: number(parsed['score'], reply.score), required: number(parsed['required'], reply.threshold) };
}
