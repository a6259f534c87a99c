/**
 * One milter conversation, as the MTA side holds it: option negotiation, then the stages of an
 * SMTP session in order (connect, HELO, MAIL, RCPT, DATA, the message, ABORT between messages,
 * QUIT), each with the macros the milter asked for or the ones configured.
 *
 * It keeps the milter's state so that the caller can simply call every stage: a stage the
 * milter does not want (SMFIP_NO*) is not sent; a stage it will not answer (SMFIP_NR_*) is sent
 * without waiting; after the milter accepted the connection, or the message, nothing more is sent
 * for it; a message it discarded stays discarded. A stage that was not asked returns `continue`.
 *
 * A reply that the stage does not allow (a modification before the end of the message, `skip`
 * that was not negotiated, an action the milter did not ask for in the negotiation) breaks the
 * link: MilterError, as for a milter that is silent or speaks garbage.
 */
import type { MilterCommand } from './commands.ts';
import { MilterError, type Deadline, type MilterLink } from './link.ts';
import { Action, ALL_ACTIONS, Cmd, MacroStage, MILTER_CHUNK_SIZE, MILTER_MIN_VERSION, MILTER_VERSION, OFFERED_PROTOCOL, Proto, type FamilyCode, type MacroStageIndex } from './protocol.ts';
import type { MilterModification, MilterResponse, MilterVerdict } from './responses.ts';

/** The stages macros are sent for, by their names in our configuration. */
export const MACRO_STAGES = {
  connect: MacroStage.CONNECT,
  helo: MacroStage.HELO,
  mail: MacroStage.ENVFROM,
  rcpt: MacroStage.ENVRCPT,
  data: MacroStage.DATA,
  eoh: MacroStage.EOH,
  eom: MacroStage.EOM,
} as const;
export type MacroStageName = keyof typeof MACRO_STAGES;
export type MacroLists = Readonly<Partial<Record<MacroStageName, readonly string[]>>>;

/** A macro's value by its name (with or without braces), or undefined when it has none now. */
export type MacroSource = (name: string) => string | undefined;

export interface MilterSessionOptions {
  /** Wait for each reply outside the message (connect to DATA, the negotiation). */
  readonly commandTimeoutMs: number;
  /** Wait for each reply to the message (headers, body, end of message); progress restarts it. */
  readonly eomTimeoutMs: number;
  /** The macros to send per stage where the milter asked for no list of its own. */
  readonly macros: MacroLists;
}

/** What the negotiation agreed. */
export interface Negotiated {
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
  /** The macro lists the milter asked for, by stage. */
  readonly macros: ReadonlyMap<number, readonly string[]>;
}

export interface ConnectInfo {
  readonly hostname: string;
  readonly family: FamilyCode;
  readonly port: number;
  readonly address: string;
}

/** A header field as it is sent: the caller decides about the leading space (see `leadingSpace`). */
export interface HeaderField {
  readonly name: string;
  readonly value: string | Buffer;
}

/** Called with each modification of the end of the message, in order; awaited before the next. */
export type ModificationSink = (mod: MilterModification) => void | Promise<void>;

const CONTINUE: MilterVerdict = { type: 'continue' };
const DISCARD: MilterVerdict = { type: 'discard' };

/** The action flag each modification needs. */
const NEEDS: Readonly<Record<MilterModification['type'], number>> = {
  addheader: Action.ADDHDRS,
  insheader: Action.ADDHDRS,
  chgheader: Action.CHGHDRS,
  addrcpt: Action.ADDRCPT,
  delrcpt: Action.DELRCPT,
  chgfrom: Action.CHGFROM,
  replbody: Action.CHGBODY,
  quarantine: Action.QUARANTINE,
};

/** The verdicts each kind of stage allows (progress is allowed everywhere). */
type StageKind = 'connection' | 'envelope' | 'body' | 'eom';
const ALLOWED: Readonly<Record<StageKind, ReadonlySet<string>>> = {
  connection: new Set(['accept', 'continue', 'reject', 'tempfail', 'replycode', 'conn_fail', 'shutdown']),
  envelope: new Set(['accept', 'continue', 'reject', 'tempfail', 'replycode', 'conn_fail', 'shutdown', 'discard']),
  body: new Set(['accept', 'continue', 'reject', 'tempfail', 'replycode', 'conn_fail', 'shutdown', 'discard', 'skip']),
  eom: new Set(['accept', 'continue', 'reject', 'tempfail', 'replycode', 'conn_fail', 'shutdown', 'discard']),
};

/** Where the current message stands with the milter. */
type MessageState = 'idle' | 'open' | 'done';

export class MilterSession {
  private connectionAccepted = false;
  private message: MessageState = 'idle';
  private discarded = false;

  private constructor(
    private readonly link: MilterLink,
    private readonly options: MilterSessionOptions,
    readonly negotiated: Negotiated,
  ) {}

  /** Offer version 6 with every action and protocol flag we support; check what the milter wants. */
  static async negotiate(link: MilterLink, options: MilterSessionOptions, signal: AbortSignal): Promise<MilterSession> {
    const deadline = { timeoutMs: options.commandTimeoutMs, signal };
    await link.send([{ type: 'optneg', version: MILTER_VERSION, actions: ALL_ACTIONS, protocol: OFFERED_PROTOCOL }], deadline);
    const reply = await link.next(deadline);
    if (reply.type !== 'optneg') throw broken(link, `answered the negotiation with "${reply.type}"`);
    if (reply.version < MILTER_MIN_VERSION || reply.version > MILTER_VERSION) throw broken(link, `speaks milter protocol version ${reply.version} (we speak ${MILTER_MIN_VERSION} to ${MILTER_VERSION})`);
    const extraActions = reply.actions & ~ALL_ACTIONS;
    if (extraActions !== 0) throw broken(link, `asked for actions we do not offer (0x${extraActions.toString(16)})`);
    const extraProtocol = reply.protocol & ~OFFERED_PROTOCOL;
    if (extraProtocol !== 0) throw broken(link, `asked for protocol steps we do not offer (0x${extraProtocol.toString(16)})`);
    return new MilterSession(link, options, { version: reply.version, actions: reply.actions, protocol: reply.protocol, macros: reply.macros });
  }

  /** True when header values go with their leading white space (SMFIP_HDR_LEADSPC). */
  get leadingSpace(): boolean {
    return this.has(Proto.HDR_LEADSPC);
  }

  /** True when the milter has accepted the whole connection: nothing more goes to it but QUIT. */
  get accepted(): boolean {
    return this.connectionAccepted;
  }

  private has(flag: number): boolean {
    return (this.negotiated.protocol & flag) !== 0;
  }

  async connect(info: ConnectInfo, macros: MacroSource, signal: AbortSignal): Promise<MilterVerdict> {
    const verdict = await this.stage('connect', { type: 'connect', ...info }, Proto.NOCONNECT, Proto.NR_CONN, macros, 'connection', signal);
    if (verdict.type === 'accept') this.connectionAccepted = true;
    return verdict;
  }

  async helo(host: string, macros: MacroSource, signal: AbortSignal): Promise<MilterVerdict> {
    if (this.connectionAccepted) return CONTINUE;
    const verdict = await this.stage('helo', { type: 'helo', host }, Proto.NOHELO, Proto.NR_HELO, macros, 'connection', signal);
    if (verdict.type === 'accept') this.connectionAccepted = true;
    return verdict;
  }

  /** MAIL: `args` is the sender in angle brackets, then the ESMTP parameters (`SIZE=1000`). */
  async mail(args: readonly string[], macros: MacroSource, signal: AbortSignal): Promise<MilterVerdict> {
    if (this.connectionAccepted) return CONTINUE;
    if (this.message !== 'idle') await this.abort(signal);
    this.message = 'open';
    this.discarded = false;
    return this.ended(await this.stage('mail', { type: 'mail', args }, Proto.NOMAIL, Proto.NR_MAIL, macros, 'envelope', signal), true);
  }

  /** RCPT: a rejection refuses this recipient only; the message goes on. */
  async rcpt(args: readonly string[], macros: MacroSource, signal: AbortSignal): Promise<MilterVerdict> {
    if (this.message !== 'open') return this.discarded ? DISCARD : CONTINUE;
    return this.ended(await this.stage('rcpt', { type: 'rcpt', args }, Proto.NORCPT, Proto.NR_RCPT, macros, 'envelope', signal), false);
  }

  async data(macros: MacroSource, signal: AbortSignal): Promise<MilterVerdict> {
    if (this.message !== 'open') return this.discarded ? DISCARD : CONTINUE;
    return this.ended(await this.stage('data', { type: 'data' }, Proto.NODATA, Proto.NR_DATA, macros, 'envelope', signal), true);
  }

  /**
   * The message: each header field, EOH, the body in chunks of at most 65535 bytes (read from
   * `body` as it is needed, never held whole), the end of the message. Modifications go to `sink`
   * as they arrive; the verdict that ends the message is returned (a discard from an earlier
   * stage too). The caller applies the modifications only when the verdict lets the message go on.
   */
  async endOfMessage(headers: Iterable<HeaderField>, body: AsyncIterable<Buffer> | Iterable<Buffer>, macros: MacroSource, signal: AbortSignal, sink: ModificationSink): Promise<MilterVerdict> {
    if (this.message !== 'open') return this.discarded ? DISCARD : CONTINUE;
    const deadline = { timeoutMs: this.options.eomTimeoutMs, signal };
    if (!this.has(Proto.NOHDRS)) {
      for (const field of headers) {
        const verdict = await this.ask([{ type: 'header', name: field.name, value: field.value }], !this.has(Proto.NR_HDR), 'envelope', deadline);
        if (verdict.type !== 'continue') return this.ended(verdict, true);
      }
    }
    if (!this.has(Proto.NOEOH)) {
      const verdict = await this.ask([...this.macroCommand('eoh', macros), { type: 'eoh' }], !this.has(Proto.NR_EOH), 'envelope', deadline);
      if (verdict.type !== 'continue') return this.ended(verdict, true);
    }
    if (!this.has(Proto.NOBODY)) {
      const verdict = await this.sendBody(body, deadline);
      if (verdict.type !== 'continue' && verdict.type !== 'skip') return this.ended(verdict, true);
    }
    await this.link.send([...this.macroCommand('eom', macros), { type: 'eob', chunk: Buffer.alloc(0) }], deadline);
    for (;;) {
      const reply = await this.reply(deadline, 'eom');
      if (isVerdict(reply)) {
        // The milter's message is over whatever it said: the next one starts with MAIL.
        this.message = 'idle';
        return reply;
      }
      if (reply.type === 'optneg') throw broken(this.link, 'sent a negotiation reply at the end of the message');
      if ((this.negotiated.actions & NEEDS[reply.type]) === 0) throw broken(this.link, `sent "${reply.type}" without having asked for that action`);
      await sink(reply);
    }
  }

  /** Drop the current message at the milter (SMFIC_ABORT, no reply), if one is under way. */
  async abort(signal: AbortSignal): Promise<void> {
    if (this.message === 'idle') return;
    this.message = 'idle';
    this.discarded = false;
    if (this.connectionAccepted) return;
    await this.link.send([{ type: 'abort' }], { timeoutMs: this.options.commandTimeoutMs, signal });
  }

  /** End the conversation (SMFIC_QUIT, no reply) and close the connection. */
  async quit(signal: AbortSignal): Promise<void> {
    try {
      if (this.link.error === undefined) await this.link.send([{ type: 'quit' }], { timeoutMs: this.options.commandTimeoutMs, signal });
    } finally {
      this.link.close();
    }
  }

  private async sendBody(body: AsyncIterable<Buffer> | Iterable<Buffer>, deadline: Deadline): Promise<MilterVerdict> {
    const answered = !this.has(Proto.NR_BODY);
    for await (const piece of body) {
      for (let at = 0; at < piece.length; at += MILTER_CHUNK_SIZE) {
        const chunk = piece.subarray(at, at + MILTER_CHUNK_SIZE);
        const verdict = await this.ask([{ type: 'body', chunk }], answered, 'body', deadline);
        if (verdict.type !== 'continue') return verdict;
      }
    }
    return CONTINUE;
  }

  /** After an envelope stage's verdict: does the milter's message go on? */
  private ended(verdict: MilterVerdict, rejectionEnds: boolean): MilterVerdict {
    switch (verdict.type) {
      case 'accept':
        this.message = 'done';
        break;
      case 'discard':
        this.message = 'done';
        this.discarded = true;
        break;
      case 'reject':
      case 'tempfail':
      case 'replycode':
      case 'conn_fail':
      case 'shutdown':
        if (rejectionEnds) this.message = 'done';
        break;
    }
    return verdict;
  }

  /** One stage before the message: its macros and command, and the verdict when one is due. */
  private async stage(name: MacroStageName, command: MilterCommand, skipFlag: number, noReplyFlag: number, macros: MacroSource, kind: StageKind, signal: AbortSignal): Promise<MilterVerdict> {
    if (this.has(skipFlag)) return CONTINUE;
    return this.ask([...this.macroCommand(name, macros), command], !this.has(noReplyFlag), kind, { timeoutMs: this.options.commandTimeoutMs, signal });
  }

  private async ask(commands: readonly MilterCommand[], answered: boolean, kind: StageKind, deadline: Deadline): Promise<MilterVerdict> {
    await this.link.send(commands, deadline);
    if (!answered) return CONTINUE;
    const reply = await this.reply(deadline, kind);
    if (!isVerdict(reply)) throw broken(this.link, `sent "${reply.type}" before the end of the message`);
    return reply;
  }

  /** The next reply other than progress, checked against what the stage allows. */
  private async reply(deadline: Deadline, kind: StageKind): Promise<Exclude<MilterResponse, { type: 'progress' }>> {
    for (;;) {
      const reply = await this.link.next(deadline);
      if (reply.type === 'progress') continue;
      if (isVerdict(reply)) {
        if (!ALLOWED[kind].has(reply.type)) throw broken(this.link, `answered "${reply.type}", which is not allowed there`);
        if (reply.type === 'skip' && !this.has(Proto.SKIP)) throw broken(this.link, 'answered "skip" without having negotiated it');
      }
      return reply;
    }
  }

  /** SMFIC_MACRO for a stage: the milter's list for it, else ours; names without a value left out. */
  private macroCommand(stage: MacroStageName, source: MacroSource): MilterCommand[] {
    const index: MacroStageIndex = MACRO_STAGES[stage];
    const names = this.negotiated.macros.get(index) ?? this.options.macros[stage] ?? [];
    const macros: [string, string][] = [];
    for (const name of names) {
      const value = source(name);
      if (value !== undefined) macros.push([name, value]);
    }
    return macros.length === 0 ? [] : [{ type: 'macro', command: STAGE_CODE[stage], macros }];
  }
}

const STAGE_CODE: Readonly<Record<MacroStageName, string>> = {
  connect: Cmd.CONNECT,
  helo: Cmd.HELO,
  mail: Cmd.MAIL,
  rcpt: Cmd.RCPT,
  data: Cmd.DATA,
  eoh: Cmd.EOH,
  eom: Cmd.BODYEOB,
};

const VERDICTS = new Set(['accept', 'continue', 'discard', 'reject', 'tempfail', 'skip', 'conn_fail', 'shutdown', 'replycode']);
function isVerdict(r: MilterResponse): r is MilterVerdict {
  return VERDICTS.has(r.type);
}

/** Break the link over a protocol violation, and return the error to throw. */
function broken(link: MilterLink, what: string): MilterError {
  link.fail(`the milter ${what}`);
  return link.error!;
}
