/**
 * The embedded store: one SQLite file through better-sqlite3, in WAL mode with a busy timeout so
 * that the processes of `--workers` (each with its own connection) share it safely. Calls are
 * synchronous underneath (small indexed statements, well under a millisecond) and wrapped as
 * promises; the read-modify-write operations run in IMMEDIATE transactions, which take the write
 * lock first and so are atomic across processes.
 *
 * Expired rows are ignored by every read and deleted once a minute (and when the store opens).
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
    const count = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM events WHERE key = ?');
    const add = db.prepare<[string, number, number]>('INSERT INTO events (key, at, expires) VALUES (?, ?, ?)');
    const hit = db.transaction((key: string, now: number, windowMs: number, limit: number): WindowCount => {
      forget.run(key, now - windowMs);
      const n = count.get(key)!.n;
      if (n >= limit) return { count: n, allowed: false };
      add.run(key, now, now + windowMs);
      return { count: n + 1, allowed: true };
    });
    this.#hit = (key, now, windowMs, limit) => hit.immediate(key, now, windowMs, limit);

    const pruneKv = db.prepare<[number]>('DELETE FROM kv WHERE expires <= ?');
    const pruneEvents = db.prepare<[number]>('DELETE FROM events WHERE expires <= ?');
    const prune = (): void => {
      try {
        const now = Date.now();
        pruneKv.run(now);
        pruneEvents.run(now);
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
