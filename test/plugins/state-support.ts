/**
 * Shared by the tests of the stateful plugins (greylisting, karma, limit): a test app whose
 * `config/store` is a SQLite file in its own folder (or a given Redis), and a look at that file.
 */
import { join } from 'node:path';
import { after, before } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { ENVELOPE_TEST_PLUGINS } from '../helpers/envelope-sessions.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';

export const STATE_FILE = 'var/state.sqlite';

export interface StateAppOptions {
  /** `config/store`; default `sqlite var/state.sqlite` in the app's folder. */
  readonly store?: string;
  readonly plugins?: Readonly<Record<string, string>>;
}

/** A test app on its own store (loglevel 7, the envelope test plugins); cleaned up after `fn`. */
export async function withStateApp(list: string[], config: Record<string, string | string[]>, fn: (t: TestApp) => Promise<void>, options: StateAppOptions = {}): Promise<void> {
  const t = await testApp({
    config: { plugins: list, loglevel: '7', store: options.store ?? `sqlite ${STATE_FILE}`, ...config },
    plugins: { ...ENVELOPE_TEST_PLUGINS, ...options.plugins },
  });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** A value of the app's SQLite store (opened for the look only). */
export async function stored(t: TestApp, key: string): Promise<string | undefined> {
  const store = new SqliteStore(join(t.root, STATE_FILE));
  try {
    return await store.get(key);
  } finally {
    await store.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A redis-server started before the tests of the current suite and stopped after them. */
export function redisForSuite(): () => RedisServer {
  let server: RedisServer | undefined;
  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.close();
  });
  return () => {
    if (server === undefined) throw new Error('the redis-server has not started');
    return server;
  };
}
