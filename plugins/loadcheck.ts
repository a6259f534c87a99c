/**
 * loadcheck: turn clients away, temporarily, while the machine is too busy (qpsmtpd's
 * `loadcheck`).
 *
 * On `connect` it compares the system's one-minute load average with `max_load`; above it the
 * client gets `450 4.7.1 Server load too high, please try again later.` and the connection is
 * closed. A load read is reused for `cache_time` seconds, by every session of this process.
 *
 * Arguments (pairs):
 *   max_load N      the highest load that is still served (default 7; fractions allowed)
 *   cache_time N    seconds a load value is reused (default 10; 0 reads it for every client)
 *   uptime PATH     accepted for qpsmtpd configs and ignored: the load comes from os.loadavg(),
 *                   which reads it from the kernel (/proc/loadavg on Linux), not from a program
 *   loglevel N      the usual log level adjustment
 * Config files: none. Hooks: connect.
 * Log: LOGERROR `local load too high: N` for each refusal; LOGDEBUG the load read.
 *
 * Differences from qpsmtpd, on purpose: `max_load 0` and `cache_time 0` mean zero (qpsmtpd's
 * `||=` turned them into the defaults); a max_load or cache_time that is no number stops the
 * plugin from loading. Where the system has no load average (Windows reports 0), nothing is
 * ever refused (qpsmtpd did not register the hook there).
 */
import { Plugin, DECLINED, DENYSOFT, LOGDEBUG, LOGERROR, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';
import { loadavg } from 'node:os';

export default class LoadCheck extends Plugin {
  private maxLoad = 7;
  private cacheMs = 10_000;
  /** Shared by every session: the last load read and when (ms since the epoch). */
  private readonly cache = { load: -1, at: -Infinity };

  register(_qp: PluginHost, ...args: string[]): void {
    if (args.length % 2 !== 0) throw new Error(`loadcheck: unrecognized/mismatched arguments "${args.join(' ')}": expected pairs such as "max_load 7"`);
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      switch (key) {
        case 'max_load':
          this.maxLoad = number(key, value);
          break;
        case 'cache_time':
          this.cacheMs = Math.max(0, number(key, value)) * 1000;
          break;
        case 'uptime':
          this.log(LOGDEBUG, `uptime ${value}: ignored, the load average comes from os.loadavg()`);
          break;
        case 'loglevel':
          break;
        default:
          this.log(LOGWARN, `ignoring unknown argument "${key} ${value}"`);
      }
    }
  }

  hook_connect(_tx: Transaction): HookResult {
    const now = Date.now();
    if (this.cacheMs === 0 || now - this.cache.at >= this.cacheMs) {
      this.cache.load = loadavg()[0] ?? 0;
      this.cache.at = now;
      this.log(LOGDEBUG, `os.loadavg reported: ${this.cache.load}`);
    }
    const load = this.cache.load;
    if (load > this.maxLoad) {
      this.log(LOGERROR, `local load too high: ${load}`);
      return [DENYSOFT, 'Server load too high, please try again later.'];
    }
    this.log(LOGDEBUG, `continuing with load: ${load}`);
    return DECLINED;
  }
}

function number(key: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`loadcheck: ${key} "${value}" is no number`);
  return n;
}
