/**
 * The state store the stateful plugins share (greylisting, karma, limit): a small key-value store
 * with expiry, atomic counters and sliding-window counters, behind one interface with two back
 * ends: SQLite (one file, shared by the processes of one server) and Redis (shared by servers).
 *
 * Every operation is async and may fail (the Redis server is gone, the SQLite file is locked too
 * long): a failure rejects with a StoreError, which the plugins turn into a temporary failure or
 * a pass (see `storeFailure`). Keys and values are strings; time is in milliseconds.
 */

/** Options every call takes. */
export interface StoreCallOptions {
  /** Give up when this fires (a hook's `this.signal`): the call rejects with a StoreError. */
  readonly signal?: AbortSignal | undefined;
}

/** What `hit` found. */
export interface WindowCount {
  /** Events in the window, this one included when it was counted. */
  readonly count: number;
  /** True when the event was counted (the window held fewer than `limit`). */
  readonly allowed: boolean;
}

export interface Store {
  /** `sqlite /path/file` or `redis redis://host:port/db` (no password), for log lines. */
  readonly description: string;
  /** The value, or undefined when there is none or it expired. */
  get(key: string, options?: StoreCallOptions): Promise<string | undefined>;
  /** Set a value that expires `ttlMs` from now (replacing any value and expiry). */
  set(key: string, value: string, ttlMs: number, options?: StoreCallOptions): Promise<void>;
  delete(key: string, options?: StoreCallOptions): Promise<void>;
  /**
   * Add `by` (negative to subtract) to an integer counter, atomically across processes and
   * servers, and have it expire `ttlMs` after this change. A missing or expired counter starts
   * at 0. Returns the new value.
   */
  incr(key: string, by: number, ttlMs: number, options?: StoreCallOptions): Promise<number>;
  /**
   * A sliding-window counter: forget the events older than `windowMs`, then count one more event
   * now, unless `limit` are already in the window. Atomic across processes and servers; at most
   * `limit` events are kept per key.
   */
  hit(key: string, windowMs: number, limit: number, options?: StoreCallOptions): Promise<WindowCount>;
  /** Release the file or connection. Further calls reject. */
  close(): Promise<void>;
}

/** A store operation failed; `cause` holds the back end's error. */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** The error of an aborted call. */
export function abortedError(signal: AbortSignal): StoreError {
  const reason: unknown = signal.reason;
  return new StoreError(`store call aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
}

/** Any error from a back end as a StoreError naming the operation. */
export function wrapError(operation: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError(`store ${operation} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
