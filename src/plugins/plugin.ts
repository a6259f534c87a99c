/**
 * The base class of every plugin: what `this` offers inside `register` and inside a hook.
 *
 * Inside a hook `this` is the plugin seen through the current session (see hooks/call-target.ts):
 * `this.qp`, `this.connection`, `this.transaction` and `this.signal` belong to that session and
 * call, while fields set in `register` are shared by all sessions.
 */
import { hookOf, sessionOf, signalOf } from '../hooks/call-target.ts';
import { toHookName, type HookName } from '../hooks/hook-map.ts';
import { clampLevel, parseLogLevel, type LogLevel } from '../log/levels.ts';
import type { ConfigMap } from '../config/config-dir.ts';
import type { Connection } from '../session/connection.ts';
import type { PluginLogTarget, SessionApi } from '../session/session-api.ts';
import type { Transaction } from '../session/transaction.ts';
import type { HookFunction, HookMethods } from './hook-methods.ts';
import type { DnsResolver } from '../dns/resolver.ts';

/** What `register(qp, ...args)` gets: the daemon, before any session. */
export interface PluginHost extends PluginLogTarget {
  /** First value of a config setting, or undefined. */
  config(name: string): string | undefined;
  /** All values of a config setting; `[]` when missing. */
  configList(name: string): string[];
  /** A map setting: `NAME.cdb` (qmail's constant database) when present, else the file NAME of `key [value]` lines. */
  configMap(name: string): ConfigMap;
  /** The config directory in use. */
  readonly configDir: string;
  /** The daemon's environment (RELAYCLIENT, TCPREMOTEIP, ...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The daemon's version. */
  readonly version: string;
  /** The daemon's DNS resolver (config `dns_servers`, `dns_timeout`, `dns_tries`): cached, with time limits. */
  readonly dns: DnsResolver;
}

export interface RegisterHookOptions {
  /** Run before the plugins already on this hook (qpsmtpd's `unshift`). */
  readonly first?: boolean;
}

/** A hook a plugin registered with `registerHook`. */
export interface HookRegistration {
  readonly hook: HookName;
  readonly fn: (...args: never[]) => unknown;
  readonly first: boolean;
}

/** Set by the loader on each instance. */
export interface PluginSetup {
  readonly name: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly host: PluginHost;
  readonly registrations: HookRegistration[];
  /** `loglevel N` (every message at N) or `loglevel +N`/`-N` (shifted) from the plugin's arguments. */
  readonly logLevel: { readonly absolute?: LogLevel; readonly shift: number };
  /** True while `register` runs; `registerHook` is refused afterwards. */
  registering: boolean;
}

export const SETUP: unique symbol = Symbol('qpsmtpd.plugin');

export interface Plugin extends HookMethods {
  /** Called once after loading, with the plugin's arguments from config/plugins. */
  register?(qp: PluginHost, ...args: string[]): void | Promise<void>;
  /**
   * Called once when this instance is retired: the daemon stops, or a reload replaced it and the
   * last session using it ended. Close files, sockets and timers here.
   */
  shutdown?(): void | Promise<void>;
  /**
   * For logging plugins: the highest level they write (-1: none). Lines above the threshold of
   * every logging plugin are not even formatted. Unset means "everything".
   */
  logThreshold?: number;
}

export class Plugin {
  declare [SETUP]: PluginSetup;

  /** The instance name from config/plugins (`queue/maildir`, `rcpt_map:1`). */
  get name(): string {
    return this[SETUP].name;
  }

  /** The plugin's arguments from config/plugins. */
  get args(): readonly string[] {
    return this[SETUP].args;
  }

  /** The session of the hook being run. Not available in `register` (use its `qp` argument). */
  get qp(): SessionApi {
    const session = sessionOf(this);
    if (session === undefined) {
      throw new Error(`plugin ${this.name}: this.qp is only available inside a hook; register() receives the daemon as its first argument`);
    }
    return session as SessionApi;
  }

  get connection(): Connection {
    return this.qp.connection;
  }

  get transaction(): Transaction {
    return this.qp.transaction;
  }

  /** Fires when the current hook call has run out of time: pass it to DNS lookups, sockets, timers. */
  get signal(): AbortSignal {
    return signalOf(this);
  }

  /**
   * The daemon's DNS resolver: `await this.dns.resolve(name, 'TXT', { signal: this.signal })`.
   * Answers are cached by their TTL; errors carry node:dns codes (ENOTFOUND and ENODATA mean
   * "no such record", anything else a temporary failure: see isNegativeAnswer).
   */
  get dns(): DnsResolver {
    return this[SETUP].host.dns;
  }

  /** The daemon's environment. */
  get env(): Readonly<Record<string, string | undefined>> {
    return this[SETUP].host.env;
  }

  /** Attach a method (by name) or a function to a hook; only from `register`. */
  registerHook<H extends HookName>(hook: H, handler: string | HookFunction<H>, options: RegisterHookOptions = {}): void {
    const setup = this[SETUP];
    if (!setup.registering) throw new Error(`plugin ${setup.name}: registerHook('${hook}') must be called from register()`);
    const name = toHookName(hook);
    if (name === undefined) throw new Error(`unknown hook "${hook}"`);
    const fn = typeof handler === 'string' ? (this as unknown as Record<string, unknown>)[handler] : handler;
    if (typeof fn !== 'function') throw new Error(`registerHook('${hook}', '${String(handler)}'): no such method`);
    setup.registrations.push({ hook: name, fn: fn as (...args: never[]) => unknown, first: options.first === true });
  }

  /** First value of a config setting (through the `config` hook inside a session). */
  config(name: string): string | undefined {
    return this.configList(name)[0];
  }

  /** All values of a config setting, `[]` when missing. */
  configList(name: string): string[] {
    const session = sessionOf(this) as SessionApi | undefined;
    return session ? session.configList(name) : this[SETUP].host.configList(name);
  }

  /** A map setting (morercpthosts, morerelayclients ...): `NAME.cdb` when present, else the plain file. */
  configMap(name: string): ConfigMap {
    return this[SETUP].host.configMap(name);
  }

  /** Log through the `logging` hook, tagged with this plugin's name and the current hook. */
  log(level: LogLevel, ...parts: unknown[]): void {
    const setup = this[SETUP];
    const adjust = setup.logLevel;
    const effective = adjust.absolute ?? (adjust.shift === 0 ? level : clampLevel(level + adjust.shift));
    const target = (sessionOf(this) as PluginLogTarget | undefined) ?? setup.host;
    target.logAs(effective, hookOf(this) ?? '', setup.name, parts);
  }
}

/** Read `loglevel N|+N|-N` from a plugin's arguments (qpsmtpd's adjust_log_level). */
export function logLevelFromArgs(args: readonly string[]): { absolute?: LogLevel; shift: number } {
  const at = args.indexOf('loglevel');
  const value = at === -1 ? undefined : args[at + 1];
  if (value === undefined) return { shift: 0 };
  if (/^[+-]\d$/.test(value)) return { shift: Number(value) };
  const absolute = parseLogLevel(value);
  return absolute === undefined ? { shift: 0 } : { absolute, shift: 0 };
}
