/**
 * milter: ask a Sendmail milter (a mail filter speaking libmilter's protocol: OpenDKIM,
 * OpenDMARC, spamass-milter, clamav-milter, milter-greylist, rspamd's proxy ...) about each
 * session, as Sendmail and Postfix do. Protocol version 6, with option negotiation: the milter
 * may skip stages, answer none for some (the NR_* flags), skip the rest of a body, and ask for
 * its own macros per stage. (qpsmtpd's `milter` plugin, which spoke version 2 only.)
 *
 *   milter SOCKET [connect_timeout S] [command_timeout S] [eom_timeout S]
 *                 [default_action tempfail|accept|reject] [daemon_name NAME]
 *                 [connect_macros LIST] [helo_macros LIST] [mail_macros LIST] [rcpt_macros LIST]
 *                 [data_macros LIST] [eoh_macros LIST] [eom_macros LIST]
 *
 * SOCKET           inet:PORT@HOST, inet:HOST:PORT, unix:PATH or local:PATH (Postfix's
 *                  smtpd_milters forms). A relative PATH is relative to the folder that holds
 *                  the config directory.
 * connect_timeout  seconds to wait for the connection (default 10).
 * command_timeout  seconds to wait for each reply from connect to DATA (default 10).
 * eom_timeout      seconds to wait for each reply to the message: each header, body chunk, and
 *                  the end of the message (default 25); a `progress` reply starts the wait anew.
 *                  The core's `plugin_timeout` (default 30 s) bounds every hook call as well:
 *                  for a slow content filter raise it for this plugin (`plugin_timeout` line
 *                  `milter 300`) along with eom_timeout.
 * default_action   what a milter that cannot be reached, is too slow, or breaks the protocol
 *                  means (Postfix's milter_default_action): tempfail (default; 4xx with
 *                  `4.7.1 Service unavailable - try again later` on this and every later command
 *                  of the session), reject (5xx `5.7.1 Command rejected`, likewise), or accept
 *                  (go on as if there were no milter, for the rest of the session). Always logged
 *                  (LOGERROR); never a crash, never a hang past the time limits.
 * daemon_name      the `{daemon_name}` macro (default `qpsmtpd`); OpenDKIM, for one, can choose
 *                  signing or verifying by it.
 * *_macros         the macros sent before that stage, comma-separated (`-`: none), used when the
 *                  milter asks for no list of its own in the negotiation. Defaults:
 *                    connect  j,{daemon_name},{daemon_addr},{daemon_port},v,_,{client_addr},
 *                             {client_port},{client_name},{client_ptr}
 *                    helo     {tls_version},{cipher}
 *                    mail     i,{auth_type},{auth_authen},{mail_addr},{mail_host}
 *                    rcpt     {rcpt_addr},{rcpt_host}
 *                    data     i          eoh  (none)          eom  i
 *                  `i` is the transaction id (our queue id); `j` is `me`; `_` is `name [ip]`;
 *                  {client_name} is the client's name or `[ip]`. A macro without a value at that
 *                  moment (no TLS, no AUTH) is not sent.
 *
 * The stages, on our hooks:
 *   connect      open the connection, negotiate, SMFIC_CONNECT (family 4 or 6, port, address)
 *   helo, ehlo   SMFIC_HELO (again after STARTTLS: the session starts over)
 *   mail         SMFIC_MAIL with the sender and the ESMTP parameters (`SIZE=1000`)
 *   rcpt         SMFIC_RCPT per recipient; a rejection refuses that recipient only. List this
 *                plugin before the plugins that accept recipients (rcpt_ok ...): the first OK ends
 *                the hook. The milter sees the recipients no earlier plugin refused.
 *   data         SMFIC_DATA
 *   data_post    the header block as it will be queued (our Received on top), one SMFIC_HEADER
 *                per field (leading white space dropped unless the milter asked for
 *                HDR_LEADSPC, folds as LF), SMFIC_EOH, the body in chunks of at most 65535 bytes
 *                streamed from the stored message (memory or spool file, never a second copy),
 *                SMFIC_BODYEOB; then the verdict and the changes
 *   reset_transaction  SMFIC_ABORT when the milter saw a message that did not reach its end
 *   disconnect   SMFIC_QUIT, and the connection is closed
 * Unknown commands are not shown to the milter (SMFIC_UNKNOWN is never sent).
 *
 * What the milter's answers do:
 *   continue      the next plugin decides (DECLINED)
 *   accept        DECLINED too; the milter hears nothing more of this message (of the whole
 *                 connection, when said at connect or HELO) except ABORT and QUIT
 *   reject        DENY `5.7.1 Command rejected`; tempfail: DENYSOFT `4.7.1 Service unavailable -
 *                 try again later` (the reply codes are the hook's, from the reply table)
 *   replycode     DENY (5xx) or DENYSOFT (4xx) with the milter's own text and enhanced code;
 *                 a 421 is DENYSOFT_DISCONNECT
 *   discard       the message is accepted and dropped: after the final dot the client gets
 *                 `250 2.0.0 Queued` and nothing is queued (said at MAIL, RCPT or DATA it takes
 *                 effect there too; the milter hears nothing more of the message)
 *   conn_fail, shutdown  DENYSOFT_DISCONNECT (421 and close where the hook allows)
 *   progress      the wait starts anew; skip: no more body chunks, on to the end of the message
 * The changes, at the end of the message, carried out only when the verdict lets it go on
 * (src/milter/changes.ts has the details): add, insert (at an index counting every field),
 * change and delete header fields, through tx.header; replace the body (a new body store,
 * swapped in with tx.replaceBody: the queue plugin streams the new body); add and delete
 * recipients; change the sender (SMFIR_CHGFROM, its ESMTP arguments replace the MAIL ones).
 * A milter that deletes every recipient has the message dropped as for discard (logged).
 * Quarantine: tx.notes.quarantine = { reason, by } and an `X-Milter-Quarantine: REASON (by
 * milter)` field on top. No bundled queue plugin holds mail: they deliver a quarantined message
 * as usual, and the field lets the mailbox side file it (a Sieve rule); a site that wants to
 * hold it lists a queue plugin of its own, or a `queue_pre` plugin, that looks at the note.
 *
 * Hooks: connect, helo, ehlo, mail, rcpt, data, data_post, reset_transaction, disconnect.
 * Log: each verdict other than continue and each change (LOGINFO), failures (LOGERROR).
 * Config files: me (the `j` macro).
 *
 * Differences from qpsmtpd's milter plugin: protocol version 6 instead of 2 (negotiation of
 * stages, no-reply stages, skip, macro lists, the version 6 actions CHGFROM, INSHEADER and
 * ADDRCPT_PAR); Postfix's socket forms; the changes are carried out (qpsmtpd only added and
 * changed headers); time limits and a default action; the body is streamed, not read whole.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import {
  withDeadline,
  Plugin,
  DECLINED,
  DENY,
  DENYSOFT,
  DENYSOFT_DISCONNECT,
  DONE,
  LOGDEBUG,
  LOGERROR,
  LOGINFO,
  MILTER_DEFAULT_MACROS,
  MILTER_KNOWN_MACROS,
  MilterChanges,
  MilterError,
  MilterLink,
  MilterSession,
  connectWithin,
  describeMilterTarget,
  ipFamily,
  milterMacroName,
  milterMacroSource,
  normalizeIp,
  parseMilterSocket,
} from 'qpsmtpd';
import type {
  Address,
  Connection,
  EsmtpParams,
  HookResult,
  MilterConnectInfo,
  MilterHeaderField,
  MilterMacroFacts,
  MilterMacroLists,
  MilterMacroStageName,
  MilterTarget,
  MilterVerdict,
  PluginHost,
  Transaction,
} from 'qpsmtpd';

type DefaultAction = 'tempfail' | 'accept' | 'reject';
type Stage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'data_post';

const REJECTED = '5.7.1 Command rejected';
const TEMPFAILED = '4.7.1 Service unavailable - try again later';
const SHUT_DOWN = '4.7.0 Mail filter closed the connection, try again later';
const DISCARDED = '2.0.0 Queued';
const QUARANTINE_HEADER = 'X-Milter-Quarantine';
const MACRO_ARGS: Readonly<Record<string, MilterMacroStageName>> = {
  connect_macros: 'connect',
  helo_macros: 'helo',
  mail_macros: 'mail',
  rcpt_macros: 'rcpt',
  data_macros: 'data',
  eoh_macros: 'eoh',
  eom_macros: 'eom',
};

/** The milter's part of one SMTP session. */
interface SessionState {
  milter: MilterSession | undefined;
  /** The milter failed: the default action holds for the rest of the session. */
  failed: boolean;
}

export default class Milter extends Plugin {
  private target: MilterTarget = { path: '' };
  private where = '';
  private connectTimeoutMs = 10_000;
  private commandTimeoutMs = 10_000;
  private eomTimeoutMs = 25_000;
  private defaultAction: DefaultAction = 'tempfail';
  private daemonName = 'qpsmtpd';
  private macros: MilterMacroLists = MILTER_DEFAULT_MACROS;
  private readonly sessions = new WeakMap<Connection, SessionState>();

  register(qp: PluginHost, ...args: string[]): void {
    const [socket, ...rest] = args;
    if (socket === undefined || socket === '') throw new Error('no milter socket: milter inet:PORT@HOST | inet:HOST:PORT | unix:PATH [options]');
    const target = parseMilterSocket(socket);
    if ('error' in target) throw new Error(target.error);
    this.target = 'path' in target ? { path: resolve(dirname(qp.configDir), target.path) } : target;
    this.where = describeMilterTarget(this.target);
    if (rest.length % 2 !== 0) throw new Error(`"${rest[rest.length - 1]}" needs a value`);
    const macros: Record<string, readonly string[]> = { ...MILTER_DEFAULT_MACROS };
    for (let i = 0; i < rest.length; i += 2) {
      const key = rest[i]!.toLowerCase();
      const value = rest[i + 1]!;
      const seconds = (): number => {
        if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) throw new Error(`${key} needs a number of seconds, not "${value}"`);
        return Number(value) * 1000;
      };
      if (key === 'loglevel') continue;
      else if (key === 'connect_timeout') this.connectTimeoutMs = seconds();
      else if (key === 'command_timeout') this.commandTimeoutMs = seconds();
      else if (key === 'eom_timeout') this.eomTimeoutMs = seconds();
      else if (key === 'daemon_name') this.daemonName = value;
      else if (key === 'default_action') {
        if (value !== 'tempfail' && value !== 'accept' && value !== 'reject') throw new Error(`default_action must be tempfail, accept or reject, not "${value}"`);
        this.defaultAction = value;
      } else if (key in MACRO_ARGS) {
        const names = value === '-' ? [] : value.split(',').filter((n) => n !== '');
        const unknown = names.filter((n) => !MILTER_KNOWN_MACROS.includes(milterMacroName(n)));
        if (unknown.length > 0) throw new Error(`${key}: no value is known for ${unknown.join(', ')} (known: ${MILTER_KNOWN_MACROS.join(' ')})`);
        macros[MACRO_ARGS[key]!] = names;
      } else {
        throw new Error(`unknown argument "${key}" (known: connect_timeout, command_timeout, eom_timeout, default_action, daemon_name, ${Object.keys(MACRO_ARGS).join(', ')})`);
      }
    }
    this.macros = macros;
  }

  // ---- the stages ------------------------------------------------------------------------------

  async hook_connect(): Promise<HookResult> {
    const state: SessionState = { milter: undefined, failed: false };
    this.sessions.set(this.connection, state);
    try {
      const link = new MilterLink(await this.open(), `the milter ${this.where}`);
      state.milter = await MilterSession.negotiate(link, { commandTimeoutMs: this.commandTimeoutMs, eomTimeoutMs: this.eomTimeoutMs, macros: this.macros }, this.signal);
      const n = state.milter.negotiated;
      this.log(LOGDEBUG, `negotiated version ${n.version}, actions 0x${n.actions.toString(16)}, protocol 0x${n.protocol.toString(16)}`);
      return this.verdict('connect', await state.milter.connect(this.connectInfo(), this.macroSource(), this.signal));
    } catch (err) {
      return this.failed(state, 'connect', err);
    }
  }

  hook_helo(_tx: Transaction, host: string): Promise<HookResult> {
    return this.step('helo', (m) => m.helo(host, this.macroSource(), this.signal));
  }

  hook_ehlo(_tx: Transaction, host: string): Promise<HookResult> {
    return this.step('helo', (m) => m.helo(host, this.macroSource(), this.signal));
  }

  hook_mail(tx: Transaction, sender: Address, params: EsmtpParams): Promise<HookResult> {
    const macros = this.macroSource({ transactionId: tx.id, sender });
    return this.step('mail', (m) => m.mail([String(sender), ...esmtpArgs(params)], macros, this.signal));
  }

  hook_rcpt(tx: Transaction, recipient: Address, params: EsmtpParams): Promise<HookResult> {
    const macros = this.macroSource({ transactionId: tx.id, ...(tx.sender ? { sender: tx.sender } : {}), recipient });
    return this.step('rcpt', (m) => m.rcpt([String(recipient), ...esmtpArgs(params)], macros, this.signal));
  }

  hook_data(tx: Transaction): Promise<HookResult> | HookResult {
    // No MAIL or no recipient: the core answers 503; the milter has nothing to hear.
    if (tx.sender === undefined || tx.recipients.length === 0) return DECLINED;
    return this.step('data', (m) => m.data(this.txMacros(tx), this.signal));
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    const state = this.state();
    if (state === undefined) return DECLINED;
    if (state.failed || state.milter === undefined) return this.fallback(state);
    const milter = state.milter;
    const changes = new MilterChanges(tx);
    const body = tx.hasBody ? tx.body.stream() : undefined;
    try {
      const verdict = await milter.endOfMessage(this.headerFields(tx, milter.leadingSpace), body ?? [], this.txMacros(tx), this.signal, (mod) => changes.take(mod));
      if (verdict.type !== 'continue' && verdict.type !== 'accept') {
        await changes.drop();
        return this.verdict('data_post', verdict);
      }
      for (const line of await changes.apply({ by: this.name, quarantineHeader: QUARANTINE_HEADER })) this.log(LOGINFO, line);
      if (tx.recipients.length === 0) {
        this.log(LOGINFO, 'the milter removed every recipient: message dropped');
        return this.discard();
      }
      if (verdict.type === 'accept') this.log(LOGINFO, 'data_post: accept');
      return DECLINED;
    } catch (err) {
      await changes.drop();
      return this.failed(state, 'data_post', err);
    } finally {
      body?.destroy();
    }
  }

  async hook_reset_transaction(): Promise<HookResult> {
    const state = this.state();
    if (state?.milter === undefined || state.failed) return DECLINED;
    try {
      await state.milter.abort(this.signal);
    } catch (err) {
      this.failed(state, 'reset_transaction', err);
    }
    return DECLINED;
  }

  async hook_disconnect(): Promise<HookResult> {
    const state = this.state();
    this.sessions.delete(this.connection);
    if (state?.milter === undefined) return DECLINED;
    try {
      await state.milter.quit(this.signal);
    } catch (err) {
      this.log(LOGDEBUG, `QUIT: ${errorText(err)}`);
    }
    return DECLINED;
  }

  // ---- results -----------------------------------------------------------------------------------

  /** Run one stage with the session's milter, or give what a failed or absent milter means. */
  private async step(stage: Stage, ask: (milter: MilterSession) => Promise<MilterVerdict>): Promise<HookResult> {
    const state = this.state();
    if (state === undefined) return DECLINED;
    if (state.failed || state.milter === undefined) return this.fallback(state);
    try {
      return this.verdict(stage, await ask(state.milter));
    } catch (err) {
      return this.failed(state, stage, err);
    }
  }

  private verdict(stage: Stage, verdict: MilterVerdict): HookResult {
    if (verdict.type !== 'continue') this.log(LOGINFO, `${stage}: ${verdict.type}${verdict.type === 'replycode' ? ` ${verdict.code} ${verdict.lines.join(' / ')}` : ''}`);
    switch (verdict.type) {
      case 'continue':
      case 'accept':
      case 'skip':
        return DECLINED;
      case 'discard':
        // Said before the end of the message: the message goes on, and is dropped at its end.
        return stage === 'data_post' ? this.discard() : DECLINED;
      case 'reject':
        return [DENY, REJECTED];
      case 'tempfail':
        return [DENYSOFT, TEMPFAILED];
      case 'replycode':
        if (verdict.code === 421) return [DENYSOFT_DISCONNECT, verdict.lines];
        return [verdict.code >= 500 ? DENY : DENYSOFT, verdict.lines];
      case 'conn_fail':
      case 'shutdown':
        return [DENYSOFT_DISCONNECT, SHUT_DOWN];
    }
  }

  /** Accept the message and keep nothing of it. */
  private discard(): HookResult {
    this.qp.respond(250, DISCARDED);
    return DONE;
  }

  /** The milter broke: log it, close it, and answer with the default action. */
  private failed(state: SessionState, stage: Stage | 'reset_transaction', err: unknown): HookResult {
    const reason = errorText(err);
    this.log(LOGERROR, `${stage}: ${reason}; default_action ${this.defaultAction}`);
    // A second at most to say goodbye; withDeadline stops the timer as soon as the milter has gone
    // (AbortSignal.timeout alone may be collected before it fires on Node 20).
    const milter = state.milter;
    if (milter !== undefined) withDeadline(1000, undefined, (signal) => milter.quit(signal)).catch(() => undefined);
    state.milter = undefined;
    state.failed = true;
    return this.fallback(state);
  }

  /** What the default action answers once the milter has failed in this session. */
  private fallback(state: SessionState): HookResult {
    if (!state.failed || this.defaultAction === 'accept') return DECLINED;
    return this.defaultAction === 'reject' ? [DENY, REJECTED] : [DENYSOFT, TEMPFAILED];
  }

  // ---- what the milter is told ---------------------------------------------------------------

  private state(): SessionState | undefined {
    return this.sessions.get(this.connection);
  }

  private async open(): Promise<Socket> {
    const target = this.target;
    try {
      return await connectWithin(() => ('path' in target ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port })), {
        timeoutMs: this.connectTimeoutMs,
        signal: this.signal,
        timeoutError: () => new MilterError(`no connection to ${this.where} within ${this.connectTimeoutMs / 1000} s`),
      });
    } catch (err) {
      if (err instanceof MilterError) throw err;
      throw new MilterError(`cannot connect to ${this.where}: ${errorText(err)}`);
    }
  }

  private connectInfo(): MilterConnectInfo {
    const c = this.connection;
    const ip = normalizeIp(c.remoteIp);
    const family = ip === undefined ? undefined : ipFamily(ip);
    if (ip === undefined || family === undefined) return { hostname: c.remoteHost, family: 'U', port: 0, address: '' };
    return { hostname: c.remoteHost, family: family === 4 ? '4' : '6', port: c.remotePort, address: ip };
  }

  private macroSource(more: Partial<Pick<MilterMacroFacts, 'transactionId' | 'sender' | 'recipient'>> = {}): (name: string) => string | undefined {
    return milterMacroSource({ me: this.qp.me, version: this.qp.version, daemonName: this.daemonName, connection: this.connection, ...more });
  }

  private txMacros(tx: Transaction): (name: string) => string | undefined {
    return this.macroSource({ transactionId: tx.id, ...(tx.sender ? { sender: tx.sender } : {}) });
  }

  /** The header fields as the milter gets them (see the header comment). */
  private headerFields(tx: Transaction, leadingSpace: boolean): MilterHeaderField[] {
    return tx.header.rawEntries().map(({ name, value, encoding }) => {
      const text = (leadingSpace ? value : value.replace(/^[ \t]+/, '')).replace(/\r\n/g, '\n');
      return { name, value: Buffer.from(text, encoding) };
    });
  }
}

/** ESMTP parameters as the milter gets them: `SIZE=1000`, `SMTPUTF8`. */
function esmtpArgs(params: EsmtpParams): string[] {
  return Object.entries(params).map(([key, value]) => (value === true ? key.toUpperCase() : `${key.toUpperCase()}=${value}`));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
