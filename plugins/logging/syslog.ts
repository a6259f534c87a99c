/**
 * logging/syslog: send log lines to syslog, as qpsmtpd's logging/syslog (Sys::Syslog) does.
 *
 * config/logging:
 *   logging/syslog [loglevel LEVEL] [priority PRIO] [ident IDENT] [facility FACILITY] [logsock SOCK] [format FMT]
 *   logging/syslog loglevel LOGINFO priority LOG_NOTICE
 *   logging/syslog loglevel LOGINFO facility local3 logsock udp:loghost.example:514
 *
 * Arguments (name/value pairs, as in qpsmtpd):
 *   loglevel LEVEL     the highest qpsmtpd level sent (0-7, LOGINFO, INFO ...); default LOGWARN (4).
 *   priority PRIO      send every line at this priority instead of the one matching its level:
 *                      `LOG_NOTICE`, `notice`, a number (0-7 a severity; larger numbers include the
 *                      facility, as in syslog(3)), or with a facility: `mail.notice`, `LOG_MAIL|LOG_NOTICE`.
 *   ident IDENT        the tag of every message; default `qpsmtpd`. The daemon's pid follows it.
 *   facility FACILITY  `mail` (the default), `LOG_LOCAL3`, `daemon`, `user`, `local0`-`local7` ...
 *   logsock SOCK       where to send, a comma-separated list of which the first usable one is taken
 *                      (a unix socket is usable when it exists; otherwise the first one is used):
 *                        unix, unix:PATH       the local syslog socket; default /dev/log (the default)
 *                        stream, stream:PATH   the same (a datagram or a stream socket both work)
 *                        udp, udp:HOST, udp:HOST:PORT, udp:[IPV6]:PORT   UDP; default 127.0.0.1:514
 *                        tcp, tcp:HOST, tcp:HOST:PORT                    TCP, through `logger`
 *   format FMT         `rfc3164` or `rfc5424`: the message format on the wire. Default: RFC 3164
 *                      (`<PRI>Mmm dd hh:mm:ss HOST IDENT[PID]: text`) for UDP, and for a local socket
 *                      what syslog(3) sends (the same without HOST).
 *
 * Levels map to syslog severities by number: LOGEMERG emerg, LOGALERT alert, LOGCRIT crit,
 * LOGERROR err, LOGWARN warning, LOGNOTICE notice, LOGINFO info, LOGDEBUG debug. The text of a
 * message is `[TRANSACTION-ID] (hook) plugin: message` (the parts the core's stderr lines carry,
 * without the pid, which syslog adds); a multi-line message becomes one syslog message per line.
 * Messages longer than 8 KiB are cut there.
 *
 * Config files: none. Hooks: `logging` (always DECLINED, so the logging plugins after it see every
 * line too; lines this plugin logs itself are skipped). `logThreshold` is set to LEVEL.
 *
 * How it gets there. Node has neither syslog(3) nor unix datagram sockets, so:
 *   - UDP: node:dgram, one datagram per line, from one socket; a host name is looked up once.
 *   - A unix socket (and TCP): one long-lived `logger` process (util-linux), started without a
 *     shell on the first line, as `logger --socket PATH --socket-errors=on --prio-prefix --tag IDENT
 *     --id=PID --size 8192`, fed one `<PRI>text` line per message on its stdin, so every line
 *     carries its own priority. With --socket-errors=on logger exits when the socket is missing or
 *     refuses a message (syslogd restarted); it is then started again for a later line, after a
 *     pause that doubles from 0.25 s up to 30 s (and starts over once a logger ran for 5 s).
 * Syslog trouble never blocks or fails a session: writes to the pipe and the socket are
 * asynchronous, at most 1 MiB is queued for a logger that does not keep up, and the lines that
 * cannot be sent are dropped after ONE warning on stderr per outage. The logger process and the
 * socket do not keep the daemon alive; logger gets end-of-input when the daemon exits and sends
 * what it was given. After a reload the old instance's logger ends when the instance is
 * garbage-collected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns';
import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { LogLevel, PluginHost, Transaction } from 'qpsmtpd';

const MAX_MESSAGE_BYTES = 8192;
const QUEUE_LIMIT_BYTES = 1024 * 1024;
const FIRST_RETRY_MS = 250;
const LAST_RETRY_MS = 30_000;
const HEALTHY_MS = 5000;
const DNS_RETRY_MS = 30_000;

const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9,
  authpriv: 10, ftp: 11, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21,
  local6: 22, local7: 23,
};
const SEVERITIES: Readonly<Record<string, number>> = {
  emerg: 0, panic: 0, alert: 1, crit: 2, err: 3, error: 3, warning: 4, warn: 4, notice: 5, info: 6, debug: 7,
};

type Destination =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'udp' | 'tcp'; readonly host: string; readonly port: number };

interface SyslogOptions {
  readonly level: LogLevel;
  /** `priority`: a fixed severity, perhaps with its own facility. */
  readonly fixed: { readonly severity: number; readonly facility?: number } | undefined;
  readonly facility: number;
  readonly ident: string;
  readonly destination: Destination;
  readonly format: 'rfc3164' | 'rfc5424' | undefined;
}

/** Where the lines go: each line is one message, without its priority. */
interface Transport {
  send(priority: number, text: string): void;
  close(): Promise<void>;
}

export default class SyslogLogging extends Plugin {
  /** Set in register; read (never assigned) in hooks, whose `this` is a per-session view. */
  private options!: SyslogOptions;
  private transport!: Transport;

  register(_qp: PluginHost, ...args: string[]): void {
    this.options = parseArguments(args);
    this.transport =
      this.options.destination.kind === 'udp'
        ? new UdpTransport(this.options, this.name)
        : new LoggerTransport(this.options, this.name);
    this.logThreshold = this.options.level;
  }

  /** Retired (stop, or replaced by a reload once its sessions are over): end the logger process or socket. */
  shutdown(): Promise<void> {
    return this.transport.close();
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    const options = this.options;
    if (level > options.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    const severity = options.fixed?.severity ?? level;
    const facility = options.fixed?.facility ?? options.facility;
    const priority = facility * 8 + severity;
    let prefix = inSession(this) ? `[${tx.id}] ` : '';
    if (hook) prefix += `(${hook}) `;
    if (plugin) prefix += `${plugin}: `;
    const text = message.join(' ');
    if (!text.includes('\n') && !text.includes('\r')) {
      this.transport.send(priority, prefix + text);
    } else {
      for (const line of text.split(/\r\n|\r|\n/)) if (line !== '') this.transport.send(priority, prefix + line);
    }
    return DECLINED;
  }

  /** The pid of the running logger process, if any (for tests). */
  get loggerPid(): number | undefined {
    return this.transport instanceof LoggerTransport ? this.transport.pid : undefined;
  }
}

function inSession(plugin: Plugin): boolean {
  try {
    return plugin.qp !== undefined;
  } catch {
    return false;
  }
}

// ---- arguments ---------------------------------------------------------------------------------

function parseArguments(args: readonly string[]): SyslogOptions {
  if (args.length % 2 !== 0) {
    throw new Error(`logging/syslog takes name/value pairs: [loglevel L] [priority P] [ident I] [facility F] [logsock S] [format F] (got "${args.join(' ')}")`);
  }
  let level: LogLevel = LOGWARN;
  let fixed: SyslogOptions['fixed'];
  let facility = FACILITIES['mail']!;
  let ident = 'qpsmtpd';
  let destination: Destination = { kind: 'unix', path: '/dev/log' };
  let format: SyslogOptions['format'];
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!.toLowerCase();
    const value = args[i + 1]!;
    switch (name) {
      case 'loglevel': {
        const parsed = parseLogLevel(value);
        if (parsed === undefined) throw new Error(`logging/syslog: unknown log level "${value}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
        level = parsed;
        break;
      }
      case 'priority':
        fixed = parsePriority(value);
        break;
      case 'facility': {
        const code = FACILITIES[bare(value)];
        if (code === undefined) throw new Error(`logging/syslog: unknown facility "${value}" (mail, daemon, local0 ... local7, ...)`);
        facility = code;
        break;
      }
      case 'ident':
        if (!/^[\w.-]{1,48}$/.test(value)) throw new Error(`logging/syslog: ident "${value}" must be letters, digits, _ . - (at most 48)`);
        ident = value;
        break;
      case 'logsock':
        destination = chooseDestination(value);
        break;
      case 'format': {
        const f = value.toLowerCase();
        if (f !== 'rfc3164' && f !== 'rfc5424') throw new Error(`logging/syslog: format is rfc3164 or rfc5424, not "${value}"`);
        format = f;
        break;
      }
      default:
        throw new Error(`logging/syslog: unknown argument "${args[i]}" (loglevel, priority, ident, facility, logsock, format)`);
    }
  }
  return { level, fixed, facility, ident, destination, format };
}

/** `LOG_MAIL` -> `mail`. */
function bare(name: string): string {
  return name.toLowerCase().replace(/^log_/, '');
}

function parsePriority(text: string): { severity: number; facility?: number } {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n > 23 * 8 + 7) throw new Error(`logging/syslog: priority ${text} is out of range`);
    return n < 8 ? { severity: n } : { severity: n & 7, facility: n >> 3 };
  }
  let severity: number | undefined;
  let facility: number | undefined;
  for (const part of text.split(/[|.,]/)) {
    const word = bare(part);
    if (SEVERITIES[word] !== undefined) severity = SEVERITIES[word];
    else if (FACILITIES[word] !== undefined) facility = FACILITIES[word];
    else throw new Error(`logging/syslog: unknown priority "${text}" (LOG_NOTICE, info, mail.notice, 0-191 ...)`);
  }
  if (severity === undefined) throw new Error(`logging/syslog: priority "${text}" names no severity`);
  return facility === undefined ? { severity } : { severity, facility };
}

/** The first usable entry of `logsock a,b,c`: a unix socket must exist; the first one otherwise. */
function chooseDestination(list: string): Destination {
  const all = list.split(',').filter((s) => s !== '').map(parseDestination);
  if (all.length === 0) throw new Error('logging/syslog: logsock is empty');
  return all.find((d) => d.kind !== 'unix' || isSocket(d.path)) ?? all[0]!;
}

function parseDestination(text: string): Destination {
  const colon = text.indexOf(':');
  const type = (colon === -1 ? text : text.slice(0, colon)).toLowerCase();
  const rest = colon === -1 ? '' : text.slice(colon + 1);
  if (type === 'unix' || type === 'stream') return { kind: 'unix', path: rest || '/dev/log' };
  if (type === 'udp' || type === 'tcp') {
    let host = '127.0.0.1';
    let port = '514';
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
    if (bracketed) {
      host = bracketed[1]!;
      port = bracketed[2] ?? port;
    } else if (rest !== '') {
      const parts = rest.split(':');
      if (parts.length > 2) throw new Error(`logging/syslog: write an IPv6 address in brackets: ${type}:[::1]:514`);
      host = parts[0] || host;
      port = parts[1] ?? port;
    }
    const portNumber = Number(port);
    if (!/^\d+$/.test(port) || portNumber < 1 || portNumber > 65535) throw new Error(`logging/syslog: bad port in logsock "${text}"`);
    return { kind: type, host, port: portNumber };
  }
  throw new Error(`logging/syslog: logsock "${text}" is not supported here (unix[:PATH], stream[:PATH], udp[:HOST[:PORT]], tcp[:HOST[:PORT]])`);
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

function warn(pluginName: string, message: string): void {
  process.stderr.write(`${process.pid} ${pluginName}: ${message}\n`);
}

function truncate(text: string): Buffer {
  const data = Buffer.from(text, 'utf8');
  return data.length > MAX_MESSAGE_BYTES ? data.subarray(0, MAX_MESSAGE_BYTES) : data;
}

// ---- logger(1) for unix sockets and TCP ------------------------------------------------------

class LoggerTransport implements Transport {
  private child: ChildProcess | undefined;
  private startedAt = 0;
  private retryAt = 0;
  private retryMs = FIRST_RETRY_MS;
  private warned = false;
  private closed = false;
  private readonly args: string[];

  constructor(
    options: SyslogOptions,
    private readonly pluginName: string,
  ) {
    const d = options.destination;
    const where = d.kind === 'unix' ? ['--socket', d.path, '--socket-errors=on'] : ['--server', d.host, '--port', String(d.port), '--tcp'];
    const format = options.format ? [`--${options.format}`] : [];
    this.args = [...where, ...format, '--prio-prefix', '--tag', options.ident, `--id=${process.pid}`, '--size', String(MAX_MESSAGE_BYTES)];
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  send(priority: number, text: string): void {
    const stdin = (this.child ?? this.start())?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.writableLength > QUEUE_LIMIT_BYTES) {
      this.problem('logger does not keep up');
      return;
    }
    stdin.write(`<${priority}>${text.replace(/\0/g, '')}\n`);
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill(), 2000);
    await done;
    clearTimeout(timer);
  }

  private start(): ChildProcess | undefined {
    const now = Date.now();
    if (this.closed || now < this.retryAt) return undefined;
    let child: ChildProcess;
    try {
      child = spawn('logger', this.args, { stdio: ['pipe', 'ignore', 'pipe'] });
    } catch (err) {
      this.down(`cannot run logger: ${err instanceof Error ? err.message : String(err)}`, now);
      return undefined;
    }
    this.child = child;
    this.startedAt = now;
    let errors = '';
    let failure: string | undefined;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (errors.length < 500) errors += chunk;
    });
    child.on('error', (err) => {
      failure = `cannot run logger: ${err.message}`;
    });
    child.stdin?.on('error', () => undefined); // EPIPE after it exits: reported by 'close'
    child.on('close', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      const why = failure ?? `logger ${signal ? `was killed by ${signal}` : `exited with status ${code}`}${errors.trim() ? `: ${errors.trim()}` : ''}`;
      this.down(why, Date.now());
    });
    // Neither the process nor its pipes keep the daemon running.
    child.unref();
    for (const stream of [child.stdin, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
    return child;
  }

  /** The logger is gone: try again later, and say so once per outage. */
  private down(why: string, now: number): void {
    if (this.closed) return;
    if (this.startedAt > 0 && now - this.startedAt >= HEALTHY_MS) {
      // It worked for a while: this is a new outage.
      this.retryMs = FIRST_RETRY_MS;
      this.warned = false;
    }
    this.retryAt = now + this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS);
    this.problem(why);
  }

  private problem(why: string): void {
    if (this.warned) return;
    this.warned = true;
    warn(this.pluginName, `syslog unavailable (${why}); dropping log lines until it works again`);
  }
}

// ---- UDP -------------------------------------------------------------------------------------

class UdpTransport implements Transport {
  private socket: Socket | undefined;
  private address: string | undefined;
  private resolving = false;
  private retryAt = 0;
  private queue: Buffer[] = [];
  private warned = false;
  private readonly host: string;
  private readonly port: number;
  private readonly shortHost: string;
  private readonly fullHost: string;

  constructor(
    private readonly options: SyslogOptions,
    private readonly pluginName: string,
  ) {
    const d = options.destination as { host: string; port: number };
    this.host = d.host;
    this.port = d.port;
    this.fullHost = hostname() || '-';
    this.shortHost = this.fullHost.split('.')[0] || '-';
    if (isIP(this.host)) this.address = this.host;
  }

  send(priority: number, text: string): void {
    const datagram = truncate(this.frame(priority, text));
    if (this.address !== undefined) {
      this.transmit(datagram);
      return;
    }
    if (!this.resolving && Date.now() < this.retryAt) return;
    if (this.queue.length < 1000) this.queue.push(datagram);
    if (!this.resolving) this.resolve();
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    this.queue = [];
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  private frame(priority: number, text: string): string {
    const now = new Date();
    const pid = process.pid;
    if (this.options.format === 'rfc5424') {
      return `<${priority}>1 ${now.toISOString()} ${this.fullHost} ${this.options.ident} ${pid} - - ${text}`;
    }
    const stamp = `${MONTHS[now.getMonth()]} ${String(now.getDate()).padStart(2, ' ')} ${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
    return `<${priority}>${stamp} ${this.shortHost} ${this.options.ident}[${pid}]: ${text}`;
  }

  private resolve(): void {
    this.resolving = true;
    lookup(this.host, (err, address) => {
      this.resolving = false;
      const queued = this.queue;
      this.queue = [];
      if (err) {
        this.retryAt = Date.now() + DNS_RETRY_MS;
        this.problem(`cannot resolve ${this.host}: ${err.message}`);
        return;
      }
      this.address = address;
      for (const datagram of queued) this.transmit(datagram);
    });
  }

  private transmit(datagram: Buffer): void {
    const address = this.address!;
    if (this.socket === undefined) {
      const socket = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
      socket.on('error', (err) => this.problem(err.message));
      socket.unref();
      this.socket = socket;
    }
    this.socket.send(datagram, this.port, address, (err) => {
      if (err) this.problem(`cannot send to ${this.host}:${this.port}: ${err.message}`);
      else this.warned = false;
    });
  }

  private problem(why: string): void {
    if (this.warned) return;
    this.warned = true;
    warn(this.pluginName, `syslog unavailable (${why}); dropping log lines until it works again`);
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function two(n: number): string {
  return String(n).padStart(2, '0');
}
