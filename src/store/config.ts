/**
 * `config/store`: which back end the stateful plugins share. One line (later lines are an error):
 *
 *   sqlite [PATH]                      the default (also when the file is missing): one SQLite
 *                                      file; PATH relative to the folder that holds config/;
 *                                      default `SPOOL_DIR/qpsmtpd-state.sqlite` (the `spool_dir`
 *                                      setting: `var/spool` in the shipped config)
 *   redis URL [timeout MS] [prefix P]  a Redis server, `redis://[user:password@]host[:port][/db]`
 *                                      or `rediss://...`; each call gives up after MS
 *                                      milliseconds (default 1000); keys start with P
 *                                      (default `qpsmtpd:`)
 *
 * A mistake is an error naming the file and line, so the plugin (and the daemon) does not start.
 */
import { isAbsolute, join, resolve, dirname } from 'node:path';
import { spoolDirOf, type ConfigEntry } from '../config/config-dir.ts';

export type StoreSpec =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'redis'; readonly url: string; readonly timeoutMs: number; readonly prefix: string };

export const DEFAULT_SQLITE_FILE = 'qpsmtpd-state.sqlite';

/** Parse the entries of `config/store`; `spoolDir` is the `spool_dir` value (unresolved). */
export function parseStoreConfig(entries: readonly ConfigEntry[], configDir: string, spoolDir: string | undefined): StoreSpec {
  const first = entries[0];
  if (first === undefined) return { kind: 'sqlite', path: join(spoolDirOf(configDir, spoolDir), DEFAULT_SQLITE_FILE) };
  const where = `${first.file}:${first.line}`;
  const extra = entries[1];
  if (extra !== undefined) throw new Error(`${extra.file}:${extra.line}: store: one back end only ("${first.value}" is already configured)`);
  const [kind, ...words] = first.value.split(/\s+/);
  switch (kind?.toLowerCase()) {
    case 'sqlite': {
      if (words.length > 1) throw new Error(`${where}: store: expected "sqlite [PATH]", got "${first.value}"`);
      const path = words[0] === undefined ? join(spoolDirOf(configDir, spoolDir), DEFAULT_SQLITE_FILE) : resolvePath(configDir, words[0]);
      return { kind: 'sqlite', path };
    }
    case 'redis': {
      const url = words[0];
      if (url === undefined || !/^rediss?:\/\/[^/\s]+(\/\d+)?\/?$/.test(url)) {
        throw new Error(`${where}: store: expected "redis redis://host[:port][/db]", got "${first.value}"`);
      }
      let timeoutMs = 1000;
      let prefix = 'qpsmtpd:';
      for (let i = 1; i < words.length; i += 2) {
        const name = words[i]!.toLowerCase();
        const value = words[i + 1];
        if (name === 'timeout' && value !== undefined && /^\d+$/.test(value) && Number(value) > 0) timeoutMs = Number(value);
        else if (name === 'prefix' && value !== undefined) prefix = value;
        else throw new Error(`${where}: store: unknown or incomplete option "${words.slice(i, i + 2).join(' ')}" (expected "timeout MS" or "prefix P")`);
      }
      return { kind: 'redis', url, timeoutMs, prefix };
    }
    default:
      throw new Error(`${where}: store: unknown back end "${kind ?? ''}" (expected "sqlite [PATH]" or "redis URL")`);
  }
}

function resolvePath(configDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dirname(resolve(configDir)), path);
}
