/** What a plugin reaches as `this.qp` inside a hook: the SMTP session, without its machinery. */
import type { Message } from '../hooks/hook-map.ts';
import type { LogLevel } from '../log/levels.ts';
import type { Connection } from './connection.ts';
import type { Transaction } from './transaction.ts';

export interface SessionApi {
  readonly connection: Connection;
  /** The current transaction (a fresh, empty one between messages). */
  readonly transaction: Transaction;
  /** This server's name (`config/me`). */
  readonly me: string;
  /** The daemon's version, as in the greeting. */
  readonly version: string;
  /**
   * Write a reply now (message: string, `\n` for several lines, or an array of lines); used with
   * DONE. An enhanced status code is added unless the message starts with one.
   */
  respond(code: number, message: Message): void;
  /** First value of a config setting (the `config` hook, then the config directory, then the default). */
  config(name: string): string | undefined;
  /** All values of a config setting, `[]` when it is not set. */
  configList(name: string): string[];
  /** Log a line tagged with the session (plugins use `this.log`, which adds their name). */
  log(level: LogLevel, ...parts: unknown[]): void;
  /** End the session once the current command has been answered. */
  disconnect(): void;
  /**
   * True as soon as the client sends anything, false if it stays silent for `ms` milliseconds.
   * The bytes are not consumed (the early-talker check).
   */
  waitForInput(ms: number): Promise<boolean>;
  /** True when this connection can be turned into TLS now (TCP, not yet TLS). */
  readonly canStartTls: boolean;
  /**
   * Turn the connection into TLS (what the `tls` plugin does for STARTTLS and implicit TLS).
   * `reply` (e.g. `220 Ready to start TLS`) is sent first; then everything the client sent before
   * the handshake is thrown away, and after it the session starts over: the client must greet
   * again (RFC 3207 §4.2). Resolves false when the handshake failed (the connection is then closed).
   * `options` go to node:tls as the server's (secureContext, SNICallback ...).
   */
  startTls(options: object, reply?: { code: number; message: Message }): Promise<boolean>;
}

/** How plugin-tagged log lines reach a session or the daemon. */
export interface PluginLogTarget {
  logAs(level: LogLevel, hook: string, plugin: string, parts: readonly unknown[]): void;
}
