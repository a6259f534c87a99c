/**
 * logging/warn: write log lines to stderr, in exactly the form the core uses when no logging plugin
 * is loaded (`PID [transaction id] (hook) plugin: message`). Loading it (in config/logging) is how
 * to keep stderr logging next to another logging plugin, or to give stderr its own level: once any
 * logging plugin is loaded the core stops writing to stderr itself and `config/loglevel` no longer
 * applies to it.
 *
 * Arguments (config/logging):
 *   logging/warn                  lines at LOGWARN (4) and more severe
 *   logging/warn LEVEL            qpsmtpd's form: `logging/warn 6`, `logging/warn LOGINFO`
 *   logging/warn loglevel LEVEL   the form the other logging plugins use
 * LEVEL is a number 0-7 or a name: LOGINFO, INFO, info ... (see parseLogLevel).
 *
 * Config files: none.
 *
 * Hooks: `logging`. It always answers DECLINED, as qpsmtpd's does, so the logging plugins after it
 * see the line too. Lines logged by this plugin itself are skipped (qpsmtpd's rule).
 *
 * It sets `logThreshold` to its level, so the core does not even format lines above it.
 * process.stderr is synchronous for files and pipes on Linux, so nothing is lost on a stop.
 */
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { LogLevel, PluginHost, Transaction } from 'qpsmtpd';

export default class WarnLogging extends Plugin {
  /** The highest level written. */
  level: LogLevel = LOGWARN;

  register(_qp: PluginHost, ...args: string[]): void {
    let text: string | undefined;
    if (args.length === 1) text = args[0];
    else if (args.length === 2 && args[0]!.toLowerCase() === 'loglevel') text = args[1];
    else if (args.length !== 0) throw new Error(`usage: logging/warn [LEVEL] or logging/warn loglevel LEVEL (got "${args.join(' ')}")`);
    if (text !== undefined) {
      const level = parseLogLevel(text);
      if (level === undefined) throw new Error(`unknown log level "${text}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
      this.level = level;
    }
    this.logThreshold = this.level;
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    if (level > this.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    // The same shape as the core's stderr fallback (formatStderrLine): the id in brackets only
    // inside a session, where it is the current transaction's.
    const where = inSession(this) ? ` [${tx.id}]` : '';
    const hookPart = hook ? ` (${hook})` : '';
    const pluginPart = plugin ? ` ${plugin}:` : '';
    process.stderr.write(`${process.pid}${where}${hookPart}${pluginPart} ${message.join(' ')}\n`);
    return DECLINED;
  }
}

/** True inside an SMTP session; `this.qp` throws outside one (start-up, reload). */
function inSession(plugin: Plugin): boolean {
  try {
    return plugin.qp !== undefined;
  } catch {
    return false;
  }
}
