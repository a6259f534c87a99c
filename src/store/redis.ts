/**
 * The shared store for several servers: Redis through node-redis. Counters and windows are Lua
 * scripts (atomic on the server); window times come from the Redis server's clock, so servers
 * whose clocks differ a little still count the same window.
 *
 * An outage never throws outside a call: the client reconnects in the background (every 100 ms
 * at first, then every 2 s), and while it is offline every call rejects at once with a
 * StoreError (no offline queue: a session must not wait for a server that is gone). Calls also
 * time out (`timeout`, default 1 s) and stop when the hook's signal fires.
 */
import { createClient } from 'redis';
import { abortedError, StoreError, wrapError, type Store, type StoreCallOptions, type WindowCount } from './store.ts';

export interface RedisStoreOptions {
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS). */
  readonly url: string;
  /** Per-call time limit in ms (default 1000). */
  readonly timeoutMs?: number;
  /** Prefix of every key (default `qpsmtpd:`), so that the database can be shared. */
  readonly prefix?: string;
  /** Connection trouble, for the log (called at most once per outage and once on recovery). */
  readonly onStatus?: (message: string) => void;
}

const INCR = `
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return value`;

// A sorted set of event times (score: server time in ms; member: unique). At most `limit` kept.
const HIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return {n, 0} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {n + 1, 1}`;

type Client = ReturnType<typeof createClient>;

let eventSequence = 0;

export class RedisStore implements Store {
  readonly description: string;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #onStatus: (message: string) => void;
  #offline = false;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.description = `redis ${hidePassword(options.url)}`;
    this.#prefix = options.prefix ?? 'qpsmtpd:';
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#onStatus = options.onStatus ?? (() => undefined);
    this.#client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      commandOptions: { timeout: this.#timeoutMs },
      socket: { connectTimeout: this.#timeoutMs, reconnectStrategy: (retries: number) => Math.min(100 * (retries + 1), 2000) },
    });
    // Without a listener an `error` event would end the process.
    this.#client.on('error', (err: unknown) => {
      if (this.#offline || this.#closed) return;
      this.#offline = true;
      this.#onStatus(`${this.description} unavailable: ${err instanceof Error ? err.message : String(err)}`);
    });
    this.#client.on('ready', () => {
      if (!this.#offline) return;
      this.#offline = false;
      this.#onStatus(`${this.description} available again`);
    });
    // The first connection keeps retrying in the background until Redis answers or close().
    this.#client.connect().catch(() => undefined);
  }

  get(key: string, options?: StoreCallOptions): Promise<string | undefined> {
    return this.#run('get', options, async (c) => (await c.get(this.#prefix + key)) ?? undefined);
  }

  set(key: string, value: string, ttlMs: number, options?: StoreCallOptions): Promise<void> {
    return this.#run('set', options, async (c) => {
      await c.set(this.#prefix + key, value, { expiration: { type: 'PX', value: Math.max(1, Math.ceil(ttlMs)) } });
    });
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.#run('delete', options, async (c) => {
      await c.del(this.#prefix + key);
    });
  }

  incr(key: string, by: number, ttlMs: number, options?: StoreCallOptions): Promise<number> {
    return this.#run('incr', options, async (c) => {
      const result = await c.eval(INCR, { keys: [this.#prefix + key], arguments: [String(Math.trunc(by)), String(Math.max(1, Math.ceil(ttlMs)))] });
      return Number(result);
    });
  }

  hit(key: string, windowMs: number, limit: number, options?: StoreCallOptions): Promise<WindowCount> {
    return this.#run('hit', options, async (c) => {
      const member = `${process.pid}.${Date.now()}.${++eventSequence}.${Math.random().toString(36).slice(2, 8)}`;
      const args = [String(Math.max(1, Math.ceil(windowMs))), String(limit), member];
      const result = (await c.eval(HIT, { keys: [this.#prefix + key], arguments: args })) as [number, number];
      return { count: Number(result[0]), allowed: Number(result[1]) === 1 };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // destroy(): no QUIT round trip, which would wait for a server that may be gone.
    this.#client.destroy();
  }

  async #run<T>(operation: string, options: StoreCallOptions | undefined, fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreError(`store ${operation} failed: the store is closed`);
    const signal = options?.signal;
    if (signal?.aborted === true) throw abortedError(signal);
    if (!this.#client.isReady) throw new StoreError(`store ${operation} failed: ${this.description} is not connected`);
    try {
      return await fn(signal === undefined ? this.#client : (this.#client.withAbortSignal(signal) as Client));
    } catch (err) {
      // The signal may have fired while the command was out (TypeScript still sees the check above).
      if (signal !== undefined && (signal as AbortSignal).aborted) throw abortedError(signal);
      throw wrapError(operation, err);
    }
  }
}

/** The URL with any password replaced, for logs. */
export function hidePassword(url: string): string {
  return url.replace(/^(\w+:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
