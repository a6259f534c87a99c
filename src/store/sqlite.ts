/**
 * The embedded store: one SQLite file through better-sqlite3, in WAL mode with a busy timeout so
 * that the processes of `--workers` (each with its own connection) share it safely. Calls are
 * synchronous underneath (small indexed statements, well under a millisecond) and wrapped as
 * promises; the read-modify-write operations run in IMMEDIATE transactions, which take the write
 * lock first and so are atomic across processes.
 *
 * Expired rows are ignored by every read and deleted once a minute (and when the store opens).
 *
 * A sliding window (`hit`) keeps one row per event, and beside them the number of rows per key in
 * `event_counts`, kept in the same transactions: a check costs the same whether the window holds
 * ten events or a million (counting the rows would grow with them).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { abortedError, StoreError, wrapError, type Store, type StoreCallOptions, type WindowCount } from './store.ts';

/** How long a process waits for another one's write lock before the call fails. */
const BUSY_TIMEOUT_MS = 5000;
const PRUNE_EVERY_MS = 60_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, at INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_key_at ON events (key, at);
CREATE INDEX IF NOT EXISTS events_expires ON events (expires);
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires);
`;

/** Added after the first release: a store file from before gets it filled from its events. */
const COUNTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS event_counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
`;

export class SqliteStore implements Store {
  readonly description: string;
  readonly #db: Database.Database;
  readonly #timer: NodeJS.Timeout;
  readonly #get: Database.Statement<[string, number], { value: string }>;
  readonly #set: Database.Statement<[string, string, number]>;
  readonly #delete: Database.Statement<[string]>;
  readonly #incr: (key: string, by: number, expires: number, now: number) => number;
  readonly #hit: (key: string, now: number, windowMs: number, limit: number) => WindowCount;
  #closed = false;

  constructor(readonly path: string) {
    this.description = `sqlite ${path}`;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.#db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = NORMAL');
      this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#db.exec(SCHEMA);
      const db = this.#db;
      db.transaction(() => {
        const had = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_counts'").get() !== undefined;
        db.exec(COUNTS_SCHEMA);
        if (!had) db.exec('INSERT INTO event_counts (key, n) SELECT key, count(*) FROM events GROUP BY key');
      }).immediate();
    } catch (err) {
      throw new StoreError(`cannot open the store ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const db = this.#db;
    this.#get = db.prepare('SELECT value FROM kv WHERE key = ? AND expires > ?');
    this.#set = db.prepare('INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires');
    this.#delete = db.prepare('DELETE FROM kv WHERE key = ?');

    const current = db.prepare<[string, number], { value: string }>('SELECT value FROM kv WHERE key = ? AND expires > ?');
    const incr = db.transaction((key: string, by: number, expires: number, now: number): number => {
      const row = current.get(key, now);
      const value = (row === undefined ? 0 : Number.parseInt(row.value, 10) || 0) + by;
      this.#set.run(key, String(value), expires);
      return value;
    });
    this.#incr = (key, by, expires, now) => incr.immediate(key, by, expires, now);

    const forget = db.prepare<[string, number]>('DELETE FROM events WHERE key = ? AND at <= ?');
    const count = db.prepare<[string], { n: number }>('SELECT n FROM event_counts WHERE key = ?');
    const setCount = db.prepare<[string, number]>('INSERT INTO event_counts (key, n) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET n = excluded.n');
    const add = db.prepare<[string, number, number]>('INSERT INTO events (key, at, expires) VALUES (?, ?, ?)');
    const hit = db.transaction((key: string, now: number, windowMs: number, limit: number): WindowCount => {
      const forgotten = forget.run(key, now - windowMs).changes;
      const before = count.get(key)?.n ?? 0;
      const n = Math.max(0, before - forgotten);
      if (n >= limit) {
        if (n !== before) setCount.run(key, n);
        return { count: n, allowed: false };
      }
      add.run(key, now, now + windowMs);
      setCount.run(key, n + 1);
      return { count: n + 1, allowed: true };
    });
    this.#hit = (key, now, windowMs, limit) => hit.immediate(key, now, windowMs, limit);

    const pruneKv = db.prepare<[number]>('DELETE FROM kv WHERE expires <= ?');
    const pruneEvents = db.prepare<[number], { key: string }>('DELETE FROM events WHERE expires <= ? RETURNING key');
    const lowerCount = db.prepare<[number, string]>('UPDATE event_counts SET n = n - ? WHERE key = ?');
    const dropEmpty = db.prepare('DELETE FROM event_counts WHERE n <= 0');
    const pruneWindows = db.transaction((now: number) => {
      const gone = new Map<string, number>();
      for (const { key } of pruneEvents.all(now)) gone.set(key, (gone.get(key) ?? 0) + 1);
      for (const [key, n] of gone) lowerCount.run(n, key);
      if (gone.size > 0) dropEmpty.run();
    });
    const prune = (): void => {
      try {
        const now = Date.now();
        pruneKv.run(now);
        pruneWindows.immediate(now);
      } catch {
        // Busy: another process is pruning or writing; the next round will do it.
      }
    };
    prune();
    this.#timer = setInterval(prune, PRUNE_EVERY_MS);
    this.#timer.unref();
  }

  get(key: string, options?: StoreCallOptions): Promise<string | undefined> {
    return this.#run('get', options, () => this.#get.get(key, Date.now())?.value);
  }

  set(key: string, value: string, ttlMs: number, options?: StoreCallOptions): Promise<void> {
    return this.#run('set', options, () => {
      this.#set.run(key, value, Date.now() + ttlMs);
    });
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.#run('delete', options, () => {
      this.#delete.run(key);
    });
  }

  incr(key: string, by: number, ttlMs: number, options?: StoreCallOptions): Promise<number> {
    return this.#run('incr', options, () => {
      const now = Date.now();
      return this.#incr(key, by, now + ttlMs, now);
    });
  }

  hit(key: string, windowMs: number, limit: number, options?: StoreCallOptions): Promise<WindowCount> {
    return this.#run('hit', options, () => this.#hit(key, Date.now(), windowMs, limit));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#db.close();
  }

  /** Run a synchronous statement as a promise: every failure becomes a rejected StoreError. */
  async #run<T>(operation: string, options: StoreCallOptions | undefined, fn: () => T): Promise<T> {
    if (this.#closed) throw new StoreError(`store ${operation} failed: the store is closed`);
    if (options?.signal?.aborted === true) throw abortedError(options.signal);
    try {
      return fn();
    } catch (err) {
      throw wrapError(operation, err);
    }
  }
}
