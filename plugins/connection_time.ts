/**
 * connection_time: log how long each connection lasted (qpsmtpd's `connection_time`).
 *
 * The clock starts at `pre-connection` (or at `connect`, should pre-connection not have run) and
 * stops at `post-connection`, after the connection was closed; then one line is logged at LOGINFO:
 * the duration in seconds with three decimals, `1.234 s.`, tagged as every log line with the
 * connection's id.
 *
 * Arguments: `loglevel N|+N|-N` (the usual adjustment: `connection_time loglevel -1` logs at
 * LOGNOTICE), or qpsmtpd's older form, a single level (`connection_time 5`,
 * `connection_time LOGNOTICE`), the level of every line this plugin writes.
 * Config files: none. Hooks: pre-connection, connect, post-connection. Never refuses anything.
 */
import { Plugin, DECLINED, LOGDEBUG, LOGERROR, LOGINFO, parseLogLevel } from 'qpsmtpd';
import type { HookResult, LogLevel, PluginHost, Transaction } from 'qpsmtpd';
import { performance } from 'node:perf_hooks';

export default class ConnectionTime extends Plugin {
  /** qpsmtpd's single-argument form: every line at this level. */
  private level: LogLevel | undefined;
  /** When this session's connection started (performance.now()); kept per session. */
  private started: number | undefined;

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length === 1) {
      const level = parseLogLevel(args[0]);
      if (level === undefined) throw new Error(`connection_time: "${args[0]}" is no log level`);
      // qpsmtpd: a level of 0 counted as unset, hence LOGINFO.
      this.level = level === 0 ? LOGINFO : level;
    } else if (args.length % 2 !== 0) {
      this.log(LOGERROR, `invalid arguments "${args.join(' ')}"`);
    }
  }

  hook_pre_connection(_tx: Transaction): HookResult {
    this.start();
    return DECLINED;
  }

  hook_connect(_tx: Transaction): HookResult {
    if (this.started === undefined) this.start();
    return DECLINED;
  }

  hook_post_connection(_tx: Transaction): HookResult {
    if (this.started === undefined) {
      this.say(LOGERROR, 'Start time not set?!');
      return DECLINED;
    }
    const seconds = (performance.now() - this.started) / 1000;
    this.say(LOGINFO, `${seconds.toFixed(3)} s.`);
    return DECLINED;
  }

  private start(): void {
    // Written inside a hook, the field belongs to this session's view of the plugin.
    this.started = performance.now();
    this.say(LOGDEBUG, `started at ${(Date.now() / 1000).toFixed(6)}`);
  }

  private say(level: LogLevel, message: string): void {
    this.log(this.level ?? level, message);
  }
}
