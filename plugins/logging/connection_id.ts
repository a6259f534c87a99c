/**
 * logging/connection_id: write log lines to stderr like logging/warn, but starting with the
 * connection id instead of the process id (qpsmtpd's demonstration plugin of the same name):
 *   7781.3 (rcpt) rcpt_ok: pass, relay client
 * Lines logged outside a session (start-up, reload) start with `???`, as in qpsmtpd.
 *
 * Arguments (config/logging):
 *   logging/connection_id                  lines at LOGWARN (4) and more severe
 *   logging/connection_id LEVEL            qpsmtpd's form: a number 0-7 or a name (LOGINFO, info ...)
 *   logging/connection_id loglevel LEVEL   the form the other logging plugins use
 *
 * Config files: none. Hooks: logging (always DECLINED, so the logging plugins after it see the
 * line too; its own lines are skipped). `logThreshold` is its level.
 *
 * Deliberate differences from qpsmtpd: qpsmtpd 1.00's plugin refused to load ("The connection ID
 * feature is currently unsupported"); this one works. Its lines have logging/warn's form
 * (`ID (hook) plugin: message`) rather than `ID plugin plugin: message`.
 */
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { LogLevel, PluginHost, Transaction } from 'qpsmtpd';

export default class ConnectionIdLogging extends Plugin {
  /** The highest level written. */
  level: LogLevel = LOGWARN;

  register(_qp: PluginHost, ...args: string[]): void {
    let text: string | undefined;
    if (args.length === 1) text = args[0];
    else if (args.length === 2 && args[0]!.toLowerCase() === 'loglevel') text = args[1];
    else if (args.length !== 0) throw new Error(`usage: logging/connection_id [LEVEL] or logging/connection_id loglevel LEVEL (got "${args.join(' ')}")`);
    if (text !== undefined) {
      const level = parseLogLevel(text);
      if (level === undefined) throw new Error(`unknown log level "${text}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
      this.level = level;
    }
    this.logThreshold = this.level;
  }

  hook_logging(_tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    if (level > this.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    const id = connectionId(this) ?? '???';
    process.stderr.write(`${id}${hook ? ` (${hook})` : ''}${plugin ? ` ${plugin}:` : ''} ${message.join(' ')}\n`);
    return DECLINED;
  }
}

/** The id of the connection the hook runs in; undefined outside a session (`this.qp` throws there). */
function connectionId(plugin: Plugin): string | undefined {
  try {
    return plugin.qp.connection.id;
  } catch {
    return undefined;
  }
}
