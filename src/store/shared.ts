/**
 * One store per process, shared by the plugins that use it: `openStore(this)` in a plugin's
 * `register` returns a handle on the store `config/store` names (opened by the first plugin that
 * asks); the handle's `close()`, from the plugin's `shutdown`, lets go of it, and the last handle
 * closed closes the store. A reload's new plugins open their handles before the old plugins are
 * retired, so the store stays open across a reload (or moves, when `config/store` changed).
 *
 * And the policy for failures: `storeFailure` turns a store error into what the plugin answers,
 * a temporary failure (the default) or a pass (`store_error pass`), logged either way.
 */
import { ConfigDir } from '../config/config-dir.ts';
import { DECLINED, DENYSOFT, type Code } from '../hooks/codes.ts';
import { LOGERROR, LOGWARN, type LogLevel } from '../log/levels.ts';
import { SETUP, type Plugin } from '../plugins/plugin.ts';
import { parseStoreConfig, type StoreSpec } from './config.ts';
import { StoreError, type Store, type StoreCallOptions, type WindowCount } from './store.ts';

interface Opened {
  /** The back end, once its module is loaded and it is open. */
  readonly ready: Promise<Store>;
  users: number;
  /** Where connection trouble is logged: the plugin that opened a handle last. */
  log: (level: LogLevel, message: string) => void;
}

const opened = new Map<string, Opened>();

/**
 * A handle on the process's store for `plugin` (await it in `register`; `close()` it in
 * `shutdown`). A bad `config/store` rejects with an error naming the file and line. The back
 * end's module (better-sqlite3 or redis) is loaded only when a store is opened, so a daemon
 * without stateful plugins never loads either.
 */
export async function openStore(plugin: Plugin): Promise<Store> {
  const host = plugin[SETUP].host;
  const spec = parseStoreConfig(new ConfigDir(host.configDir).entries('store'), host.configDir, host.config('spool_dir'));
  const key = JSON.stringify(spec);
  const log = (level: LogLevel, message: string): void => plugin.log(level, message);
  let entry = opened.get(key);
  if (entry === undefined) {
    const fresh: Opened = { ready: createStore(spec, (message) => fresh.log(LOGWARN, message)), users: 0, log };
    opened.set(key, fresh);
    entry = fresh;
  }
  entry.users++;
  entry.log = log;
  let store: Store;
  try {
    store = await entry.ready;
  } catch (err) {
    if (--entry.users === 0 && opened.get(key) === entry) opened.delete(key);
    throw err;
  }
  return new StoreHandle(key, entry, store);
}

async function createStore(spec: StoreSpec, onStatus: (message: string) => void): Promise<Store> {
  if (spec.kind === 'sqlite') {
    const { SqliteStore } = await import('./sqlite.ts');
    return new SqliteStore(spec.path);
  }
  const { RedisStore } = await import('./redis.ts');
  return new RedisStore({ url: spec.url, timeoutMs: spec.timeoutMs, prefix: spec.prefix, onStatus });
}

/** A plugin's view of the shared store: the same calls; `close()` releases this handle only. */
class StoreHandle implements Store {
  #released = false;

  constructor(
    private readonly key: string,
    private readonly entry: Opened,
    private readonly store: Store,
  ) {}

  get description(): string {
    return this.store.description;
  }

  get(key: string, options?: StoreCallOptions): Promise<string | undefined> {
    return this.#live().get(key, options);
  }

  set(key: string, value: string, ttlMs: number, options?: StoreCallOptions): Promise<void> {
    return this.#live().set(key, value, ttlMs, options);
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.#live().delete(key, options);
  }

  incr(key: string, by: number, ttlMs: number, options?: StoreCallOptions): Promise<number> {
    return this.#live().incr(key, by, ttlMs, options);
  }

  hit(key: string, windowMs: number, limit: number, options?: StoreCallOptions): Promise<WindowCount> {
    return this.#live().hit(key, windowMs, limit, options);
  }

  async close(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (--this.entry.users > 0) return;
    if (opened.get(this.key) === this.entry) opened.delete(this.key);
    await this.store.close();
  }

  #live(): Store {
    if (this.#released) throw new StoreError('the store handle was closed');
    return this.store;
  }
}

/** What a plugin does when the store fails: `temp` (DENYSOFT, the default) or `pass`. */
export type StoreErrorPolicy = 'temp' | 'pass';

/** The `store_error` argument: temp (default) or pass; anything else is an error. */
export function storeErrorPolicy(plugin: Plugin, value: string | undefined): StoreErrorPolicy {
  if (value === undefined) return 'temp';
  const policy = value.toLowerCase();
  if (policy === 'temp' || policy === 'pass') return policy;
  throw new Error(`${plugin.name}: store_error "${value}": expected temp or pass`);
}

export const STORE_FAILURE_MESSAGE = '4.3.0 Temporary failure, please try again later';

/**
 * Log a store failure (LOGERROR) and answer by the policy: DENYSOFT with a 4.3.0 "try again
 * later" text, or DECLINED (the check is skipped). `what` says which check could not run.
 */
export function storeFailure(plugin: Plugin, err: unknown, policy: StoreErrorPolicy, what: string): Code | readonly [Code, string] {
  const reason = err instanceof Error ? err.message : String(err);
  if (policy === 'pass') {
    plugin.log(LOGERROR, `skip, ${what}: ${reason} (store_error pass)`);
    return DECLINED;
  }
  plugin.log(LOGERROR, `fail, ${what}: ${reason} (temporary failure)`);
  return [DENYSOFT, STORE_FAILURE_MESSAGE];
}
