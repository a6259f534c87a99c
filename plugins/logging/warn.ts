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
 *   format text|json              (with either form, before or after the level) json writes one
 *                                 JSON object per line, with the fields of logging/file's json:
 *                                 {"time", "level", "levelName", "host", "pid", "connection",
 *                                 "transaction", "hook", "plugin", "message"}. `time` is ISO 8601
 *                                 in UTC with milliseconds; connection, transaction, hook and
 *                                 plugin are null where there is none (outside a session: no ids).
 *                                 A multi-line message stays one line (JSON escapes the breaks).
 *                                 `format text` (the default) is the form above.
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
import { hostname } from 'node:os';
import { Plugin, DECLINED, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { Connection, LogLevel, PluginHost, Transaction } from 'qpsmtpd';

const LEVEL_NAMES = ['EMERG', 'ALERT', 'CRIT', 'ERROR', 'WARN', 'NOTICE', 'INFO', 'DEBUG'] as const;
const USAGE = 'usage: logging/warn [LEVEL] [format text|json], or logging/warn [loglevel LEVEL] [format text|json]';

export default class WarnLogging extends Plugin {
  /** The highest level written. */
  level: LogLevel = LOGWARN;
  /** One JSON object per line instead of the text form. */
  json = false;
  private readonly host = hostname();

  register(_qp: PluginHost, ...args: string[]): void {
    let text: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const word = args[i]!.toLowerCase();
      if (word === 'format' || word === 'loglevel') {
        const value = args[++i];
        if (value === undefined) throw new Error(`${USAGE} (got "${args.join(' ')}")`);
        if (word === 'loglevel') {
          if (text !== undefined) throw new Error(`${USAGE} (got "${args.join(' ')}")`);
          text = value;
          continue;
        }
        const format = value.toLowerCase();
        if (format !== 'json' && format !== 'text') throw new Error(`logging/warn: format is "text" or "json", not "${value}"`);
        this.json = format === 'json';
      } else if (text === undefined) {
        text = args[i];
      } else {
        throw new Error(`${USAGE} (got "${args.join(' ')}")`);
      }
    }
    if (text !== undefined) {
      const level = parseLogLevel(text);
      if (level === undefined) throw new Error(`unknown log level "${text}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
      this.level = level;
    }
    this.logThreshold = this.level;
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    if (level > this.level || (plugin !== '' && plugin === this.name)) return DECLINED;
    if (this.json) {
      const connection = connectionOf(this);
      const line = JSON.stringify({
        time: new Date().toISOString(),
        level,
        levelName: LEVEL_NAMES[level] ?? String(level),
        host: this.host,
        pid: process.pid,
        connection: connection?.id ?? null,
        transaction: connection ? tx.id : null,
        hook: hook || null,
        plugin: plugin || null,
        message: message.join(' '),
      });
      process.stderr.write(line + '\n');
      return DECLINED;
    }
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
  return connectionOf(plugin) !== undefined;
}

/** The connection of the session the hook runs in; undefined outside one. */
function connectionOf(plugin: Plugin): Connection | undefined {
  try {
    return plugin.qp.connection;
  } catch {
    return undefined;
  }
}
