/**
 * One SMTP session: the state machine between a Conn and the hooks.
 *
 * It reads command lines, dispatches each to its command handler (session/commands/), runs the
 * hooks through the runner and answers through the reply table (responders.ts). It never touches a
 * socket (only the Conn interface) and never imports a plugin. Its safety nets: an idle timeout
 * (421), a graceful-stop wake-up (421), and a catch-all that answers 421 instead of crashing.
 * Replies are collected and written in one write per pipelined group of commands.
 */
import type { Code } from '../hooks/codes.ts';
import { OK } from '../hooks/codes.ts';
import { abortCall, beginCall, makeCallTarget } from '../hooks/call-target.ts';
import type { HookArgs, HookName, Message, SyncHookName } from '../hooks/hook-map.ts';
import type { PluginRecord } from '../hooks/registry.ts';
import { DECLINED_OUTCOME, type HookCallContext, type HookOutcome, type HookRunner } from '../hooks/runner.ts';
import { LOGCRIT, LOGDEBUG, LOGINFO, LOGWARN, type LogLevel } from '../log/levels.ts';
import { IpList } from '../net/ip.ts';
import { parseProxyHeader } from '../protocol/proxy-header.ts';
import { formatLogParts, type LogRecord } from '../log/logger.ts';
import type { Address } from '../protocol/address.ts';
import { LineReader, type CommandLine } from '../protocol/line-reader.ts';
import { formatReply, makeReply, type Reply } from '../protocol/reply.ts';
import { splitCommand } from '../protocol/command.ts';
import { COMMANDS, unrecognizedCommand } from './commands/index.ts';
import type { Conn } from './conn.ts';
import { Connection } from './connection.ts';
import { Input, STOPPING, TIMED_OUT, WAIT, type ReadResult } from './input.ts';
import { CORE, decide, type Decision, type ReplyingHook, type ReplyVars } from './responders.ts';
import type { PluginLogTarget, SessionApi } from './session-api.ts';
import { Transaction } from './transaction.ts';

/** Where a session's log lines go (the app routes them to the logging hook or stderr). */
export interface LogSink {
  /** True when some sink would write a line of this level. */
  enabled(level: LogLevel): boolean;
  write(record: LogRecord, context: HookCallContext | undefined): void;
}

export interface SessionDeps {
  readonly id: string;
  readonly conn: Conn;
  readonly runner: HookRunner;
  /** Config values from the config directory and the defaults (no hooks). */
  readonly configFiles: (name: string) => readonly string[];
  readonly logSink: LogSink;
  readonly version: string;
  readonly spoolDir: string;
  /** A unique spool file name. */
  readonly spoolName: () => string;
  /** Counts this process's sessions per client address (for `max_connections_per_ip`). */
  readonly clients: { add(ip: string): number; remove(ip: string): void };
  /** Lets go of garbage buffers during a large DATA (see util/memory-relief.ts); optional. */
  readonly relieveMemory?: () => void;
}

/** Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512; extensions and SMTPUTF8 need more). */
const DEFAULT_MAX_LINE = 2048;
/** Longest AUTH line, initial response or SASL answer included (RFC 4954 §4: at least 12288). */
const MAX_AUTH_LINE = 12288;
const DEFAULT_SIZE_THRESHOLD = 256 * 1024;
const DEFAULT_MAX_PER_IP = 50;

/** How long a trusted proxy may take to send its PROXY header. */
const PROXY_HEADER_TIMEOUT_MS = 10_000;

const DECLINED_RESULT: Promise<HookOutcome> = Promise.resolve(DECLINED_OUTCOME);
const NOTHING: Promise<void> = Promise.resolve();

const SYNC_HOOKS: ReadonlySet<HookName> = new Set<HookName>(['config', 'user_config', 'logging']);

/** Hooks whose recorded results belong to the transaction rather than to the connection. */
const TRANSACTION_HOOKS: ReadonlySet<HookName> = new Set<HookName>([
  'mail_parse',
  'mail_pre',
  'mail',
  'rcpt_parse',
  'rcpt_pre',
  'rcpt',
  'data',
  'data_headers_end',
  'data_post_headers',
  'received_line',
  'data_post',
  'queue_pre',
  'queue',
  'queue_post',
]);

export class Session implements SessionApi, HookCallContext, PluginLogTarget {
  readonly connection: Connection;
  readonly version: string;
  readonly input: Input;
  readonly lines: LineReader;
  /** Failed AUTH attempts in this session. */
  authFailures = 0;
  private tx: Transaction;
  private txCount = 0;
  private out = '';
  private closing = false;
  private readonly views: (object | undefined)[] = [];
  private readonly syncViews: (object | undefined)[] = [];
  private readonly idleTimeoutMs: number;
  /** The client address this session counts under in `max_connections_per_ip`. */
  private countedIp: string | undefined;
  private readonly maxLine: number;

  constructor(private readonly deps: SessionDeps) {
    this.connection = new Connection(deps.id, deps.conn.endpoints);
    this.version = deps.version;
    this.input = new Input(deps.conn);
    this.tx = this.newTransaction();
    this.maxLine = this.numberSetting('max_line_length', DEFAULT_MAX_LINE);
    // The reader takes the longest line any command may have; commands other than AUTH are held
    // to max_line_length when they are dispatched.
    this.lines = new LineReader(Math.max(this.maxLine, MAX_AUTH_LINE));
    const seconds = this.numberSetting('timeoutsmtpd', 0) || this.numberSetting('timeout', 1200);
    this.idleTimeoutMs = Math.max(1, seconds) * 1000;
  }

  // ---- SessionApi (what plugins see) ------------------------------------------------------

  get transaction(): Transaction {
    return this.tx;
  }

  get me(): string {
    return this.config('me') ?? 'localhost';
  }

  respond(code: number, message: Message): void {
    const noEnhanced = code === 220 || (code >= 300 && code < 400);
    this.send(makeReply(code, noEnhanced ? null : `${Math.floor(code / 100)}.0.0`, message));
  }

  config(name: string): string | undefined {
    return this.configValues(name)[0];
  }

  configList(name: string): string[] {
    return [...this.configValues(name)];
  }

  /** configList without the copy (the copy is for callers that keep the list). */
  private configValues(name: string): readonly string[] {
    const hooked = this.runSync('config', [name]);
    if (hooked.code === OK) return toValues(hooked.payload);
    return this.deps.configFiles(name);
  }

  /** Per-address config: the `user_config` hook first, then the normal lookup. */
  addressConfig(address: Address, name: string): string[] {
    const hooked = this.runSync('user_config', [address, name]);
    if (hooked.code === OK) return toValues(hooked.payload);
    return this.configList(name);
  }

  log(level: LogLevel, ...parts: unknown[]): void {
    this.logAs(level, '', '', parts);
  }

  logAs(level: LogLevel, hook: string, plugin: string, parts: readonly unknown[]): void {
    const sink = this.deps.logSink;
    if (!sink.enabled(level)) return;
    const record: LogRecord = {
      level,
      hook,
      plugin,
      message: formatLogParts(parts),
      connectionId: this.connection.id,
      transactionId: this.tx.id,
    };
    sink.write(record, this);
  }

  disconnect(): void {
    this.closing = true;
  }

  waitForInput(ms: number): Promise<boolean> {
    if (this.lines.bufferedBytes > 0) return Promise.resolve(true);
    return this.input.waitForInput(ms);
  }

  get canStartTls(): boolean {
    return this.connection.tls === undefined && this.deps.conn.canStartTls === true && this.deps.conn.startTls !== undefined;
  }

  async startTls(options: object, reply?: { code: number; message: Message }): Promise<boolean> {
    const conn = this.deps.conn;
    if (!this.canStartTls || conn.startTls === undefined) return false;
    if (reply) this.respond(reply.code, reply.message);
    this.flush();
    // Nothing sent before the handshake may be executed after it (CVE-2011-0411): pipelined
    // plaintext behind STARTTLS is dropped here, in the same turn as the reply went out.
    this.lines.discard();
    this.input.discard();
    try {
      this.connection.tls = await conn.startTls(options);
    } catch (err) {
      this.log(LOGINFO, `TLS handshake failed: ${err instanceof Error ? err.message : String(err)}`);
      this.closing = true;
      return false;
    }
    // RFC 3207 §4.2: forget what the client told us before; it must say EHLO again.
    this.connection.hello = undefined;
    this.connection.helloHost = undefined;
    await this.resetTransaction();
    this.log(LOGINFO, `TLS started: ${this.connection.tls.protocol} ${this.connection.tls.cipher}`);
    return true;
  }

  // ---- HookCallContext (what the hook runner needs) ----------------------------------------

  callTarget(plugin: PluginRecord, hook: HookName): object {
    // The synchronous hooks run in the middle of other hooks (a config lookup, a log line inside
    // hook_rcpt): they get views of their own, so the interrupted call keeps its hook and signal.
    const views = SYNC_HOOKS.has(hook) ? this.syncViews : this.views;
    let view = views[plugin.index];
    if (view === undefined) {
      view = makeCallTarget(plugin.instance, this);
      views[plugin.index] = view;
    }
    beginCall(view, hook);
    return view;
  }

  abortCall(target: object): void {
    abortCall(target);
  }

  report(level: LogLevel, hook: string, plugin: string, message: string): void {
    this.logAs(level, hook, plugin, [message]);
  }

  recordResult(plugin: PluginRecord, hook: HookName, code: Code, message: readonly string[] | undefined): void {
    const notes = TRANSACTION_HOOKS.has(hook) ? this.tx.notes : this.connection.notes;
    // A plugin may keep a plain value under its own name (earlytalker's verdict): leave it be,
    // as qpsmtpd does, rather than fail on it.
    const current = notes[plugin.name];
    if (current !== undefined && (typeof current !== 'object' || current === null || Array.isArray(current))) return;
    const own = (notes[plugin.name] ??= {}) as Record<string, unknown>;
    own[resultKey(hook)] = { return: code, message };
  }

  // ---- for the command handlers ------------------------------------------------------------

  /** Run a hook in this session. */
  hook<H extends HookName>(hook: H, args: HookArgs[H]): Promise<HookOutcome> {
    // Most hooks have no plugin in a given config: no async call for those.
    if (!this.deps.runner.has(hook)) return DECLINED_RESULT;
    return this.deps.runner.run(hook, this, args);
  }

  runSync<H extends SyncHookName>(hook: H, args: HookArgs[H]): HookOutcome {
    return this.deps.runner.runSync(hook, this, args);
  }

  hasHook(hook: HookName): boolean {
    return this.deps.runner.has(hook);
  }

  /**
   * Answer a hook's outcome through the reply table: send the reply, mark the session for closing,
   * reset the transaction when the row says so (after `beforeReset`, if given). A promise only
   * when there is a reset to wait for: most answers are not, and a session gives a dozen.
   */
  answer(hook: ReplyingHook, outcome: HookOutcome, vars?: Partial<ReplyVars>, beforeReset?: () => Promise<void>): Decision | Promise<Decision> {
    const decision = decide(hook, outcome, vars === undefined ? this.replyVars : () => Object.assign(this.baseVars(), vars));
    if (decision.reply) this.send(decision.reply);
    if (decision.close) this.closing = true;
    return decision.reset ? this.resetFor(decision, beforeReset) : decision;
  }

  private readonly replyVars = (): ReplyVars => this.baseVars();

  private async resetFor(decision: Decision, beforeReset: (() => Promise<void>) | undefined): Promise<Decision> {
    if (beforeReset) await beforeReset();
    await this.resetTransaction();
    return decision;
  }

  baseVars(): ReplyVars {
    return { me: this.me, client: this.connection.describe() };
  }

  /** Queue a reply; it is written when the session next waits for input. */
  send(reply: Reply): void {
    this.out += formatReply(reply);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Drop the current transaction (the `reset_transaction` hook runs) and start a fresh one. */
  resetTransaction(): Promise<void> {
    // Most resets (every MAIL, every EHLO) drop a transaction that holds no body, with no plugin
    // on the hook: nothing to wait for.
    if (!this.tx.hasBody && !this.deps.runner.has('reset_transaction')) {
      this.tx = this.newTransaction();
      return NOTHING;
    }
    return this.resetWithHook();
  }

  private async resetWithHook(): Promise<void> {
    await this.hookIgnoringResult('reset_transaction', []);
    const old = this.tx;
    this.tx = this.newTransaction();
    await old.discard();
  }

  /** A hook whose result makes no reply; a failure there is logged, never thrown. */
  hookIgnoringResult<H extends HookName>(hook: H, args: HookArgs[H]): Promise<void> {
    return this.deps.runner.has(hook) ? this.runIgnoringResult(hook, args) : NOTHING;
  }

  private async runIgnoringResult<H extends HookName>(hook: H, args: HookArgs[H]): Promise<void> {
    try {
      await this.hook(hook, args);
    } catch (err) {
      this.logAs(LOGCRIT, hook, '', [`hook failed: `, err]);
    }
  }

  /** A config value as a number (non-numeric or missing: the fallback). */
  numberSetting(name: string, fallback: number): number {
    const raw = this.config(name);
    if (raw === undefined) return fallback;
    // Most values are a bare number; only then `1200 # seconds` needs its first word cut out.
    let n = Number(raw);
    if (!Number.isFinite(n)) n = Number(raw.trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : fallback;
  }

  /** A config value as a flag: absent or `0`/`no`/`false`/`off` is false. */
  flagSetting(name: string, fallback: boolean): boolean {
    const raw = this.config(name);
    if (raw === undefined) return fallback;
    return !/^(0|no|false|off)$/i.test(raw.trim());
  }

  /**
   * The next command line; null when the session is over (EOF, timeout, shutdown). No async
   * functions on this path: an idle session waits here, and a suspended async function would
   * hold a frame for as long as the client is silent.
   */
  readLine(): Promise<CommandLine | null> {
    const line = this.lines.next();
    if (line) return Promise.resolve(line);
    if (this.closing) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.pumpLine(resolve, reject));
  }

  /**
   * Write the pending replies, then feed input to the line reader until a line is complete. What
   * is already received is taken in a loop; when the input is dry, the reader waits with a
   * callback (Input.await), so a wait costs one closure rather than a chain of promises, and a
   * client dribbling a line byte by byte costs no growing chain either.
   */
  private pumpLine(resolve: (line: CommandLine | null) => void, reject: (err: unknown) => void): void {
    try {
      for (;;) {
        const draining = this.flushed();
        if (draining) {
          draining.then(() => this.pumpLine(resolve, reject), reject);
          return;
        }
        const now = this.input.ready(true);
        if (now === WAIT) {
          this.input.await(this.idleTimeoutMs, true, (result) => {
            try {
              const line = this.lineAfter(result);
              if (line === undefined) this.pumpLine(resolve, reject);
              else resolve(line);
            } catch (err) {
              // This runs in the transport's event: a failure must reach the session, not the socket.
              reject(err);
            }
          });
          return;
        }
        const line = this.lineAfter(now);
        if (line !== undefined) return resolve(line);
      }
    } catch (err) {
      reject(err);
    }
  }

  /** A read's result into the line reader: the next line; null when the session is over; undefined when more input is needed. */
  private lineAfter(result: ReadResult): CommandLine | null | undefined {
    const chunk = this.received(result, undefined);
    if (chunk === null) return null;
    this.lines.push(chunk);
    return this.lines.next() ?? (this.closing ? null : undefined);
  }

  /**
   * The next input chunk, after writing the pending replies. Null when the session is over: the
   * client went away, or it was idle too long (421), or the daemon is stopping and this read may
   * be interrupted (421).
   */
  readChunk(interruptible: boolean, deadline?: number): Promise<Buffer | null> {
    const draining = this.flushed();
    return draining ? draining.then(() => this.receive(interruptible, deadline)) : this.receive(interruptible, deadline);
  }

  /** Write the queued replies; a promise when the client must read them before we read on. */
  private flushed(): Promise<void> | undefined {
    this.flush();
    return this.deps.conn.needsDrain ? this.deps.conn.drained() : undefined;
  }

  private receive(interruptible: boolean, deadline: number | undefined): Promise<Buffer | null> {
    const left = deadline === undefined ? this.idleTimeoutMs : Math.min(this.idleTimeoutMs, deadline - Date.now());
    const result = left <= 0 ? TIMED_OUT : this.input.read(left, interruptible);
    if (result instanceof Promise) return result.then((r) => this.received(r, deadline));
    return Promise.resolve(this.received(result, deadline));
  }

  /** What a read brought: the chunk, or null with the session closing (and the 421 queued). */
  private received(result: ReadResult, deadline: number | undefined): Buffer | null {
    if (result === TIMED_OUT) {
      const why = deadline !== undefined && Date.now() >= deadline ? 'the DATA deadline (data_timeout) passed' : `client idle for ${this.idleTimeoutMs / 1000} s`;
      this.log(LOGINFO, `${why}: closing`);
      this.send(CORE.timeout());
      this.closing = true;
      return null;
    }
    if (result === STOPPING) {
      this.send(CORE.shuttingDown());
      this.closing = true;
      return null;
    }
    if (result === null) this.closing = true;
    return result;
  }

  /** Called every few megabytes of a message: frees the socket buffers already used. */
  relieveMemory(): void {
    this.deps.relieveMemory?.();
  }

  /** Write the queued replies now. */
  flush(): void {
    if (this.out === '') return;
    const data = this.out;
    this.out = '';
    this.deps.conn.write(data);
  }

  /** Graceful stop: finish the command in progress, then answer 421 instead of reading another. */
  stop(): void {
    this.input.interrupt();
  }

  // ---- the session itself --------------------------------------------------------------------

  /** Run the session to its end. Never rejects. */
  async run(): Promise<void> {
    this.deps.conn.start(this.input);
    try {
      if (await this.begin()) {
        while (!this.closing) {
          // A pipelined command is taken straight from the reader, without a promise to wait on.
          const line = this.lines.next() ?? (await this.readLine());
          if (line === null) break;
          const handling = this.dispatch(line);
          if (handling !== undefined) await handling;
        }
      }
    } catch (err) {
      this.logAs(LOGCRIT, '', '', ['session failed:', err]);
      if (!this.closing) this.send(CORE.internalError());
      this.closing = true;
    }
    await this.finish();
  }

  /** pre-connection and connect; false when the client was turned away. */
  private async begin(): Promise<boolean> {
    const c = this.connection;
    if (this.fromTrustedProxy() && !(await this.readProxyHeader())) return false;
    this.countedIp = c.remoteIp;
    const fromIp = this.deps.clients.add(c.remoteIp);
    if (fromIp > this.numberSetting('max_connections_per_ip', DEFAULT_MAX_PER_IP)) {
      this.log(LOGINFO, `refused: ${fromIp - 1} sessions from ${c.remoteIp} already`);
      this.send(CORE.tooManyConnections());
      this.closing = true;
      return false;
    }
    const pre = await this.hook('pre-connection', [
      {
        remoteIp: c.remoteIp,
        remotePort: c.remotePort,
        localIp: c.localIp,
        localPort: c.localPort,
        connectionsFromIp: fromIp,
      },
    ]);
    if ((await this.answer('pre-connection', pre)).close) return false;
    const outcome = await this.hook('connect', []);
    // On an implicit-TLS listener the `tls` plugin starts TLS in its connect hook; without it
    // we must not answer in plaintext on a port that clients expect to be encrypted.
    if (c.implicitTls && c.tls === undefined && !this.closing) {
      this.log(LOGCRIT, 'implicit-TLS listener, but no plugin started TLS: load the tls plugin (first in config/plugins)');
      this.closing = true;
      return false;
    }
    const decision = await this.answer('connect', outcome, { greeting: this.greeting() });
    return decision.accept && !this.closing;
  }

  /** The client is a load balancer listed in `proxy_trusted`: it names the real client first. */
  private fromTrustedProxy(): boolean {
    const trusted = this.configValues('proxy_trusted');
    return trusted.length > 0 && new IpList(trusted).match(this.connection.remoteIp) !== undefined;
  }

  /**
   * Read the PROXY header (v1 or v2) that a trusted proxy sends before anything else, and take the
   * client it names. Anything else, or nothing within the time limit, ends the connection silently.
   */
  private async readProxyHeader(): Promise<boolean> {
    const deadline = Date.now() + PROXY_HEADER_TIMEOUT_MS;
    let received: Buffer = Buffer.alloc(0);
    for (;;) {
      const parsed = parseProxyHeader(received);
      if (parsed.kind === 'ok') {
        if (parsed.addresses) this.connection.adoptProxied(parsed.addresses);
        this.log(LOGINFO, `PROXY v${parsed.version} from ${this.connection.proxiedBy ?? this.connection.remoteIp}: client ${this.connection.remoteIp}:${this.connection.remotePort}`);
        this.lines.push(received.subarray(parsed.length));
        return true;
      }
      if (parsed.kind === 'invalid') {
        this.log(LOGWARN, `connection from trusted proxy ${this.connection.remoteIp} without a valid PROXY header (${parsed.reason}): closing`);
        this.closing = true;
        return false;
      }
      const chunk = await this.input.read(Math.max(1, deadline - Date.now()), true);
      if (!Buffer.isBuffer(chunk)) {
        this.log(LOGWARN, `no PROXY header from trusted proxy ${this.connection.remoteIp}: closing`);
        this.closing = true;
        return false;
      }
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    }
  }

  private greeting(): string {
    const custom = this.config('smtpgreeting');
    if (custom !== undefined) return /ESMTP/.test(custom) ? custom : `${custom} ESMTP`;
    return `${this.me} ESMTP qpsmtpd ${this.version} ready; send us your mail, but not your spam.`;
  }

  /** Run one command line; a promise while its handler works (most), undefined when answered at once. */
  private dispatch(line: CommandLine): Promise<void> | undefined {
    if (!line.ok) {
      this.send(line.error === 'too-long' ? CORE.lineTooLong() : line.error === 'not-utf8' ? CORE.notUtf8() : CORE.bareLineEnd());
      return undefined;
    }
    const command = splitCommand(line.text);
    if (command?.verb !== 'AUTH' && line.text.length > this.maxLine / 4 && Buffer.byteLength(line.text) > this.maxLine) {
      this.send(CORE.lineTooLong());
      return undefined;
    }
    if (command === null) {
      const verb = line.text.trim().split(/\s+/)[0] ?? '';
      return unrecognizedCommand(this, verb.toLowerCase(), line.text.trim().slice(verb.length).trim());
    }
    if (this.deps.logSink.enabled(LOGDEBUG)) {
      // AUTH PLAIN carries a password in its initial response: never log it.
      const shown = command.verb === 'AUTH' ? `AUTH ${command.rest.split(/\s+/)[0] ?? ''} ...` : line.text;
      this.log(LOGDEBUG, `dispatching ${shown}`);
    }
    const handler = COMMANDS.get(command.verb);
    return handler ? handler(this, command.rest) : unrecognizedCommand(this, command.verb.toLowerCase(), command.rest);
  }

  /** The end of every session: reset, `disconnect`, close, `post-connection`. */
  private async finish(): Promise<void> {
    this.closing = true;
    if (this.countedIp !== undefined) this.deps.clients.remove(this.countedIp);
    try {
      if (this.tx.sender !== undefined || this.tx.hasBody) await this.resetTransaction();
      await this.hookIgnoringResult('disconnect', []);
    } catch (err) {
      this.logAs(LOGCRIT, 'disconnect', '', ['failed:', err]);
    }
    this.flush();
    this.input.close();
    await this.deps.conn.close().catch(() => undefined);
    await this.hookIgnoringResult('post-connection', []);
    await this.tx.discard().catch(() => undefined);
  }

  private newTransaction(): Transaction {
    this.txCount++;
    // The store options are read when the first message byte arrives, not for every RSET.
    return new Transaction(`${this.deps.id}.${this.txCount}`, () => ({
      threshold: this.numberSetting('size_threshold', DEFAULT_SIZE_THRESHOLD),
      spoolDir: this.deps.spoolDir,
      spoolName: this.deps.spoolName,
      ...(this.deps.relieveMemory ? { relieveMemory: this.deps.relieveMemory } : {}),
    }));
  }
}

/** `hook_rcpt` and the like, made once per hook name: a key built anew would be hashed anew on every call. */
const RESULT_KEYS = new Map<HookName, string>();
function resultKey(hook: HookName): string {
  let key = RESULT_KEYS.get(hook);
  if (key === undefined) RESULT_KEYS.set(hook, (key = `hook_${hook}`));
  return key;
}

function toValues(payload: unknown): string[] {
  if (payload === undefined || payload === null) return [];
  if (Array.isArray(payload)) return payload.map(String);
  return [String(payload)];
}
