/**
 * logging/transaction_id: write log lines to stderr like logging/warn, but starting with the
 * transaction id instead of the process id (qpsmtpd's demonstration plugin of the same name):
 *   7781.3.2 (rcpt) rcpt_ok: pass, relay client
 * The id is the current transaction's (`CONNECTION.N`: a new one at every MAIL, RSET and after
 * each message; between messages the empty transaction's). Lines logged outside a session
 * (start-up, reload) start with `???`, as in qpsmtpd.
 *
 * Arguments (config/logging):
 *   logging/transaction_id                  lines at LOGWARN (4) and more severe
 *   logging/transaction_id LEVEL            qpsmtpd's form: a number 0-7 or a name (LOGINFO, info ...)
 *   logging/transaction_id loglevel LEVEL   the form the other logging plugins use
 *
 * Config files: none. Hooks: logging (always DECLINED, so the logging plugins after it see the
 * line too; its own lines are skipped). `logThreshold` is its level.
 *
 * Deliberate differences from qpsmtpd: qpsmtpd 1.00's plugin refused to load ("The transaction ID
 * feature is currently unsupported"); this one works. Its lines have logging/warn's form
 * (`ID (hook) plugin: message`) rather than `ID plugin plugin: message`.
 */
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { LogLevel, PluginHost, Transaction } from 'qpsmtpd';

export default class TransactionIdLogging extends Plugin {
  /** The highest level written. */
  level: LogLevel = LOGWARN;

  register(_qp: PluginHost, ...args: string[]): void {
    let text: string | undefined;
    if (args.length === 1) text = args[0];
    else if (args.length === 2 && args[0]!.toLowerCase() === 'loglevel') text = args[1];
    else if (args.length !== 0) throw new Error(`usage: logging/transaction_id [LEVEL] or logging/transaction_id loglevel LEVEL (got "${args.join(' ')}")`);
    if (text !== undefined) {
      const level = parseLogLevel(text);
      if (level === undefined) throw new Error(`unknown log level "${text}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
      this.level = level;
    }
    this.logThreshold = this.level;
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    if (level > this.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    // Outside a session the transaction is a placeholder: no id to show.
    const id = inSession(this) ? tx.id : '???';
    process.stderr.write(`${id}${hook ? ` (${hook})` : ''}${plugin ? ` ${plugin}:` : ''} ${message.join(' ')}\n`);
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
