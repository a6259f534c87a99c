/**
 * The real daemon as a process: a throw-away qpsmtpd folder (config/ + plugins/ + var/), `./bin/qpsmtpd`
 * spawned on it, the `listening on` line parsed for the ports, a minimal SMTP client over node:net,
 * and clean-up that kills whatever is left. Only the tests in test/transport/ and test/cli/ use it:
 * they are the only ones allowed to open sockets and spawn the daemon (and test/hardening/, which
 * proves the security guarantees against the real daemon over loopback). `bin/qpsmtpd` runs dist/:
 * `npm run build` first.
 */
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(PROJECT, 'bin', 'qpsmtpd');
export const SHIPPED_CONFIG = join(PROJECT, 'config');
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

if (!existsSync(join(PROJECT, 'dist', 'src', 'cli.js'))) {
  throw new Error('dist/ is missing: run `npm run build` before the daemon tests');
}

// ---- the qpsmtpd folder ------------------------------------------------------------------------

export interface RootOptions {
  /** Start from a copy of the shipped config/ folder. */
  readonly shipped?: boolean;
  /** config/ files: name to content (an array is one line per entry). Written after the copy. */
  readonly config?: Readonly<Record<string, string | readonly string[]>>;
  /** plugins/ files: `name.js` (or `.ts`, `dir/name.js`) to source. */
  readonly plugins?: Readonly<Record<string, string>>;
}

const roots = new Set<string>();

/** A temporary qpsmtpd folder; `loglevel` is 6 unless given (the listening line is LOGNOTICE). */
export function makeRoot(options: RootOptions = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'qpsmtpd-daemon-'));
  roots.add(root);
  mkdirSync(join(root, 'config'));
  mkdirSync(join(root, 'plugins'));
  mkdirSync(join(root, 'var'));
  if (options.shipped) cpSync(SHIPPED_CONFIG, join(root, 'config'), { recursive: true });
  const files: Record<string, string | readonly string[]> = { loglevel: '6', ...options.config };
  for (const [name, content] of Object.entries(files)) writeText(join(root, 'config', name), content);
  for (const [name, source] of Object.entries(options.plugins ?? {})) writeText(join(root, 'plugins', name), source);
  return root;
}

export function writeText(path: string, content: string | readonly string[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof content === 'string' ? content : content.join('\n') + '\n');
}

/** Messages delivered into a Maildir's new/ (file contents, oldest name first). */
export function maildirNew(maildir: string): string[] {
  const dir = join(maildir, 'new');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => readFileSync(join(dir, name), 'utf8'));
}

/** Names in a Maildir's tmp/ (a partial delivery would leave one). */
export function maildirTmp(maildir: string): string[] {
  const dir = join(maildir, 'tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
}

// ---- the daemon --------------------------------------------------------------------------------

export interface Listening {
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  /** An implicit-TLS listener (`--listen-tls`, port 465). */
  readonly implicitTls: boolean;
}

const LISTENING = /^(\d+) qpsmtpd \S+ listening on (.+)$/gm;

export interface SpawnDaemonOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly stdio?: StdioOptions;
  /** How many `listening on` lines (one per process serving) to wait for; default 1. */
  readonly listeners?: number;
  readonly timeoutMs?: number;
  /** stdout carries the SMTP session (--stdio): the Daemon does not read it. */
  readonly session?: boolean;
}

const daemons = new Set<Daemon>();

export class Daemon {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];

  constructor(
    readonly child: ChildProcess,
    session = false,
  ) {
    daemons.add(this);
    if (!session) {
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (s: string) => {
        this.stdout += s;
        this.poke();
      });
    }
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      this.stderr += s;
      this.poke();
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        daemons.delete(this);
        resolve({ code, signal });
        this.poke();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** Every `listening on` line so far: one per address and process. */
  listening(): Listening[] {
    const out: Listening[] = [];
    for (const m of this.stderr.matchAll(LISTENING)) {
      for (const spec of m[2]!.split(', ')) {
        const a = /^\[?(.*?)\]?:(\d+)( \(implicit TLS\))?$/.exec(spec.trim());
        if (a) out.push({ pid: Number(m[1]), host: a[1]!, port: Number(a[2]), implicitTls: a[3] !== undefined });
      }
    }
    return out;
  }

  /** The first port listened on. */
  get port(): number {
    const first = this.listening()[0];
    if (!first) throw new Error(`not listening yet; stderr:\n${this.stderr}`);
    return first.port;
  }

  /** Wait until `test` holds (re-checked on every output and exit, and every 50 ms). */
  async until<T>(test: () => T | undefined | false, what: string, timeoutMs = 8000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = test();
      if (value !== undefined && value !== false) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; exit ${this.exitCode ?? this.exitSignal}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 50));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  /** Wait for a line of stderr matching `re` (counting only text after `from`, an offset into stderr). */
  waitForLog(re: RegExp, from = 0, timeoutMs = 8000): Promise<RegExpExecArray> {
    return this.until(
      () => {
        const match = re.exec(this.stderr.slice(from));
        if (match) return match;
        if (!this.running) throw new Error(`the daemon exited (${this.exitCode ?? this.exitSignal}) without logging ${re}; stderr:\n${this.stderr}`);
        return undefined;
      },
      `a log line matching ${re}`,
      timeoutMs,
    );
  }

  /** The exit, or a rejection after `timeoutMs` (the process is then killed). */
  async waitExit(timeoutMs = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`the daemon did not exit within ${timeoutMs} ms; stderr:\n${this.stderr}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** SIGTERM and wait for the exit; SIGKILL if it does not come within `timeoutMs`. */
  async stop(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.kill(), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** SIGKILL the process and every child it has (cluster workers). */
  kill(): void {
    for (const pid of childPids(this.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (this.running) this.child.kill('SIGKILL');
  }

  private poke(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Spawn `node bin/qpsmtpd ARGS` (not waiting for anything). */
export function spawnDaemon(args: readonly string[], options: SpawnDaemonOptions = {}): Daemon {
  const spawnOptions: SpawnOptions = {
    cwd: PROJECT,
    env: { ...process.env, QPSMTPD_CONFIG: undefined, RELAYCLIENT: undefined, ...options.env },
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
  };
  return new Daemon(spawn(process.execPath, [BIN, ...args], spawnOptions), options.session);
}

/**
 * Start the daemon on `root` listening on 127.0.0.1:0 (unless `--listen` is in `extra`) and wait
 * for `listeners` listening lines.
 */
export async function startDaemon(root: string, extra: readonly string[] = [], options: SpawnDaemonOptions = {}): Promise<Daemon> {
  const args = ['--config', join(root, 'config'), ...(extra.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...extra];
  const daemon = spawnDaemon(args, options);
  const count = options.listeners ?? 1;
  await daemon.until(
    () => {
      if (!daemon.running) throw new Error(`the daemon exited (${daemon.exitCode ?? daemon.exitSignal}) before listening; stderr:\n${daemon.stderr}`);
      return new Set(daemon.listening().map((l) => l.pid)).size >= count;
    },
    `${count} listening line(s)`,
    options.timeoutMs ?? 10_000,
  );
  return daemon;
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `bin/qpsmtpd ARGS` to its end (killed after `timeoutMs`). */
export async function runCli(args: readonly string[], options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  const daemon = spawnDaemon(args, options.env ? { env: options.env } : {});
  const timer = setTimeout(() => daemon.kill(), options.timeoutMs ?? 10_000);
  const { code, signal } = await daemon.exited;
  clearTimeout(timer);
  // The pipes may still hold the last output after the exit event.
  await Promise.all([streamEnd(daemon.child.stdout), streamEnd(daemon.child.stderr)]);
  return { code, signal, stdout: daemon.stdout, stderr: daemon.stderr };
}

function streamEnd(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!stream || (stream as unknown as { readableEnded?: boolean }).readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
}

/** The pids whose parent is `pid` (from /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return out.sort((a, b) => a - b);
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Kill every daemon still running and remove every folder made; for `after` hooks. */
export async function cleanupAll(): Promise<void> {
  const left = [...daemons];
  for (const d of left) d.kill();
  await Promise.all(left.map((d) => d.exited));
  for (const c of clients) c.destroy();
  clients.clear();
  for (const root of roots) rmSync(root, { recursive: true, force: true });
  roots.clear();
}

/** Poll `test` until it is true (or a value), every `intervalMs`; throws after `timeoutMs`. */
export async function waitFor<T>(test: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 5000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await test();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---- a minimal SMTP client ---------------------------------------------------------------------

export interface Reply {
  readonly code: number;
  /** Text of each line, without code and separator. */
  readonly lines: string[];
  readonly text: string;
  readonly raw: string;
}

const clients = new Set<SmtpClient>();

export class SmtpClient {
  private buffer = '';
  private closedFlag = false;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  /** Over a socket (`input === output`) or a pair of streams (a child's stdout and stdin). */
  private constructor(
    readonly input: Readable,
    readonly output: Writable,
  ) {
    clients.add(this);
    input.setEncoding('latin1');
    input.on('data', (s: string) => {
      this.buffer += s;
      this.poke();
    });
    input.on('error', () => undefined);
    output.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      const closed = (): void => {
        this.closedFlag = true;
        clients.delete(this);
        resolve();
        this.poke();
      };
      input.on('end', closed);
      input.on('close', closed);
    });
  }

  /** A client over a child's stdout (replies) and stdin (commands). */
  static overStreams(input: Readable, output: Writable): SmtpClient {
    return new SmtpClient(input, output);
  }

  /** A client over a connected socket. */
  static overSocket(socket: Socket): SmtpClient {
    return new SmtpClient(socket, socket);
  }

  /** Connect; the greeting is not read. */
  static connect(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new SmtpClient(socket, socket));
      });
      socket.once('error', reject);
    });
  }

  /** Connect and read the greeting, which must be 220. */
  static async open(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    const client = await SmtpClient.connect(port, host);
    const greeting = await client.reply();
    if (greeting.code !== 220) throw new Error(`expected 220, got ${greeting.raw}`);
    return client;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** Raw bytes. */
  send(data: string | Buffer): void {
    this.output.write(data);
  }

  /** The next reply; rejects on timeout or when the connection closed without one. */
  async reply(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = this.parse();
      if (parsed) return parsed;
      if (this.closedFlag) throw new Error(`connection closed; no reply (unread: ${JSON.stringify(this.buffer)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (unread: ${JSON.stringify(this.buffer)})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  /** Send a line (CRLF added) and read the reply. */
  async command(line: string, timeoutMs?: number): Promise<Reply> {
    this.send(line + '\r\n');
    return this.reply(timeoutMs);
  }

  /** The next reply, or 'closed' if the server closed the connection without one. */
  async replyOrClose(timeoutMs = 5000): Promise<Reply | 'closed'> {
    try {
      return await this.reply(timeoutMs);
    } catch (err) {
      if (this.closedFlag && this.buffer === '') return 'closed';
      throw err;
    }
  }

  /** EHLO, MAIL, RCPT..., DATA, the message, the dot. Every step before the dot must succeed. */
  async sendMail(from: string, to: readonly string[], message: string): Promise<Reply> {
    await this.expect(`EHLO client.example.test`, 250);
    return this.mailTransaction(from, to, message);
  }

  /** MAIL, RCPT..., DATA, the message (LF made CRLF, dots stuffed), the dot. */
  async mailTransaction(from: string, to: readonly string[], message: string): Promise<Reply> {
    await this.expect(`MAIL FROM:<${from}>`, 250);
    for (const rcpt of to) await this.expect(`RCPT TO:<${rcpt}>`, 250);
    await this.expect('DATA', 354);
    this.send(toWire(message) + '.\r\n');
    return this.reply();
  }

  /** Send a command; the reply's code must be `code`. */
  async expect(line: string, code: number): Promise<Reply> {
    const reply = await this.command(line);
    if (reply.code !== code) throw new Error(`${line}: expected ${code}, got ${reply.raw}`);
    return reply;
  }

  /** QUIT (221 expected) and wait for the close. */
  async quit(): Promise<void> {
    await this.expect('QUIT', 221);
    await this.waitClosed();
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  destroy(): void {
    this.input.destroy();
    this.output.destroy();
  }

  /** Close our sending side (EOF for the server). */
  end(): void {
    this.output.end();
  }

  /** Destroy with a TCP reset (a socket only). */
  reset(): void {
    (this.input as Socket).resetAndDestroy();
  }

  private parse(): Reply | undefined {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', offset);
      if (end === -1) return undefined;
      const line = this.buffer.slice(offset, end);
      offset = end + 2;
      lines.push(line);
      if (line.length < 4 || line[3] === ' ') break;
    }
    const raw = this.buffer.slice(0, offset);
    this.buffer = this.buffer.slice(offset);
    const texts = lines.map((l) => l.slice(4));
    return { code: Number(lines[0]!.slice(0, 3)), lines: texts, text: texts.join('\n'), raw };
  }

  private poke(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Message text as sent after DATA: CRLF line ends, leading dots doubled. */
export function toWire(text: string): string {
  const crlf = text.replace(/\r?\n/g, '\r\n');
  return (crlf.endsWith('\r\n') ? crlf : crlf + '\r\n').replace(/^\./gm, '..');
}

/** A small message with the usual headers. */
export function message(subject: string, body = 'Hello.\n'): string {
  return `From: <sender@example.test>\nTo: <postmaster@localhost>\nSubject: ${subject}\nDate: ${new Date().toUTCString()}\n\n${body}`;
}

// ---- plugins for the daemon tests (plain .js: no TypeScript loader to wait for) ----------------

/** `deny_rcpt [TEXT]`: every recipient is refused with 550 TEXT. */
export const DENY_RCPT_JS = `import { Plugin, DENY } from 'qpsmtpd';
export default class DenyRcpt extends Plugin {
  register(_qp, ...words) { this.text = words.length ? words.join(' ') : 'denied by deny_rcpt'; }
  hook_rcpt() { return [DENY, this.text]; }
}
`;

/** `accept_all`: every recipient is accepted. */
export const ACCEPT_ALL_JS = `import { Plugin, OK } from 'qpsmtpd';
export default class AcceptAll extends Plugin {
  hook_rcpt() { return OK; }
}
`;

/**
 * `probe`: greets with `220 probe ESMTP pid=PID remote=IP:PORT local=IP:PORT` (which process, which
 * peer), and adds the same as an `X-Probe` header field to every message.
 */
export const PROBE_JS = `import { Plugin, DONE, DECLINED } from 'qpsmtpd';
function describe(c) { return 'pid=' + process.pid + ' remote=' + c.remoteIp + ':' + c.remotePort + ' local=' + c.localIp + ':' + c.localPort; }
export default class Probe extends Plugin {
  hook_connect() { this.qp.respond(220, 'probe ESMTP ' + describe(this.connection)); return DONE; }
  hook_data_post(tx) { tx.header.add('X-Probe', describe(this.connection)); return DECLINED; }
}
`;

/** The fields of a probe greeting or X-Probe value. */
export function parseProbe(text: string): { pid: number; remote: string; local: string } {
  const m = /pid=(\d+) remote=(\S+) local=(\S+)/.exec(text);
  if (!m) throw new Error(`not a probe line: ${text}`);
  return { pid: Number(m[1]), remote: m[2]!, local: m[3]! };
}

/**
 * Open a session (greeting read) served by worker `pid`: the other workers are stopped (SIGSTOP)
 * while connecting, so the kernel can hand the connection only to `pid`. Needs the `probe` plugin.
 */
export async function sessionOn(daemon: Daemon, pid: number, port: number): Promise<SmtpClient> {
  const others = childPids(daemon.pid).filter((p) => p !== pid);
  for (const p of others) process.kill(p, 'SIGSTOP');
  try {
    const client = await SmtpClient.connect(port);
    const greeting = await client.reply();
    if (greeting.code !== 220) throw new Error(`expected 220, got ${greeting.raw}`);
    const answered = parseProbe(greeting.text).pid;
    if (answered !== pid) throw new Error(`expected worker ${pid} to answer, got ${answered}`);
    return client;
  } finally {
    for (const p of others) process.kill(p, 'SIGCONT');
  }
}

