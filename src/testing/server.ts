/**
 * The test server: a qpsmtpd App on a throw-away qpsmtpd folder (config/, plugins/, spool/), with
 * sessions on TestConns instead of sockets. Config files come from an object literal (or a copy of
 * a real config directory), plugins from files or from classes given directly.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from '../app.ts';
import { ConfigDir } from '../config/config-dir.ts';
import { DECLINED, OK } from '../hooks/codes.ts';
import type { HookName } from '../hooks/hook-map.ts';
import type { LogLevel } from '../log/levels.ts';
import type { LogRecord } from '../log/logger.ts';
import type { Header } from '../message/header.ts';
import type { PluginClass } from '../plugins/loader.ts';
import { Plugin } from '../plugins/plugin.ts';
import type { Connection, Endpoints, TlsInfo } from '../session/connection.ts';
import type { SessionApi } from '../session/session-api.ts';
import type { Transaction } from '../session/transaction.ts';
import { TEST_TLS, TestConn } from './conn.ts';
import { TestSession } from './session.ts';

export type { PluginClass };

/**
 * A plugin for the test server: a `config/plugins` line (`'rcpt_ok'`, `'earlytalker wait 1'`), a
 * plugin class (its name: the class name in snake_case, `RejectHans` -> `reject_hans`), or a class
 * with the name and arguments to give it.
 */
export type PluginEntry = string | PluginClass | { readonly plugin: PluginClass; readonly name?: string; readonly args?: readonly string[] };

/** A config file's content: a string as it is, an array one line per entry, a number as one line. */
export type ConfigValue = string | number | readonly (string | number)[];

export interface TestServerOptions {
  /** `config/plugins`, in order. Without it: `config.plugins`, or the copied config directory's. */
  readonly plugins?: readonly PluginEntry[];
  /** Config files, name to content; written over the copy of `configDir`, if any. */
  readonly config?: Readonly<Record<string, ConfigValue>>;
  /** Run this config directory (it is copied; the copy's `plugin_dirs` and the `plugins/` beside it point at the originals). */
  readonly configDir?: string;
  /** Folders to find plugins in, searched first (`config/plugin_dirs`). */
  readonly pluginDirs?: readonly string[];
  /** Plugin sources for the `plugins/` folder beside the throw-away config dir: `name.ts` to source. */
  readonly pluginFiles?: Readonly<Record<string, string>>;
  /** The daemon's environment as plugins see it (RELAYCLIENT ...); default `{}`, not the test's own. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * The kit's capturing queue, which keeps each message in `server.queued` and answers 250:
   * `auto` (default) when no other plugin serves the `queue` hook, `always` in front of any queue
   * plugin (which then never runs), `off` never (without a queue plugin a message gets 451).
   */
  readonly queue?: 'auto' | 'always' | 'off';
  /** Accept every recipient no plugin decided on (a stand-in for `rcpt_ok`, last on `rcpt`). Default false. */
  readonly acceptAllRecipients?: boolean;
  /** How long `reply()` and `command()` wait for a reply, in ms (default 5000). */
  readonly replyTimeoutMs?: number;
  /** Keep the log lines in `server.logs` (default true). */
  readonly captureLogs?: boolean;
  /** The version the greeting and the Received header name (default: this qpsmtpd's). */
  readonly version?: string;
}

/** Connection facts: where the client is, and what it has already achieved. */
export interface ConnectOptions extends Partial<Endpoints> {
  /** The client may relay, as if `relay` had said so (`connection.relayClient`). */
  readonly relayClient?: boolean;
  /** The link is encrypted from the start (true: TLSv1.3; or the TlsInfo to report). */
  readonly tls?: boolean | TlsInfo;
  /** The client has authenticated: a user name, or the user and mechanism (PLAIN by default). Makes it a relay client, as AUTH does. */
  readonly auth?: string | { readonly user: string; readonly mechanism?: string };
  /** Connection notes set before the first hook (`{ whitelisthost: 1 }`). */
  readonly notes?: Readonly<Record<string, unknown>>;
  /** STARTTLS can work: the `tls` plugin's handshake is simulated and succeeds at once. */
  readonly canStartTls?: boolean;
}

/** A message the capturing queue took. */
export interface QueuedMessage {
  /** The envelope sender, `user@host` (`''` for the null sender). */
  readonly sender: string;
  /** The envelope recipients, `user@host`. */
  readonly recipients: readonly string[];
  /** The message as it was queued (Received header and all), CRLF line ends. */
  readonly message: string;
  /** The same as bytes. */
  readonly raw: Buffer;
  /** The header block as it was queued. */
  readonly header: Header;
  /** The body, after the empty line. */
  readonly body: string;
  /** A copy of the transaction notes at queue time. */
  readonly notes: Readonly<Record<string, unknown>>;
  /** The transaction id, also in the reply text. */
  readonly id: string;
}

/** A log line, whatever its level (the `loglevel` setting does not filter these). */
export interface LogEntry {
  readonly level: LogLevel;
  /** The hook being run, `''` outside any. */
  readonly hook: string;
  /** The plugin that logged, `''` for the core. */
  readonly plugin: string;
  readonly message: string;
  readonly connectionId?: string;
  readonly transactionId?: string;
  /** `(hook) plugin: message`, as stderr would show it without the pid. */
  readonly text: string;
}

/** The kit's own plugins, under names no bundled plugin has. */
export const CAPTURE_QUEUE_NAME = 'testing/capture_queue';
export const ACCEPT_ALL_NAME = 'testing/accept_all';

const PLUGIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:\/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*(?::\d+)?$/;

/** Where this module runs from: the sources (`src/testing`) or the build (`dist/src/testing`). */
const FROM_BUILD = import.meta.url.endsWith('.js');
const BUNDLED_PLUGINS = fileURLToPath(new URL('../../plugins/', import.meta.url));

let cachedVersion: string | undefined;
function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = '0.0.0';
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'qpsmtpd' && pkg.version) {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // not at this level
    }
  }
  return cachedVersion;
}

/** `RejectHans` to `reject_hans`, `HTTPConfig` to `http_config`. */
export function pluginNameOf(cls: PluginClass): string {
  return cls.name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

function lines(value: ConfigValue): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return `${value}\n`;
  return value.map(String).join('\n') + '\n';
}

function writeText(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

/** A test server. Close it when done (`await server.close()`), or its folder stays behind. */
export async function testServer(options: TestServerOptions = {}): Promise<TestServer> {
  const root = mkdtempSync(join(tmpdir(), 'qpsmtpd-test-'));
  try {
    return await TestServer.create(root, options);
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

export class TestServer {
  /** Messages the capturing queue took, oldest first. */
  readonly queued: QueuedMessage[] = [];
  /** Every log line, whatever the level (empty with `captureLogs: false`). */
  readonly logs: LogEntry[];
  /** The lines the daemon would have written to stderr: log lines up to `loglevel` while no logging plugin is loaded. */
  readonly stderr: string[];
  readonly replyTimeoutMs: number;
  private readonly queueMode: 'auto' | 'always' | 'off';
  private captureActive = true;
  private closed = false;

  private constructor(
    /** The throw-away qpsmtpd folder: `config/`, `plugins/`, `spool/`. */
    readonly root: string,
    /** The App underneath: the project's own tests reach `reload()`, `registry`, `log()` through it. */
    readonly app: App,
    settings: { queueMode: 'auto' | 'always' | 'off'; replyTimeoutMs: number; logs: LogEntry[]; stderr: string[] },
  ) {
    this.queueMode = settings.queueMode;
    this.replyTimeoutMs = settings.replyTimeoutMs;
    this.logs = settings.logs;
    this.stderr = settings.stderr;
    this.checkCapture();
  }

  /** @internal Use `testServer()`. */
  static async create(root: string, options: TestServerOptions): Promise<TestServer> {
    const configDir = join(root, 'config');
    const files: Record<string, ConfigValue> = { me: 'mx.example.test', spool_dir: join(root, 'spool') };
    const ownDirs = (options.pluginDirs ?? []).map((d) => resolve(d));
    let originalDirs: string[] = [];
    if (options.configDir !== undefined) {
      const source = resolve(options.configDir);
      cpSync(source, configDir, { recursive: true, dereference: true });
      const original = new ConfigDir(source);
      if (original.value('me') !== undefined) delete files['me'];
      // Plugins are found where the original config finds them.
      const originalRoot = dirname(source);
      originalDirs = [...original.list('plugin_dirs').map((d) => resolve(originalRoot, d)), join(originalRoot, 'plugins')];
    }
    Object.assign(files, options.config ?? {});
    if (ownDirs.length > 0 || originalDirs.length > 0) {
      const given = options.config?.['plugin_dirs'];
      // Relative entries are relative to the folder that holds the config directory, as in the daemon.
      const configured =
        given === undefined
          ? originalDirs
          : lines(given)
              .split('\n')
              .map((l) => l.trim())
              .filter((l) => l !== '' && !l.startsWith('#'))
              .map((d) => resolve(root, d));
      files['plugin_dirs'] = [...ownDirs, ...configured];
    }

    // The plugin list: classes get names and go into the loader's class map.
    const classes = new Map<string, PluginClass>();
    const queueMode = options.queue ?? 'auto';
    let pluginLines: string[] | undefined;
    if (options.plugins !== undefined) {
      pluginLines = options.plugins.map((entry, i) => {
        if (typeof entry === 'string') return entry;
        const { plugin, name, args } = typeof entry === 'function' ? { plugin: entry, name: undefined, args: undefined } : entry;
        const instance = name ?? (pluginNameOf(plugin) || `plugin_${i}`);
        if (!PLUGIN_NAME.test(instance)) throw new TypeError(`testServer: "${instance}" cannot be a plugin name (letters, digits, _ - . /, and :N); give the class a name`);
        const module = instance.replace(/:\d+$/, '');
        const known = classes.get(module);
        if (known !== undefined && known !== plugin) throw new TypeError(`testServer: two different classes named "${module}"`);
        classes.set(module, plugin);
        return [instance, ...(args ?? [])].join(' ');
      });
    }
    const extra: string[] = [];
    let store: TestServer | undefined;
    if (options.acceptAllRecipients) {
      classes.set(ACCEPT_ALL_NAME, AcceptAll);
      extra.push(ACCEPT_ALL_NAME);
    }
    if (queueMode !== 'off') {
      classes.set(CAPTURE_QUEUE_NAME, captureQueue(() => store, queueMode === 'always'));
      extra.push(CAPTURE_QUEUE_NAME);
    }
    if (pluginLines !== undefined || extra.length > 0) {
      const base = pluginLines ?? (files['plugins'] !== undefined ? lines(files['plugins']).split('\n') : readLines(join(configDir, 'plugins')));
      files['plugins'] = [...base.filter((l) => l.trim() !== ''), ...extra];
    }

    for (const [name, content] of Object.entries(files)) writeText(join(configDir, name), lines(content));
    for (const [name, source] of Object.entries(options.pluginFiles ?? {})) writeText(join(root, 'plugins', name), source);

    const logs: LogEntry[] = [];
    const stderr: string[] = [];
    const app = await App.load({
      configDir,
      env: options.env ?? {},
      version: options.version ?? packageVersion(),
      bundledPluginDir: BUNDLED_PLUGINS,
      ...(FROM_BUILD ? { bundledSourceDir: fileURLToPath(new URL('../../../plugins/', import.meta.url)) } : {}),
      writeStderr: (line) => stderr.push(line),
      pluginClasses: classes,
      ...(options.captureLogs === false ? {} : { logTap: (record: LogRecord) => logs.push(logEntry(record)) }),
    });
    const server = new TestServer(root, app, { queueMode, replyTimeoutMs: options.replyTimeoutMs ?? 5000, logs, stderr });
    store = server;
    return server;
  }

  /** The throw-away config directory. */
  get configDir(): string {
    return join(this.root, 'config');
  }

  /** Each hook with its plugins, in the order they run (what `qpsmtpd check` prints). */
  hooks(): { hook: HookName; plugins: string[] }[] {
    return this.app.registry.describe();
  }

  /**
   * Start a session and read its first reply into `session.greeting` (a 220, or whatever a
   * connection plugin answered instead).
   */
  async connect(options: ConnectOptions = {}): Promise<TestSession> {
    const session = this.open(options);
    await session.reply();
    return session;
  }

  /** Start a session without reading anything: for clients that talk first (early talkers). */
  open(options: ConnectOptions = {}): TestSession {
    if (this.closed) throw new Error('this test server is closed');
    const { relayClient, tls, auth, notes, canStartTls, ...endpoints } = options;
    const conn = new TestConn(endpoints, { canStartTls: canStartTls === true });
    let api: SessionApi | undefined;
    const ended = this.app.handle(conn, (session) => {
      api = session;
      applyFacts(session.connection, { relayClient, tls, auth, notes });
    });
    const session = new TestSession(
      conn,
      ended,
      () => {
        if (api === undefined) throw new Error('the session was refused before it started (max_connections)');
        return api;
      },
      this,
    );
    return session;
  }

  /** Write (or replace) a config file. The daemon re-reads files at most once a second; `reload()` makes it at once. */
  writeConfig(name: string, content: ConfigValue): void {
    writeText(join(this.configDir, name), lines(content));
  }

  /** Reload config and plugins, as SIGHUP does; rejects with the problems when that fails. */
  async reload(): Promise<void> {
    const problems = await this.app.reload();
    if (problems.length > 0) throw new Error(`reload failed:\n${problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n')}`);
    this.checkCapture();
  }

  /** Log lines that match: a substring or a pattern of the message, and optionally the plugin. */
  logged(match: string | RegExp, plugin?: string): LogEntry[] {
    return this.logs.filter(
      (l) => (plugin === undefined || l.plugin === plugin) && (typeof match === 'string' ? l.message.includes(match) : match.test(l.message)),
    );
  }

  /** End every session still open (421), let the plugins shut down, and remove the folder. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.app.close(0);
    } finally {
      rmSync(this.root, { recursive: true, force: true });
    }
  }

  /** `auto`: the capturing queue stands back when some other plugin serves `queue`. */
  private checkCapture(): void {
    this.captureActive = this.queueMode === 'always' || this.app.registry.entries('queue').every((e) => e.plugin.name === CAPTURE_QUEUE_NAME);
  }

  /** @internal The capturing queue's view of the server. */
  captureTakes(): boolean {
    return this.captureActive;
  }
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n');
  } catch {
    return [];
  }
}

function logEntry(record: LogRecord): LogEntry {
  const hook = record.hook ? `(${record.hook}) ` : '';
  const plugin = record.plugin ? `${record.plugin}: ` : '';
  return { ...record, text: `${hook}${plugin}${record.message}` };
}

function applyFacts(c: Connection, facts: Pick<ConnectOptions, 'relayClient' | 'tls' | 'auth' | 'notes'>): void {
  if (facts.notes) Object.assign(c.notes, facts.notes);
  if (facts.tls) c.tls = facts.tls === true ? TEST_TLS : facts.tls;
  if (facts.relayClient !== undefined) c.relayClient = facts.relayClient;
  if (facts.auth !== undefined) {
    const { user, mechanism } = typeof facts.auth === 'string' ? { user: facts.auth, mechanism: undefined } : facts.auth;
    c.authUser = user;
    c.authMechanism = (mechanism ?? 'PLAIN').toUpperCase();
    c.relayClient = true;
  }
}

/** `testing/accept_all`: OK for every recipient that reaches it. */
class AcceptAll extends Plugin {
  hook_rcpt(): typeof OK {
    return OK;
  }
}

/** `testing/capture_queue`: keeps the message in the server's `queued` and answers OK. */
function captureQueue(server: () => TestServer | undefined, first: boolean): PluginClass {
  return class CaptureQueue extends Plugin {
    register(): void {
      this.registerHook('queue', this.capture, { first });
    }

    async capture(tx: Transaction): Promise<typeof DECLINED | readonly [typeof OK, string]> {
      const target = server();
      if (target === undefined || !target.captureTakes()) return DECLINED;
      const chunks: Buffer[] = [];
      for await (const chunk of tx.bodyStream()) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      const message = raw.toString('utf8');
      const split = message.indexOf('\r\n\r\n');
      target.queued.push({
        sender: tx.sender?.address ?? '',
        recipients: tx.recipients.map((r) => r.address),
        message,
        raw,
        header: tx.header,
        body: split === -1 ? '' : message.slice(split + 4),
        notes: { ...tx.notes },
        id: tx.id,
      });
      return [OK, `Queued (test capture ${tx.id})`];
    }
  };
}
