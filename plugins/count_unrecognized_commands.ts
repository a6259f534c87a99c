/**
 * count_unrecognized_commands: disconnect a client that sends too many commands we do not know
 * (qpsmtpd's `count_unrecognized_commands`). Good against spam sent through open HTTP proxies,
 * whose clients send their HTTP request lines as SMTP commands.
 *
 * Every verb that reaches the `unrecognized_command` hook counts, for the whole connection (RSET
 * and new transactions do not reset it). Before the limit the plugin declines and the core answers
 * as usual (500 Unrecognized command; 502 for verbs we know but do not implement, such as EXPN);
 * on the Nth it answers DENY_DISCONNECT: `521 5.5.1 Closing connection, N unrecognized commands.
 * Perhaps you should read RFC 2821?` and the connection is closed.
 *
 * List it after plugins that add verbs on `unrecognized_command` (STARTTLS, XCLIENT, PROXY ...):
 * a verb another plugin handles (DONE) before this one runs is not counted.
 *
 * Arguments: N, the number of unrecognized commands that ends the connection (default 4; 0 or
 * empty also means 4, as in qpsmtpd). Further arguments are ignored with a warning (`loglevel N`
 * is the usual log level adjustment). An N that is no whole number stops the plugin from loading.
 * Connection note: `unrec_cmd_count`, the count so far.
 * Config files: none. Hooks: unrecognized_command.
 * Log (LOGINFO): `'verb', (count)` below the limit, `fail, 'verb' (count)` at it.
 */
import { Plugin, DECLINED, DENY_DISCONNECT, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_MAX = 4;

export default class CountUnrecognizedCommands extends Plugin {
  private max = DEFAULT_MAX;

  register(_qp: PluginHost, ...args: string[]): void {
    const own = withoutLogLevel(args);
    const [limit, ...extra] = own;
    if (limit !== undefined && limit !== '' && limit !== '0') {
      if (!/^\d+$/.test(limit)) throw new Error(`count_unrecognized_commands: "${limit}" is no number of commands`);
      this.max = Number(limit);
    }
    if (extra.length > 0) this.log(LOGWARN, `Ignoring additional arguments: ${extra.join(' ')}`);
  }

  hook_unrecognized_command(_tx: Transaction, verb: string): HookResult {
    const notes = this.connection.notes;
    const count = (Number(notes['unrec_cmd_count']) || 0) + 1;
    notes['unrec_cmd_count'] = count;
    if (count < this.max) {
      this.log(LOGINFO, `'${verb}', (${count})`);
      return DECLINED;
    }
    this.log(LOGINFO, `fail, '${verb}' (${count})`);
    return [DENY_DISCONNECT, `Closing connection, ${count} unrecognized commands. Perhaps you should read RFC 2821?`];
  }
}

/** The arguments without a `loglevel N` pair (the loader reads that one). */
function withoutLogLevel(args: readonly string[]): string[] {
  const at = args.indexOf('loglevel');
  return at === -1 ? [...args] : [...args.slice(0, at), ...args.slice(at + 2)];
}
