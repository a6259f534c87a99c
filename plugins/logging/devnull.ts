/**
 * logging/devnull: throw every log line away. Loading a logging plugin turns off the core's own
 * stderr logging, and this one writes nothing, so the daemon is silent.
 *
 * Arguments: none. Config files: none.
 *
 * Hooks: `logging`. It sets `logThreshold = -1` ("I write no level"), so when it is the only logging
 * plugin the core drops every line before formatting it and the hook is never even called. Next to
 * other logging plugins it answers DECLINED, as qpsmtpd's devnull does: a devnull listed before
 * logging/file must not silence the file (OK would stop the `logging` chain there).
 */
import { Plugin, DECLINED } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';

export default class DevNullLogging extends Plugin {
  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length > 0) throw new Error(`logging/devnull takes no arguments (got "${args.join(' ')}")`);
    this.logThreshold = -1;
  }

  hook_logging() {
    return DECLINED;
  }
}
