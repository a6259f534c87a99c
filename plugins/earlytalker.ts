/**
 * earlytalker: refuse clients that talk before it is their turn (qpsmtpd's `earlytalker`, which
 * replaced check_earlytalker; that name loads this plugin too).
 *
 * A real MTA waits for the 220 greeting before it says EHLO, and for the 354 reply before it sends
 * the message. Direct-to-MX spam software often does not: it pipelines the whole conversation. So
 * before the greeting (and, with `check-at DATA`, before the 354 reply) this plugin holds back for
 * `wait` seconds and watches: a client that sends anything in that time is an early talker.
 *
 *   CONNECT  the connect hook waits; an early talker is refused (with the connect reply codes:
 *            perm 550, temp 450, disconnect 550, temp_disconnect 450; the session always ends),
 *            or, with `defer-reject 1`, greeted as usual and refused at every MAIL instead.
 *            A polite client is greeted after the wait.
 *   DATA     the data hook waits before the 354 reply; a client that sends the message without
 *            waiting for it is refused (perm 554, temp 451; disconnect and temp_disconnect close).
 *            Bytes that are already there when the 354 would go out the core refuses on its own
 *            (554 5.5.0 and close); this check catches the client that starts during the wait.
 *            A DATA without sender or recipients (the core's 503) is not delayed.
 *
 * Not checked (qpsmtpd's is_immune): relay clients (list `relay` before this plugin), hosts with
 * the connection note `whitelisthost`, senders with the transaction note `whitelistsender`; at
 * CONNECT also clients whose connection note `karma_history` is above 5.
 *
 * Arguments, in pairs:
 *   wait N             seconds to wait (default 1; fractions allowed). The connection note
 *                      `earlytalker_wait` (seconds), set by an earlier plugin, overrides it.
 *                      Keep it short: some MTAs give up on a greeting after 30 s, and the
 *                      hook call is limited by plugin_timeout (default 30 s) like any other.
 *   check-at CONNECT|DATA   when to check; may be given twice for both (default CONNECT).
 *   defer-reject 0|1   at CONNECT, note the early talker and refuse its MAIL commands rather than
 *                      the connection.
 *   reject 0|1|naughty 1 (default): refuse; 0: only log and note; naughty: store the refusal in
 *                      the connection note `naughty` (`(earlytalker) <message>`) for the naughty
 *                      plugin and go on.
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm; with `defer-reject` given
 *                      and no reject_type, temp (what qpsmtpd does).
 *   action deny|denysoft|log   qpsmtpd's old form: deny* means reject 1, anything else reject 0;
 *                      with defer-reject, denysoft (or no action) means temp, others perm.
 *   loglevel N         the usual log level adjustment.
 * Bad arguments (odd count, a wait that is no number, an unknown check-at or reject_type) stop
 * the plugin from loading; qpsmtpd logged them and ran without the check.
 *
 * Connection notes written: `earlytalker` (true for an early talker; false for a client that
 * waited and for one not checked, being immune; once true it stays true), `karma` (-1 per
 * refusal, as qpsmtpd's adjust_karma), and `naughty`/`naughty_reject_type` with `reject naughty`.
 * Config files: none. Hooks: connect (check-at CONNECT), data (check-at DATA), mail (defer-reject).
 * Log (LOGINFO): `pass, not spontaneous`, `fail, ...`, `skip, ...`.
 */
import { Plugin, DECLINED, LOGINFO, LOGWARN, getReject, isImmune } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const KNOWN = new Set(['wait', 'check-at', 'defer-reject', 'reject', 'reject_type', 'action', 'loglevel']);
const REJECT_TYPES = /^(perm|hard|temp|soft|disconnect|temp_disconnect)$/i;
/** Perl's false, and the usual words for "no". */
const OFF = /^(0|no|false|off)?$/i;

type Phase = 'connect' | 'data' | 'mail';

const REPLY: Record<Phase, { smtp: string; log: string }> = {
  connect: { smtp: 'Connecting host started transmitting before SMTP greeting', log: 'remote started talking before we said hello' },
  mail: { smtp: 'Connecting host started transmitting before SMTP greeting', log: 'remote started talking before we said hello' },
  data: { smtp: 'Client started sending the message before the 354 reply', log: 'remote started sending the message before we said go ahead' },
};

export default class EarlyTalker extends Plugin {
  private waitSeconds = 1;
  private deferReject = false;
  private reject: string | undefined;
  private rejectType = 'perm';

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) {
      throw new Error(`earlytalker: unrecognized/mismatched arguments "${args.join(' ')}": expected pairs such as "wait 1"`);
    }
    const options = new Map<string, string>();
    const checkAt = new Set<string>();
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!.toLowerCase();
      const value = args[i + 1]!;
      if (!KNOWN.has(key)) this.log(LOGWARN, `ignoring unknown argument "${args[i]} ${value}"`);
      if (key === 'check-at') {
        const at = value.toUpperCase();
        if (at !== 'CONNECT' && at !== 'DATA') throw new Error(`earlytalker: check-at "${value}": expected CONNECT or DATA`);
        checkAt.add(at);
      } else {
        options.set(key, value);
      }
    }
    if (checkAt.size === 0) checkAt.add('CONNECT');

    const wait = options.get('wait');
    if (wait !== undefined) {
      const seconds = Number(wait);
      if (wait.trim() === '' || !Number.isFinite(seconds) || seconds < 0) throw new Error(`earlytalker: wait "${wait}" is no number of seconds`);
      this.waitSeconds = seconds;
    }

    const action = options.get('action');
    this.reject = options.get('reject') ?? (action === undefined ? undefined : /^deny/i.test(action) ? '1' : '0');

    const defer = options.get('defer-reject');
    this.deferReject = defer !== undefined && !OFF.test(defer.trim());
    const type = options.get('reject_type');
    if (type !== undefined) {
      if (!REJECT_TYPES.test(type)) throw new Error(`earlytalker: reject_type "${type}": expected perm, temp, disconnect or temp_disconnect`);
      this.rejectType = type;
    } else if (defer !== undefined) {
      // qpsmtpd: with defer-reject given and no reject_type, the (old) action decides, denysoft
      // being the old default; its numeric comparison made that temp in every case.
      this.rejectType = action === undefined || /^denysoft$/i.test(action) ? 'temp' : 'perm';
    }

    if (checkAt.has('CONNECT')) this.registerHook('connect', 'connectHandler');
    if (checkAt.has('DATA')) this.registerHook('data', 'dataHandler');
    if (this.deferReject) this.registerHook('mail', 'mailHandler');
  }

  async connectHandler(_tx: Transaction): Promise<HookResult> {
    if (isImmune(this)) return this.skip();
    const karma = Number(this.connection.notes['karma_history']);
    if (karma > 5) {
      this.log(LOGINFO, `skip, karma ${karma}`);
      return this.skip();
    }
    if (!(await this.qp.waitForInput(this.waitMs()))) return this.pass();
    if (!this.deferReject) return this.deny('connect');
    this.connection.notes['earlytalker'] = true;
    this.adjustKarma(-1);
    this.log(LOGINFO, `fail, deferred to MAIL, ${REPLY.connect.log}`);
    return DECLINED;
  }

  async dataHandler(tx: Transaction): Promise<HookResult> {
    // Without sender or recipients the core answers 503 and reads no message: nothing to watch.
    if (tx.sender === undefined || tx.recipients.length === 0) return DECLINED;
    if (isImmune(this)) return this.skip();
    if (!(await this.qp.waitForInput(this.waitMs()))) return this.pass();
    return this.deny('data');
  }

  mailHandler(_tx: Transaction): HookResult {
    if (this.connection.notes['earlytalker'] !== true) return DECLINED;
    // A client that became a relay client (AUTH) or a whitelisted sender since: let it through.
    if (isImmune(this)) return DECLINED;
    return this.deny('mail');
  }

  /** How long to wait, in milliseconds: the note `earlytalker_wait` (seconds) or `wait`. */
  private waitMs(): number {
    const noted = Number(this.connection.notes['earlytalker_wait']);
    const seconds = Number.isFinite(noted) && noted > 0 ? noted : this.waitSeconds;
    return Math.round(seconds * 1000);
  }

  private pass(): HookResult {
    this.log(LOGINFO, 'pass, not spontaneous');
    return this.skip();
  }

  /** Not (or not yet) an early talker: note false, unless an earlier check said true. */
  private skip(): HookResult {
    if (this.connection.notes['earlytalker'] !== true) this.connection.notes['earlytalker'] = false;
    return DECLINED;
  }

  private deny(phase: Phase): HookResult {
    this.connection.notes['earlytalker'] = true;
    this.adjustKarma(-1);
    return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message: REPLY[phase].smtp, logMessage: REPLY[phase].log });
  }

  /** qpsmtpd's adjust_karma: the connection note `karma`, for the karma plugin. */
  private adjustKarma(value: number): void {
    const karma = (Number(this.connection.notes['karma']) || 0) + value;
    this.connection.notes['karma'] = karma;
    this.log(LOGINFO, `karma ${value} (${karma})`);
  }
}
