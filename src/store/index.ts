/** The state store for plugins (see store.ts): the interface, both back ends, the shared handle. */
export { StoreError } from './store.ts';
export type { Store, StoreCallOptions, WindowCount } from './store.ts';
// The back ends (sqlite.ts, redis.ts) are not re-exported: openStore loads the one configured.
export { parseStoreConfig, DEFAULT_SQLITE_FILE } from './config.ts';
export type { StoreSpec } from './config.ts';
export { openStore, storeFailure, storeErrorPolicy, STORE_FAILURE_MESSAGE } from './shared.ts';
export type { StoreErrorPolicy } from './shared.ts';
