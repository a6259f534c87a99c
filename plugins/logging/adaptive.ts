/**
 * logging/adaptive: log in detail what was rejected, and briefly, marked, what was accepted
 * (qpsmtpd's logging/adaptive).
 *
 * Two levels, as in qpsmtpd's code:
 *   - every line at the `reject` level or more severe is written to stderr at once, in the core's
 *     stderr form: `PID [transaction id] (hook) plugin: message`;
 *   - the lines at the `accept` level or more severe are also kept for the transaction. When the
 *     transaction ends (reset_transaction: after the queue step, at RSET, at the next MAIL, at the
 *     end of the session) without any plugin having refused anything in it (the `deny` hook), they
 *     are written again, marked with the prefix right after the PID:
 *     `PID ` [transaction id] (hook) plugin: message`. When something was refused they are dropped:
 *     the detailed lines are already in the log.
 * The lines of the session before the first MAIL (connect, HELO ...) count as a transaction of their
 * own, as they did in qpsmtpd. So a log filter can split the stream: lines with the prefix are the
 * accepted mail, the others the full detail (qpsmtpd's multilog recipe works unchanged:
 *   multilog t n10 '-*` *' ./main/detailed '-*' '+*` *' ./main/accepted).
 *
 * Arguments (config/logging; pairs):
 *   accept LEVEL   the level of the lines replayed for accepted transactions; default LOGERROR (3).
 *   reject LEVEL   the level of the lines written at once; default LOGWARN (4).
 *   prefix TEXT    the mark of the replayed lines; default "`" (a backquote).
 * LEVEL is a number 0-7 or a name (LOGINFO, INFO, info ...). Bad arguments are load errors.
 *
 * At most 1000 lines are kept per transaction (then a note of how many were left out).
 *
 * Config files: none. Hooks: logging (always DECLINED, so other logging plugins see every line;
 * its own lines are skipped), deny, reset_transaction, disconnect. `logThreshold` is the higher of
 * the two levels.
 *
 * Deliberate differences from qpsmtpd:
 *   - qpsmtpd's "refused" flag, once set by any denial, stayed set in the process for good (in
 *     practice for the rest of the connection), so no later transaction was ever replayed; here it
 *     belongs to the transaction.
 *   - qpsmtpd kept a line for replay only when it was also within the reject level; here the two
 *     levels are independent (`accept 6 reject 4` replays LOGINFO lines of accepted mail).
 *   - Lines have the core's stderr form (with the transaction id) instead of qpsmtpd's
 *     `PID plugin plugin: message`; the prefix still follows the PID.
 *   - The lines since the last transaction are replayed at disconnect too (qpsmtpd did that
 *     through its reset at disconnect).
 */
import { Plugin, DECLINED, LOGERROR, LOGWARN, parseLogLevel } from 'qpsmtpd';
import type { Connection, LogLevel, PluginHost, Transaction } from 'qpsmtpd';

const MAX_KEPT = 1000;

interface Kept {
  readonly txId: string;
  readonly hook: string;
  readonly plugin: string;
  readonly message: string;
}

interface ConnectionState {
  lines: Kept[];
  dropped: number;
  denied: boolean;
}

/** Everything mutable: fields written inside a hook would land in one session's view. */
interface AdaptiveState {
  accept: LogLevel;
  reject: LogLevel;
  prefix: string;
  readonly connections: WeakMap<Connection, ConnectionState>;
}

export default class AdaptiveLogging extends Plugin {
  private state: AdaptiveState = { accept: LOGERROR, reject: LOGWARN, prefix: '`', connections: new WeakMap() };

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) throw new Error(`usage: logging/adaptive [accept LEVEL] [reject LEVEL] [prefix TEXT] (got "${args.join(' ')}")`);
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!.toLowerCase();
      const value = args[i + 1]!;
      if (key === 'accept' || key === 'reject') {
        const level = parseLogLevel(value);
        if (level === undefined) throw new Error(`logging/adaptive: unknown log level "${value}" (use 0-7 or LOGDEBUG ... LOGEMERG)`);
        this.state[key] = level;
      } else if (key === 'prefix') {
        this.state.prefix = value;
      } else {
        throw new Error(`logging/adaptive: unknown argument "${args[i]}" (accept, reject, prefix)`);
      }
    }
    this.logThreshold = Math.max(this.state.accept, this.state.reject);
  }

  hook_logging(tx: Transaction, level: LogLevel, hook: string, plugin: string, ...message: string[]) {
    if (plugin !== '' && plugin === this.name) return DECLINED;
    const { accept, reject } = this.state;
    const connection = connectionOf(this);
    const text = message.join(' ');
    const txId = connection ? tx.id : undefined;
    if (level <= reject) write(format('', txId, hook, plugin, text));
    if (level <= accept && connection) {
      const kept = this.stateOf(connection);
      if (kept.lines.length < MAX_KEPT) kept.lines.push({ txId: tx.id, hook, plugin, message: text });
      else kept.dropped++;
    }
    return DECLINED;
  }

  hook_deny() {
    const connection = connectionOf(this);
    if (connection) this.stateOf(connection).denied = true;
    return DECLINED;
  }

  hook_reset_transaction() {
    this.endOfTransaction();
    return DECLINED;
  }

  hook_disconnect() {
    this.endOfTransaction();
    return DECLINED;
  }

  /** Replay the kept lines when nothing was refused, and start over. */
  private endOfTransaction(): void {
    const connection = connectionOf(this);
    if (!connection) return;
    const kept = this.stateOf(connection);
    if (!kept.denied && kept.lines.length > 0) {
      const prefix = this.state.prefix;
      let out = '';
      for (const line of kept.lines) out += format(prefix, line.txId, line.hook, line.plugin, line.message);
      if (kept.dropped > 0) out += format(prefix, kept.lines[0]!.txId, '', this.name, `(${kept.dropped} more lines left out)`);
      write(out);
    }
    kept.lines = [];
    kept.dropped = 0;
    kept.denied = false;
  }

  private stateOf(connection: Connection): ConnectionState {
    let kept = this.state.connections.get(connection);
    if (kept === undefined) {
      kept = { lines: [], dropped: 0, denied: false };
      this.state.connections.set(connection, kept);
    }
    return kept;
  }
}

/** `PID[ PREFIX][ [txid]][ (hook)][ plugin:] message`, newline-terminated. */
function format(prefix: string, txId: string | undefined, hook: string, plugin: string, message: string): string {
  const mark = prefix === '' ? '' : ` ${prefix}`;
  const where = txId !== undefined ? ` [${txId}]` : '';
  const hookPart = hook ? ` (${hook})` : '';
  const pluginPart = plugin ? ` ${plugin}:` : '';
  return `${process.pid}${mark}${where}${hookPart}${pluginPart} ${message}\n`;
}

function write(text: string): void {
  process.stderr.write(text);
}

/** The connection of the session the hook runs in; undefined outside one (`this.qp` throws there). */
function connectionOf(plugin: Plugin): Connection | undefined {
  try {
    return plugin.qp.connection;
  } catch {
    return undefined;
  }
}
