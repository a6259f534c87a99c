/**
 * user_config: per-user configuration from a folder per address, like the global config directory
 * (qpsmtpd's `user_config`). It serves the `user_config` hook, which `address.config(NAME)` runs
 * (for a sender or recipient: `tx.recipients[0].config('spamassassin_threshold')`) before the
 * `config` hook and the config directory.
 *
 * For address A and setting NAME it reads the file PATTERN/NAME, where PATTERN has
 *   %u  the local part,  %h  the domain,  %a  the whole address (local@domain)
 * replaced; when that file exists its lines are the values ([OK, lines]); otherwise the plugin
 * declines and the normal lookup goes on.
 *
 * Arguments (config/plugins):
 *   user_config [PATTERN]   default `/home/%u/.qpsmtpd`. A relative PATTERN starts from the
 *                           folder that holds the config dir. `loglevel N` may follow.
 *
 * The file format is the config directory's: one value per line, white space at both ends
 * trimmed, empty lines and lines starting with `#` skipped. `$include` is not followed (the files
 * belong to users).
 *
 * Safety: the address comes from the client. A substitution that holds `/`, a NUL, or is empty,
 * `.` or `..` is refused (the plugin declines), so `RCPT TO:<../../etc@x>` cannot reach files
 * outside the users' folders; so is a setting name that is not plain (`[\w.-]` words separated
 * by `/`, no `..`). Only regular files are read, at most 64 KiB each.
 *
 * The user_config hook is synchronous: files are read with synchronous calls, and what was read
 * (a file's values, or that it does not exist) is cached for a second, at most 1000 entries, so
 * a message to many recipients does not read the same files over and over, and edits still
 * apply within a second (as for the config directory).
 *
 * Config files: the per-user files. Hooks: user_config.
 *
 * Deliberate differences from qpsmtpd: qpsmtpd returned every line of the file as it was (comment
 * lines, blank lines and surrounding spaces included) and substituted the address unchecked, so
 * `../` in a local part walked out of the folder; it read the file anew on every lookup.
 */
import { closeSync, fstatSync, openSync, readSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Plugin, DECLINED, OK, LOGNOTICE } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_PATTERN = '/home/%u/.qpsmtpd';
const CACHE_MS = 1000;
const CACHE_MAX = 1000;
const MAX_FILE_BYTES = 64 * 1024;
const NAME = /^[\w.-]+(\/[\w.-]+)*$/;

interface Cached {
  /** The values, or null when there is no such file. */
  readonly values: readonly string[] | null;
  readonly at: number;
}

export default class UserConfig extends Plugin {
  pattern = DEFAULT_PATTERN;
  root = '';
  /** File path to what it held a moment ago; shared by all sessions. */
  readonly cache = new Map<string, Cached>();

  register(qp: PluginHost, ...args: string[]): void {
    const at = args.findIndex((a) => a.toLowerCase() === 'loglevel');
    const rest = at === -1 ? args : [...args.slice(0, at), ...args.slice(at + 2)];
    if (rest.length > 1) throw new Error(`user_config: one argument, the folder pattern (got "${rest.join(' ')}")`);
    if (rest[0] !== undefined && rest[0] !== '') this.pattern = rest[0];
    this.root = dirname(qp.configDir);
  }

  hook_user_config(_tx: Transaction, address: Address, name: string): HookResult<string | readonly string[]> {
    if (!NAME.test(name) || name.split('/').includes('..')) return DECLINED;
    const parts: Record<string, string> = { u: address.user, h: address.host, a: address.address };
    let unsafe = false;
    const folder = this.pattern.replace(/%([uha])/g, (_all, c: string) => {
      const value = parts[c] ?? '';
      if (value === '' || value === '.' || value === '..' || value.includes('/') || value.includes('\0')) unsafe = true;
      return value;
    });
    if (unsafe) return DECLINED;
    const file = resolve(this.root, folder, name);
    const values = this.read(file);
    return values === null ? DECLINED : [OK, values];
  }

  /** The values of a file (null: no such file), through the cache. */
  private read(file: string): readonly string[] | null {
    const now = Date.now();
    const cached = this.cache.get(file);
    if (cached !== undefined && now - cached.at < CACHE_MS) return cached.values;
    const values = this.readFile(file);
    this.cache.delete(file);
    if (this.cache.size >= CACHE_MAX) {
      // Drop what is stale; if that is not enough, the oldest entry.
      for (const [key, entry] of this.cache) if (now - entry.at >= CACHE_MS) this.cache.delete(key);
      if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(file, { values, at: now });
    return values;
  }

  private readFile(file: string): readonly string[] | null {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.log(LOGNOTICE, `Couldn't open ${file}: ${(err as Error).message}`);
      return null;
    }
    try {
      if (!fstatSync(fd).isFile()) return null;
      const buffer = Buffer.alloc(MAX_FILE_BYTES);
      let length = 0;
      while (length < buffer.length) {
        const n = readSync(fd, buffer, length, buffer.length - length, null);
        if (n === 0) break;
        length += n;
      }
      return buffer
        .subarray(0, length)
        .toString('utf8')
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'));
    } catch (err) {
      this.log(LOGNOTICE, `Couldn't read ${file}: ${(err as Error).message}`);
      return null;
    } finally {
      closeSync(fd);
    }
  }
}
