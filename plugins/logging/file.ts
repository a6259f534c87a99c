/**
 * logging/file: append log lines to a file (or feed them to a program), as qpsmtpd's logging/file.
 *
 * config/logging:
 *   logging/file [loglevel LEVEL] [reopen] [nosplit] [oneline] [tsformat FORMAT] [format text|json] PATH
 *   logging/file loglevel LOGINFO /var/log/qpsmtpd.log
 *   logging/file /var/log/qpsmtpd/%Y-%m-%d.log
 *   logging/file loglevel LOGCRIT reopen |/usr/local/sbin/page-sysadmin
 *   logging/file format json /var/log/qpsmtpd.jsonl
 * Several instances (`logging/file:0 ...`, `logging/file:1 ...`) log to several places.
 *
 * Arguments (the options come first; everything after them, joined with spaces, is the target):
 *   loglevel LEVEL   the highest level written (0-7, LOGINFO, INFO ...); default LOGWARN (4).
 *   PATH             the file, created (mode 0640, with missing folders) or appended to. A relative
 *                    path is taken from the folder that holds the config dir. PATH may contain
 *                    strftime sequences (local time): %Y %m %d %H %M %S %y %e %j %a %A %b %B %p %I
 *                    %F %T %D %R %c %s %u %w %z %L (milliseconds) %n %t %%, and %i, the connection id
 *                    ("parent" outside a session), which gives every connection its own file. The
 *                    file changes whenever the expanded name does.
 *   |COMMAND         instead of a path: run COMMAND with /bin/sh and write the lines to its stdin.
 *   reopen           reopen the output at the first line of every connection (qpsmtpd's option:
 *                    with a command, a new process per connection, e.g. to page someone).
 *   nosplit          qpsmtpd's meaning: a connection keeps writing to the file it started in, even
 *                    when a dated PATH moves on meanwhile, so one session never spans two files.
 *   oneline          write a multi-line message as one line, its line breaks shown as `\n`. Without
 *                    it each line of the message is written as a line of its own, with the full
 *                    prefix, so every line in the file has a timestamp and an id.
 *   tsformat FORMAT  the timestamp at the start of each line (strftime as above; no spaces, since
 *                    arguments are split on white space). Default `%Y-%m-%dT%H:%M:%S`, local time.
 *                    qpsmtpd's default was `scalar localtime`; `tsformat %c` gives that form.
 *   format json      one JSON object per line: {"time", "level", "levelName", "host", "pid",
 *                    "connection", "transaction", "hook", "plugin", "message"}. `time` is ISO 8601 in
 *                    UTC with milliseconds (tsformat does not apply); connection, transaction, hook
 *                    and plugin are null where there is none. `format text` is the default.
 *
 * A text line is `TIMESTAMP HOST[PID]: [TRANSACTION-ID] (hook) plugin: message`: qpsmtpd's
 * `TIMESTAMP HOST[PID]: message`, with the parts the core's stderr lines carry.
 *
 * Config files: none. Hooks: `logging` (always DECLINED, so other logging plugins see every line
 * too; lines logged by this plugin itself are skipped, as in qpsmtpd) and `post-connection`
 * (flush; close a %i file). `logThreshold` is set to LEVEL, so lines above it are never formatted.
 *
 * How the lines are written, and why: the `logging` hook is synchronous and runs on the hot path,
 * and a qpsmtpd-style log must survive a stop. Lines are appended to a buffer in memory, and one
 * fs.writeSync per output writes the whole buffer to a file descriptor opened once with O_APPEND:
 * on the next turn of the event loop (setImmediate), when a buffer passes 64 KiB, at the end of
 * every connection (`post-connection`), and in a process 'exit' listener. So the event loop pays
 * one system call per turn, not one per line; every line is on disk when the process exits in an
 * orderly way (a graceful stop ends the process through 'exit'); and nothing is lost to a stream's
 * asynchronous queue. Only a SIGKILL or a crash of Node itself can lose the lines of the current
 * turn. A slow disk still blocks the event loop during the write: the price of not losing lines.
 * Worker processes (--workers) each have their own descriptor on the same file; O_APPEND keeps
 * each batch whole on a local file system, so their lines interleave but do not mix.
 * A command target gets the buffer through its stdin pipe (Node writes to a pipe at once while the
 * pipe has room; at most 1 MiB is queued for a program that stops reading, the rest is dropped).
 *
 * When the output is reopened:
 *   - when the expanded PATH changes (dated files), and with `reopen` at each connection's first line;
 *   - when the file was rotated (logrotate moved or deleted it): at most once a second, and at each
 *     connection's first line, the path is compared with the open file (device and inode), and a
 *     new file is opened when they differ, so `create`-style rotation needs no signal. (copytruncate
 *     works anyway: O_APPEND writes go to the new end.)
 *   - on a reload (SIGHUP) the new plugin instance opens its own descriptor; the old instance's
 *     descriptors are closed once its last session is over and it is garbage-collected.
 * An output that cannot be opened or written gets one warning on stderr (per kind of error and
 * outage), its lines are dropped, and it is retried a second later: logging trouble never stops a
 * session.
 * At most 8 outputs (files or programs) are kept open per instance; the least recently used is
 * closed first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { Connection, LogLevel, PluginHost, Transaction } from 'qpsmtpd';

const FLUSH_AT_BYTES = 64 * 1024;
const PIPE_QUEUE_LIMIT = 1024 * 1024;
const RECHECK_MS = 1000;
const RETRY_MS = 1000;
const MAX_OPEN = 8;
const DEFAULT_TSFORMAT = '%Y-%m-%dT%H:%M:%S';
const LEVEL_NAMES = ['EMERG', 'ALERT', 'CRIT', 'ERROR', 'WARN', 'NOTICE', 'INFO', 'DEBUG'] as const;

interface FileOptions {
  readonly level: LogLevel;
  readonly reopen: boolean;
  readonly nosplit: boolean;
  readonly oneline: boolean;
  readonly json: boolean;
  readonly tsformat: string;
  /** The path or command, before strftime expansion. */
  readonly target: string;
  readonly pipe: boolean;
}

export default class FileLogging extends Plugin {
  /** Everything mutable lives in this object: fields written inside a hook would land in the session's view. */
  private logger!: FileLogger;

  register(qp: PluginHost, ...args: string[]): void {
    const options = parseArguments(args);
    this.logger = new FileLogger(this.name, options, dirname(qp.configDir));
    this.logThreshold = options.level;
  }

  /** Retired (stop, or replaced by a reload once its sessions are over): write out and close. */
  shutdown(): void {
    this.logger.close();
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    const logger = this.logger;
    if (level > logger.options.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    const connection = connectionOf(this);
    logger.log(connection, connection ? tx.id : undefined, level, hook, plugin, message.join(' '));
    return DECLINED;
  }

  hook_post_connection() {
    const connection = connectionOf(this);
    if (connection) this.logger.endConnection(connection);
    return DECLINED;
  }
}

function parseArguments(args: readonly string[]): FileOptions {
  let level: LogLevel = LOGWARN;
  let reopen = false;
  let nosplit = false;
  let oneline = false;
  let json = false;
  let tsformat = DEFAULT_TSFORMAT;
  let i = 0;
  const valueOf = (option: string): string => {
    const value = args[i + 1];
    if (value === undefined) throw new Error(`logging/file: "${option}" needs a value`);
    i += 2;
    return value;
  };
  for (;;) {
    const word = args[i]?.toLowerCase();
    if (word === 'loglevel') {
      const text = valueOf(word);
      const parsed = parseLogLevel(text);
      if (parsed === undefined) throw new Error(`logging/file: unknown log level "${text}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
      level = parsed;
    } else if (word === 'tsformat') {
      tsformat = valueOf(word);
    } else if (word === 'format') {
      const text = valueOf(word).toLowerCase();
      if (text !== 'json' && text !== 'text') throw new Error(`logging/file: format is "text" or "json", not "${text}"`);
      json = text === 'json';
    } else if (word === 'reopen') {
      reopen = true;
      i++;
    } else if (word === 'nosplit') {
      nosplit = true;
      i++;
    } else if (word === 'oneline') {
      oneline = true;
      i++;
    } else {
      break;
    }
  }
  const rest = args.slice(i).join(' ').trim();
  if (rest === '' || rest === '|') {
    throw new Error('usage: logging/file [loglevel LEVEL] [reopen] [nosplit] [oneline] [tsformat FORMAT] [format json] PATH|"|COMMAND"');
  }
  const pipe = rest.startsWith('|');
  return { level, reopen, nosplit, oneline, json, tsformat, target: pipe ? rest.slice(1).trim() : rest, pipe };
}

/** The connection of the session the hook runs in; undefined outside one (`this.qp` throws there). */
function connectionOf(plugin: Plugin): Connection | undefined {
  try {
    return plugin.qp.connection;
  } catch {
    return undefined;
  }
}

/** Per-connection state: the output it has used (for nosplit), and whether it has logged yet. */
interface SessionState {
  key: string | undefined;
}

/** One plugin instance's outputs and formatting. Holds no reference to the plugin. */
class FileLogger {
  private readonly outputs = new Map<string, Output>();
  private readonly sessions = new WeakMap<Connection, SessionState>();
  private readonly host = hostname();
  private readonly templated: boolean;
  private readonly perConnection: boolean;
  private readonly stampCache = { second: Number.NaN, text: '' };
  private readonly stampCacheable: boolean;
  private readonly nameCache = { second: Number.NaN, key: '' };

  constructor(
    private readonly pluginName: string,
    readonly options: FileOptions,
    private readonly root: string,
  ) {
    this.templated = options.target.includes('%');
    this.perConnection = /%i/.test(options.target.replace(/%%/g, ''));
    this.stampCacheable = !/%L/.test(options.tsformat.replace(/%%/g, ''));
  }

  log(connection: Connection | undefined, txId: string | undefined, level: LogLevel, hook: string, plugin: string, message: string): void {
    const now = Date.now();
    let firstLine = false;
    let state: SessionState | undefined;
    if (connection) {
      state = this.sessions.get(connection);
      if (state === undefined) {
        state = { key: undefined };
        this.sessions.set(connection, state);
        firstLine = true;
      }
    }
    const key = this.options.nosplit && state?.key !== undefined ? state.key : this.keyFor(now, connection);
    if (state) state.key = key;
    const output = this.output(key);
    if (firstLine) {
      if (this.options.reopen) output.reopen();
      else output.checkSoon();
    }
    output.write(this.format(now, level, hook, plugin, message, connection?.id, txId));
  }

  endConnection(connection: Connection): void {
    const state = this.sessions.get(connection);
    this.sessions.delete(connection);
    if (this.perConnection && state?.key !== undefined) {
      const output = this.outputs.get(state.key);
      if (output) {
        this.outputs.delete(state.key);
        output.close();
      }
    }
    for (const output of this.outputs.values()) output.flush();
  }

  close(): void {
    for (const output of this.outputs.values()) output.close();
    this.outputs.clear();
  }

  /** The output's identity: the expanded path (absolute), or `|` and the expanded command. */
  private keyFor(now: number, connection: Connection | undefined): string {
    const { target, pipe } = this.options;
    if (!this.templated) return pipe ? '|' + target : resolve(this.root, target);
    const second = Math.floor(now / 1000);
    if (!this.perConnection && this.nameCache.second === second) return this.nameCache.key;
    const expanded = strftime(target, new Date(now), (c) => (c === 'i' ? (connection?.id ?? 'parent') : undefined));
    const key = pipe ? '|' + expanded : resolve(this.root, expanded);
    if (!this.perConnection) {
      this.nameCache.second = second;
      this.nameCache.key = key;
    }
    return key;
  }

  private output(key: string): Output {
    let output = this.outputs.get(key);
    if (output !== undefined) {
      // Most recently used last, so the first entry is the one to close when there are too many.
      if (this.outputs.size > 1) {
        this.outputs.delete(key);
        this.outputs.set(key, output);
      }
      return output;
    }
    output = key.startsWith('|') ? new PipeOutput(key, this.pluginName) : new FileOutput(key, this.pluginName);
    this.outputs.set(key, output);
    if (this.outputs.size > MAX_OPEN) {
      const [oldestKey, oldest] = this.outputs.entries().next().value as [string, Output];
      this.outputs.delete(oldestKey);
      oldest.close();
    }
    return output;
  }

  private format(now: number, level: LogLevel, hook: string, plugin: string, message: string, connectionId: string | undefined, txId: string | undefined): string {
    if (this.options.json) {
      return (
        JSON.stringify({
          time: new Date(now).toISOString(),
          level,
          levelName: LEVEL_NAMES[level] ?? String(level),
          host: this.host,
          pid: process.pid,
          connection: connectionId ?? null,
          transaction: txId ?? null,
          hook: hook || null,
          plugin: plugin || null,
          message,
        }) + '\n'
      );
    }
    const where = txId !== undefined ? ` [${txId}]` : '';
    const prefix = `${this.stamp(now)} ${this.host}[${process.pid}]:${where}${hook ? ` (${hook})` : ''}${plugin ? ` ${plugin}:` : ''} `;
    if (!message.includes('\n') && !message.includes('\r')) return prefix + message + '\n';
    if (this.options.oneline) return prefix + message.replace(/\r\n|\r|\n/g, '\\n') + '\n';
    const lines = message.split(/\r\n|\r|\n/);
    while (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
    let out = '';
    for (const line of lines) out += prefix + line + '\n';
    return out;
  }

  private stamp(now: number): string {
    if (!this.stampCacheable) return strftime(this.options.tsformat, new Date(now));
    const second = Math.floor(now / 1000);
    if (this.stampCache.second !== second) {
      this.stampCache.second = second;
      this.stampCache.text = strftime(this.options.tsformat, new Date(now));
    }
    return this.stampCache.text;
  }
}

// ---- outputs ---------------------------------------------------------------------------------

/** Outputs with lines waiting, written out together on the next turn of the event loop or at exit. */
const dirty = new Set<Output>();
let flushScheduled = false;
let exitListener = false;

function scheduleFlush(output: Output): void {
  dirty.add(output);
  if (!exitListener) {
    exitListener = true;
    process.on('exit', flushAll);
  }
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  flushScheduled = false;
  for (const output of [...dirty]) output.flush();
}

abstract class Output {
  protected pending: string[] = [];
  protected pendingBytes = 0;
  /** No attempt to open before this time (after a failure). */
  protected retryAt = 0;
  /** Kinds of problem already reported; cleared when the output works again. */
  protected readonly warned = new Set<string>();

  constructor(
    protected readonly key: string,
    private readonly pluginName: string,
  ) {}

  write(text: string): void {
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes >= FLUSH_AT_BYTES) this.flush();
    else scheduleFlush(this);
  }

  /** Write what is pending now. */
  flush(): void {
    dirty.delete(this);
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    this.deliver(text, Date.now());
  }

  /** Flush, then close; the next line opens the output again. */
  reopen(): void {
    this.flush();
    this.release();
    this.retryAt = 0;
  }

  close(): void {
    this.flush();
    this.release();
  }

  /** Compare the open file with its path at the next write (files only). */
  checkSoon(): void {}

  protected abstract deliver(text: string, now: number): void;
  protected abstract release(): void;

  /** One warning on stderr per kind of problem: never through the logging hook, which would recurse. */
  protected warnOnce(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    process.stderr.write(`${process.pid} ${this.pluginName}: ${message}\n`);
  }
}

class FileOutput extends Output {
  private fd = -1;
  private dev = 0;
  private ino = 0;
  private checkAt = 0;

  override checkSoon(): void {
    this.checkAt = 0;
  }

  protected deliver(text: string, now: number): void {
    if (this.fd >= 0 && now >= this.checkAt && !this.stillThere(now)) this.release();
    if (this.fd < 0 && !this.open(now)) return;
    const data = Buffer.from(text, 'utf8');
    try {
      let offset = 0;
      while (offset < data.length) offset += writeSync(this.fd, data, offset, data.length - offset);
    } catch (err) {
      this.warnOnce(`write:${codeOf(err)}`, `cannot write to ${this.key}: ${messageOf(err)}; dropping log lines until it works again`);
      this.release();
      this.retryAt = now + RETRY_MS;
    }
  }

  protected release(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    this.fd = -1;
  }

  /** Does the path still name the file we have open? False after logrotate moved or deleted it. */
  private stillThere(now: number): boolean {
    this.checkAt = now + RECHECK_MS;
    try {
      const st = statSync(this.key);
      return st.ino === this.ino && st.dev === this.dev;
    } catch {
      return false;
    }
  }

  private open(now: number): boolean {
    if (now < this.retryAt) return false;
    try {
      try {
        this.fd = openSync(this.key, 'a', 0o640);
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') throw err;
        mkdirSync(dirname(this.key), { recursive: true, mode: 0o750 });
        this.fd = openSync(this.key, 'a', 0o640);
      }
      const st = fstatSync(this.fd);
      this.dev = st.dev;
      this.ino = st.ino;
      this.checkAt = now + RECHECK_MS;
      this.warned.clear(); // working again: the next outage gets its warning
      return true;
    } catch (err) {
      this.fd = -1;
      this.retryAt = now + RETRY_MS;
      this.warnOnce(`open:${codeOf(err)}`, `cannot open ${this.key}: ${messageOf(err)}; dropping log lines until it works again`);
      return false;
    }
  }
}

class PipeOutput extends Output {
  private child: ChildProcess | undefined;

  protected deliver(text: string, now: number): void {
    const child = this.child ?? this.start(now);
    const stdin = child?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.writableLength > PIPE_QUEUE_LIMIT) {
      this.warnOnce('full', `${this.key.slice(1)} does not read its input; dropping log lines`);
      return;
    }
    stdin.write(text);
  }

  protected release(): void {
    const child = this.child;
    this.child = undefined;
    // End of input: the program finishes what it has and exits by itself.
    child?.stdin?.end();
  }

  private start(now: number): ChildProcess | undefined {
    if (now < this.retryAt) return undefined;
    const command = this.key.slice(1);
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'ignore', 'inherit'] });
    } catch (err) {
      this.retryAt = now + RETRY_MS;
      this.warnOnce(`spawn:${codeOf(err)}`, `cannot run ${command}: ${messageOf(err)}`);
      return undefined;
    }
    const gone = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      this.retryAt = Date.now() + RETRY_MS;
      this.warnOnce(`exit:${why}`, `${command} ${why}; its log lines are dropped, it is started again for later ones`);
    };
    child.on('error', (err) => gone(`failed: ${err.message}`));
    child.on('exit', (code, signal) => gone(signal ? `was killed by ${signal}` : `exited with status ${code}`));
    child.stdin?.on('error', () => undefined); // EPIPE when it exits: reported by 'exit'
    // The daemon must be able to exit while the program runs; its stdin closes with us.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.child = child;
    return child;
  }
}

function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'error';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---- strftime ----------------------------------------------------------------------------------

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'] as const;

function pad(n: number, width = 2, fill = '0'): string {
  return String(n).padStart(width, fill);
}

/** POSIX strftime in local time, for the conversions listed in the header; others are kept as written. */
export function strftime(format: string, date: Date, extra?: (conversion: string) => string | undefined): string {
  return format.replace(/%([%a-zA-Z])/g, (all, c: string) => {
    const own = extra?.(c);
    if (own !== undefined) return own;
    const hours = date.getHours();
    const h12 = hours % 12 === 0 ? 12 : hours % 12;
    switch (c) {
      case '%': return '%';
      case 'n': return '\n';
      case 't': return '\t';
      case 'a': return DAYS[date.getDay()]!.slice(0, 3);
      case 'A': return DAYS[date.getDay()]!;
      case 'b':
      case 'h': return MONTHS[date.getMonth()]!.slice(0, 3);
      case 'B': return MONTHS[date.getMonth()]!;
      case 'C': return pad(Math.floor(date.getFullYear() / 100));
      case 'd': return pad(date.getDate());
      case 'e': return pad(date.getDate(), 2, ' ');
      case 'H': return pad(hours);
      case 'k': return pad(hours, 2, ' ');
      case 'I': return pad(h12);
      case 'l': return pad(h12, 2, ' ');
      case 'j': return pad(dayOfYear(date), 3);
      case 'm': return pad(date.getMonth() + 1);
      case 'M': return pad(date.getMinutes());
      case 'S': return pad(date.getSeconds());
      case 'L': return pad(date.getMilliseconds(), 3);
      case 'p': return hours < 12 ? 'AM' : 'PM';
      case 'P': return hours < 12 ? 'am' : 'pm';
      case 's': return String(Math.floor(date.getTime() / 1000));
      case 'u': return String(date.getDay() === 0 ? 7 : date.getDay());
      case 'w': return String(date.getDay());
      case 'y': return pad(date.getFullYear() % 100);
      case 'Y': return String(date.getFullYear());
      case 'z': {
        const offset = -date.getTimezoneOffset();
        const abs = Math.abs(offset);
        return `${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
      }
      case 'D': return strftime('%m/%d/%y', date);
      case 'F': return strftime('%Y-%m-%d', date);
      case 'T': return strftime('%H:%M:%S', date);
      case 'R': return strftime('%H:%M', date);
      case 'r': return strftime('%I:%M:%S %p', date);
      case 'c': return strftime('%a %b %e %H:%M:%S %Y', date);
      default: return all;
    }
  });
}

function dayOfYear(date: Date): number {
  const start = Date.UTC(date.getFullYear(), 0, 1);
  const today = Date.UTC(date.getFullYear(), date.getMonth(), date.getDate());
  return (today - start) / 86_400_000 + 1;
}
