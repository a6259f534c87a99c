/**
 * The composition root: reads the config directory, loads the plugins into a registry, and runs a
 * Session for every connection a transport hands over. A reload (SIGHUP) builds a complete new
 * snapshot and swaps it in for new sessions only; running sessions keep the one they began with.
 * A failed reload keeps the old snapshot.
 */
import { mkdirSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigDir, spoolDirOf } from './config/config-dir.ts';
import { abortCall, beginCall, makeCallTarget } from './hooks/call-target.ts';
import type { Code } from './hooks/codes.ts';
import type { HookName } from './hooks/hook-map.ts';
import { HookRegistry, type PluginRecord } from './hooks/registry.ts';
import { HookRunner, type HookCallContext } from './hooks/runner.ts';
import { DEFAULT_LOGLEVEL, LOGERROR, LOGINFO, LOGWARN, parseLogLevel, type LogLevel } from './log/levels.ts';
import { formatLogParts, formatStderrLine, type LogRecord } from './log/logger.ts';
import { loadPlugins, type PluginClass } from './plugins/loader.ts';
import type { PluginHost } from './plugins/plugin.ts';
import { resolverFromConfig } from './dns/from-config.ts';
import type { DnsResolver } from './dns/resolver.ts';
import { formatProblem, parsePluginLines, type LoadProblem } from './plugins/plugins-file.ts';
import type { Conn } from './session/conn.ts';
import { Session, type LogSink } from './session/session.ts';
import type { SessionApi } from './session/session-api.ts';
import { CORE } from './session/responders.ts';
import { formatReply } from './protocol/reply.ts';
import { makeMemoryRelief } from './util/memory-relief.ts';
import { LiveList } from './util/live-list.ts';
import { Transaction } from './session/transaction.ts';

export interface AppOptions {
  readonly configDir: string;
  /** The daemon's environment, for plugins (RELAYCLIENT ...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly version: string;
  /** The folder of the bundled plugins. */
  readonly bundledPluginDir: string;
  /**
   * The TypeScript sources of the bundled plugins, when `bundledPluginDir` is their build: a
   * search path entry naming it (the shipped config's `plugins/` beside `config/`) uses the build.
   */
  readonly bundledSourceDir?: string;
  /** Where log lines go when no logging plugin is loaded. */
  readonly writeStderr?: (line: string) => void;
  /**
   * Plugin classes given directly (the test kit, `qpsmtpd/testing`): a `config/plugins` line whose
   * plugin name (without `:N`) is a key here loads this class instead of searching for a file.
   */
  readonly pluginClasses?: ReadonlyMap<string, PluginClass>;
  /** Sees every log line, whatever the level and wherever else it goes (the test kit's log capture). */
  readonly logTap?: (record: LogRecord) => void;
}

/** Loading failed: the problems, each naming its file and line. */
export class LoadFailure extends Error {
  constructor(readonly problems: readonly LoadProblem[]) {
    super(problems.map((p) => `${p.file}:${p.line}: ${p.plugin ? `plugin "${p.plugin}": ` : ''}${p.message}`).join('\n'));
    this.name = 'LoadFailure';
  }
}

const DEFAULT_PLUGIN_TIMEOUT_S = 30;
const REGISTER_TIMEOUT_MS = 30_000;

/** One consistent view of config and plugins. */
interface Snapshot {
  readonly config: ConfigDir;
  /** The resolver of this config's plugins (`this.dns`); its counters are logged when it retires. */
  readonly dns: DnsResolver;
  readonly registry: HookRegistry;
  readonly runner: HookRunner;
  readonly logSink: AppLogSink;
  readonly spoolDir: string;
}

interface Running {
  readonly session: Session;
  readonly conn: Conn & { destroy?: () => void };
  readonly snapshot: Snapshot;
}

const SHUTDOWN_TIMEOUT_MS = 5000;
const DEFAULT_MAX_CONNECTIONS = 1000;

export class App {
  private snapshot: Snapshot;
  /** A linked list, not a Set: see LiveList for what a Set's churn costs the garbage collector. */
  private readonly running = new LiveList<Running>();
  private readonly clients = new ClientCounter();
  private connectionCount = 0;
  private spoolCount = 0;
  private stopping = false;
  private readonly relieveMemory = makeMemoryRelief();
  /** Snapshots replaced by a reload whose sessions have not all ended yet. */
  private readonly retiring = new Set<Snapshot>();
  private dnsStatsTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: AppOptions,
    snapshot: Snapshot,
  ) {
    this.snapshot = snapshot;
    const every = Number(snapshot.config.value('dns_stats_interval') ?? 3600);
    if (Number.isFinite(every) && every > 0) {
      this.dnsStatsTimer = setInterval(() => logDnsStats(this.snapshot.dns, (level, message) => this.log(level, message)), every * 1000);
      this.dnsStatsTimer.unref();
    }
  }

  /** Load config and plugins; rejects with a LoadFailure listing every problem. */
  static async load(options: AppOptions): Promise<App> {
    return new App(options, await buildSnapshot(options));
  }

  get configDir(): ConfigDir {
    return this.snapshot.config;
  }

  get registry(): HookRegistry {
    return this.snapshot.registry;
  }

  /** Sessions in progress. */
  get activeSessions(): number {
    return this.running.size;
  }

  /** Reload config and plugins for new sessions. Returns the problems; on any, nothing changes. */
  async reload(): Promise<readonly LoadProblem[]> {
    try {
      const old = this.snapshot;
      this.snapshot = await buildSnapshot(this.options);
      this.log(LOGINFO, 'configuration and plugins reloaded');
      this.retiring.add(old);
      await this.retireIdle();
      return [];
    } catch (err) {
      const problems = err instanceof LoadFailure ? err.problems : [{ file: this.options.configDir, line: 0, message: String(err) }];
      for (const p of problems) this.log(LOGERROR, `reload failed, keeping the running configuration: ${formatProblem(p)}`);
      return problems;
    }
  }

  /**
   * Run one SMTP session on a connection. Resolves when it has ended; never rejects. `prepare`
   * sees the session before its first hook runs (the test kit sets connection facts there).
   */
  async handle(conn: Conn & { destroy?: () => void }, prepare?: (session: SessionApi) => void): Promise<void> {
    const snap = this.snapshot;
    // The limit of this process (each worker has its own with --workers): refused before any hook.
    // The limit per client is the session's: behind a trusted proxy it knows the client only later.
    const max = Number(snap.config.value('max_connections'));
    if (this.running.size >= (Number.isFinite(max) && max > 0 ? max : DEFAULT_MAX_CONNECTIONS)) {
      this.log(LOGINFO, `refused ${conn.endpoints.remoteIp}: ${this.running.size} connections in this process`);
      conn.write(formatReply(CORE.tooManyConnections()));
      await conn.close().catch(() => undefined);
      return;
    }
    const pid = process.pid;
    const session = new Session({
      id: `${pid}.${++this.connectionCount}`,
      conn,
      runner: snap.runner,
      configFiles: (name) => snap.config.list(name),
      logSink: snap.logSink,
      version: this.options.version,
      spoolDir: snap.spoolDir,
      spoolName: () => `${Date.now()}:${pid}:${++this.spoolCount}`,
      relieveMemory: this.relieveMemory,
      clients: this.clients,
    });
    const membership = this.running.add({ session, conn, snapshot: snap });
    if (this.stopping) session.stop();
    prepare?.(session);
    try {
      await session.run();
    } finally {
      membership.remove();
      if (this.retiring.has(snap)) await this.retireIdle();
    }
  }

  /** Shut down the plugins of replaced snapshots that no session uses any more. */
  private async retireIdle(): Promise<void> {
    for (const snap of this.retiring) {
      if ([...this.running].some((r) => r.snapshot === snap)) continue;
      this.retiring.delete(snap);
      await shutdownPlugins(snap, (level, message) => this.log(level, message));
    }
  }

  /** Stop (see `stop`), then let every plugin release what it holds (`shutdown()`). */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.dnsStatsTimer);
    await this.stop(graceMs);
    await this.retireIdle();
    await shutdownPlugins(this.snapshot, (level, message) => this.log(level, message));
  }

  /**
   * Graceful stop: every session finishes the command in progress (a message being received is
   * received and queued), then gets 421. After `graceMs` the remaining connections are cut.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const r of this.running) r.session.stop();
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) await delay(25);
    for (const r of this.running) r.conn.destroy?.();
    while (this.running.size > 0) await delay(10);
  }

  log(level: LogLevel, ...parts: unknown[]): void {
    const sink = this.snapshot.logSink;
    if (!sink.enabled(level)) return;
    sink.write({ level, hook: '', plugin: '', message: formatLogParts(parts) }, undefined);
  }
}

/** Sessions per client address in this process. */
class ClientCounter {
  private readonly counts = new Map<string, number>();

  add(ip: string): number {
    const n = (this.counts.get(ip) ?? 0) + 1;
    this.counts.set(ip, n);
    return n;
  }

  remove(ip: string): void {
    const n = (this.counts.get(ip) ?? 1) - 1;
    if (n <= 0) this.counts.delete(ip);
    else this.counts.set(ip, n);
  }
}

/** Call each plugin's `shutdown()` once, last loaded first, each within a time limit. */
function shutdownPlugins(snap: Snapshot, log: (level: LogLevel, message: string) => void): Promise<void> {
  logDnsStats(snap.dns, log);
  return shutdownRecords(snap.registry.plugins, log);
}

/**
 * The resolver's counters as one log line (LOGINFO), when it was used at all: at every reload and
 * stop, and every `dns_stats_interval` seconds (default 3600; 0: only then).
 */
function logDnsStats(dns: DnsResolver, log: (level: LogLevel, message: string) => void): void {
  const s = dns.stats();
  if (s.lookups === 0) return;
  const cached = Math.round((100 * s.cacheHits) / s.lookups);
  log(
    LOGINFO,
    `dns: ${s.lookups} lookups (${cached}% answered from the cache, ${s.joined} joined one in flight), ${s.queries} queries sent, ` +
      `${s.timeouts} timed out, ${s.failures} failed, ${s.cancelled} cancelled by their plugin`,
  );
}

async function shutdownRecords(records: readonly PluginRecord[], log: (level: LogLevel, message: string) => void): Promise<void> {
  for (const record of [...records].reverse()) {
    const plugin = record.instance as { shutdown?: () => unknown };
    if (typeof plugin.shutdown !== 'function') continue;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve(plugin.shutdown()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`did not finish within ${SHUTDOWN_TIMEOUT_MS / 1000} s`)), SHUTDOWN_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      log(LOGERROR, `plugin ${record.name}: shutdown() failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function buildSnapshot(options: AppOptions): Promise<Snapshot> {
  const problems: string[] = [];
  const configDir = resolve(options.configDir);
  const config = new ConfigDir(configDir, { me: [hostname()], timeout: ['1200'] }, (p) => problems.push(p));
  const writeStderr = options.writeStderr ?? ((line: string) => process.stderr.write(line + '\n'));

  const logging = parsePluginLines(config.entries('logging'));
  const plugins = parsePluginLines(config.entries('plugins'));
  const dns = resolverFromConfig(config);
  const lineProblems = [...logging.problems, ...plugins.problems, ...dns.problems];
  if (config.entries('plugins').length === 0) {
    lineProblems.push({ file: config.pathOf('plugins'), line: 0, message: 'no plugins configured: the file is missing or empty' });
  }

  const root = dirname(configDir);
  const searchDirs = [
    ...config.list('plugin_dirs').map((d) => resolve(root, d)),
    join(root, 'plugins'),
    options.bundledPluginDir,
  ]
    .map((d) => (options.bundledSourceDir !== undefined && d === resolve(options.bundledSourceDir) ? options.bundledPluginDir : d))
    .filter((d, i, all) => all.indexOf(d) === i);

  // Messages logged while plugins load go to stderr: the logging plugins are not ready yet.
  const threshold = parseLogLevel(config.value('loglevel')) ?? DEFAULT_LOGLEVEL;
  const tap = options.logTap;
  const bootLog = (level: LogLevel, hook: string, plugin: string, parts: readonly unknown[]): void => {
    if (level > threshold && tap === undefined) return;
    const record: LogRecord = { level, hook, plugin, message: formatLogParts(parts) };
    tap?.(record);
    if (level <= threshold) writeStderr(formatStderrLine(process.pid, record));
  };
  let sink: AppLogSink | undefined;
  const host: PluginHost = {
    configDir,
    env: options.env,
    version: options.version,
    config: (name) => config.value(name),
    configList: (name) => [...config.list(name)],
    configMap: (name) => config.map(name),
    dns: dns.resolver,
    logAs: (level, hook, plugin, parts) => (sink ? sink.writeParts(level, hook, plugin, parts) : bootLog(level, hook, plugin, parts)),
  };

  const timeouts = parsePluginTimeouts(config.list('plugin_timeout'));
  const loaded = await loadPlugins([...logging.specs, ...plugins.specs], {
    searchDirs,
    bundledDir: options.bundledPluginDir,
    host,
    timeoutFor: (name) => (timeouts.perPlugin.get(name) ?? timeouts.default) * 1000,
    registerTimeoutMs: REGISTER_TIMEOUT_MS,
    ...(options.pluginClasses ? { classes: options.pluginClasses } : {}),
  });
  const allProblems = [...lineProblems, ...loaded.problems];
  if (allProblems.length > 0) {
    // The plugins that did load are let go properly: they may have opened files or connections.
    await shutdownRecords(loaded.records, (level, message) => bootLog(level, '', '', [message]));
    throw new LoadFailure(allProblems);
  }

  const registry = new HookRegistry(loaded.records, loaded.entries);
  const runner = new HookRunner(registry);
  sink = new AppLogSink(runner, threshold, writeStderr, tap);
  for (const p of problems) sink.writeParts(LOGWARN, '', '', [`config: ${p}`]);

  const spoolDir = spoolDirOf(configDir, config.value('spool_dir'));
  mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
  return { config, dns: dns.resolver, registry, runner, logSink: sink, spoolDir };
}

/** `plugin_timeout`: a line with a number is the default (seconds); `NAME SECONDS` lines override it. */
function parsePluginTimeouts(lines: readonly string[]): { default: number; perPlugin: Map<string, number> } {
  let fallback = DEFAULT_PLUGIN_TIMEOUT_S;
  const perPlugin = new Map<string, number>();
  for (const line of lines) {
    const words = line.split(/\s+/);
    if (words.length === 1 && Number(words[0]) > 0) fallback = Number(words[0]);
    else if (words.length === 2 && Number(words[1]) > 0) perPlugin.set(words[0]!, Number(words[1]));
  }
  return { default: fallback, perPlugin };
}

/**
 * Log lines into the `logging` hook when logging plugins are loaded, else to stderr filtered by
 * `loglevel`. A logging plugin may declare `logThreshold` (the highest level it writes): messages
 * above every threshold are not even formatted.
 */
class AppLogSink implements LogSink {
  private readonly max: number;
  private readonly viaHook: boolean;
  private inHook = false;
  private readonly appContext: HookCallContext;

  constructor(
    private readonly runner: HookRunner,
    private readonly threshold: LogLevel,
    private readonly writeStderr: (line: string) => void,
    private readonly tap?: (record: LogRecord) => void,
  ) {
    const loggers = runner.registry.entries('logging');
    this.viaHook = loggers.length > 0;
    this.max = this.viaHook ? Math.max(...loggers.map((e) => thresholdOf(e.plugin))) : threshold;
    this.appContext = new AppCallContext(this);
  }

  enabled(level: LogLevel): boolean {
    return level <= this.max || this.tap !== undefined;
  }

  writeParts(level: LogLevel, hook: string, plugin: string, parts: readonly unknown[]): void {
    if (this.enabled(level)) this.write({ level, hook, plugin, message: formatLogParts(parts) }, undefined);
  }

  write(record: LogRecord, context: HookCallContext | undefined): void {
    if (this.tap) {
      this.tap(record);
      if (record.level > this.max) return;
    }
    if (!this.viaHook) {
      if (record.level <= this.threshold) this.writeStderr(formatStderrLine(process.pid, record));
      return;
    }
    // A logging plugin that logs would call itself: qpsmtpd drops those lines, and so do we.
    if (this.inHook) return;
    this.inHook = true;
    try {
      this.runner.runSync('logging', context ?? this.appContext, [record.level, record.hook, record.plugin, record.message]);
    } finally {
      this.inHook = false;
    }
  }
}

function thresholdOf(plugin: PluginRecord): number {
  const declared = (plugin.instance as { logThreshold?: unknown }).logThreshold;
  return typeof declared === 'number' ? declared : 7;
}

/** The context of hooks run outside any session (log lines at start-up and reload). */
class AppCallContext implements HookCallContext {
  readonly transaction = new Transaction('-', () => ({ threshold: 0, spoolDir: tmpdir(), spoolName: () => 'unused' }));
  private readonly views = new Map<object, object>();

  constructor(private readonly sink: AppLogSink) {}

  callTarget(plugin: PluginRecord, hook: HookName): object {
    let view = this.views.get(plugin.instance);
    if (view === undefined) {
      view = makeCallTarget(plugin.instance, undefined);
      this.views.set(plugin.instance, view);
    }
    beginCall(view, hook);
    return view;
  }

  abortCall(target: object): void {
    abortCall(target);
  }

  recordResult(_plugin: PluginRecord, _hook: HookName, _code: Code, _message: readonly string[] | undefined): void {}

  report(level: LogLevel, hook: string, plugin: string, message: string): void {
    this.sink.writeParts(level, hook, plugin, [message]);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
