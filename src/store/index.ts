/** The state store for plugins (see store.ts): the interface, both back ends, the shared handle. */
export { StoreError } from './store.ts';
export type { Store, StoreCallOptions, WindowCount } from './store.ts';
export { SqliteStore } from './sqlite.ts';
export { RedisStore } from './redis.ts';
export type { RedisStoreOptions } from './redis.ts';
export { parseStoreConfig, DEFAULT_SQLITE_FILE } from './config.ts';
export type { StoreSpec } from './config.ts';
export { openStore, storeFailure, storeErrorPolicy, STORE_FAILURE_MESSAGE } from './shared.ts';
export type { StoreErrorPolicy } from './shared.ts';
