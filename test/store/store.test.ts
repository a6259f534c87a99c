/**
 * The state store: the same contract checked on both back ends (a SQLite temp file, a real
 * redis-server), then what only one of them has to prove: several processes on one SQLite file,
 * and a Redis outage (calls fail at once, then work again once the server is back on its port).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError, parseStoreConfig, type Store } from '../../src/store/index.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import Database from 'better-sqlite3';
import { RedisServer, redisMissing } from '../helpers/redis-server.ts';

const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function contract(name: string, make: () => Promise<Store>, done: () => Promise<void>, skip?: string): void {
  describe(`store contract: ${name}`, { skip }, () => {
    let store: Store;
    before(async () => {
      store = await make();
    });
    after(async () => {
      await store?.close();
      await done();
    });

    it('get of a missing key is undefined; set then get; delete', async () => {
      assert.equal(await store.get('c:missing'), undefined);
      await store.set('c:a', 'one:two', 60_000);
      assert.equal(await store.get('c:a'), 'one:two');
      await store.set('c:a', 'three', 60_000);
      assert.equal(await store.get('c:a'), 'three');
      await store.delete('c:a');
      assert.equal(await store.get('c:a'), undefined);
    });

    it('a value expires after its ttl', async () => {
      await store.set('c:short', 'x', 150);
      assert.equal(await store.get('c:short'), 'x');
      await sleep(250);
      assert.equal(await store.get('c:short'), undefined);
    });

    it('incr counts from 0, goes down with a negative step, and restarts after expiry', async () => {
      assert.equal(await store.incr('c:n', 1, 200), 1);
      assert.equal(await store.incr('c:n', 2, 200), 3);
      assert.equal(await store.incr('c:n', -1, 200), 2);
      assert.equal(await store.get('c:n'), '2');
      await sleep(300);
      assert.equal(await store.incr('c:n', 1, 200), 1);
    });

    it('hit counts up to the limit, refuses beyond it, and slides', async () => {
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await store.hit('c:w', 300, 3));
      assert.deepEqual(results, [
        { count: 1, allowed: true },
        { count: 2, allowed: true },
        { count: 3, allowed: true },
        { count: 3, allowed: false },
      ]);
      await sleep(400);
      assert.deepEqual(await store.hit('c:w', 300, 3), { count: 1, allowed: true });
    });

    it('concurrent increments and hits from one process are all counted, none twice', async () => {
      const counts = await Promise.all(Array.from({ length: 50 }, () => store.incr('c:par', 1, 60_000)));
      assert.deepEqual([...counts].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
      const hits = await Promise.all(Array.from({ length: 20 }, () => store.hit('c:parw', 60_000, 7)));
      assert.equal(hits.filter((h) => h.allowed).length, 7);
    });

    it('an aborted signal rejects the call with a StoreError', async () => {
      const controller = new AbortController();
      controller.abort(new Error('plugin timeout'));
      await assert.rejects(store.get('c:a', { signal: controller.signal }), (err: unknown) => err instanceof StoreError && /aborted: plugin timeout/.test(err.message));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-store-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

contract('sqlite', async () => new SqliteStore(join(dir, 'contract', 'state.sqlite')), async () => undefined);

let redis: RedisServer | undefined;
contract(
  'redis',
  async () => {
    redis = await RedisServer.start();
    return waitReady(new RedisStore({ url: redis.url }));
  },
  async () => redis?.close(),
  redisMissing,
);

/** A new RedisStore connects in the background: wait until a call works. */
async function waitReady(store: Store): Promise<Store> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await store.get('ready');
      return store;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

describe('sqlite store shared by processes', () => {
  it('two processes on one file: every increment counted once, a window allows exactly its limit', async () => {
    const path = join(dir, 'shared.sqlite');
    // Created (schema, WAL) before the workers start, as the daemon's primary would not: the
    // workers also race to create it in the second round.
    const run = (): Promise<{ allowed: number; last: number }> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', './test/setup.mjs', 'test/store/store-worker.ts', path, '300', '250'], { cwd: PROJECT, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (s: Buffer) => (out += s.toString()));
        child.stderr.on('data', (s: Buffer) => (err += s.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { allowed: number; last: number }) : reject(new Error(`worker exited ${code}: ${err}`))));
      });
    const results = await Promise.all([run(), run()]);
    const store = new SqliteStore(path);
    try {
      assert.equal(await store.get('counter'), '600');
      assert.equal(Math.max(...results.map((r) => r.last)), 600);
      assert.equal(results[0]!.allowed + results[1]!.allowed, 250);
    } finally {
      await store.close();
    }
  });

  it('window counts survive the pruning of expired events and a reopen', async () => {
    const path = join(dir, 'pruned.sqlite');
    let store = new SqliteStore(path);
    for (let i = 0; i < 3; i++) assert.equal((await store.hit('p:w', 200, 3)).allowed, true);
    assert.deepEqual(await store.hit('p:w', 200, 3), { count: 3, allowed: false });
    await store.close();
    await sleep(300);
    // Opening prunes the expired events: the kept count must go down with them.
    store = new SqliteStore(path);
    try {
      assert.deepEqual(await store.hit('p:w', 200, 3), { count: 1, allowed: true });
    } finally {
      await store.close();
    }
  });

  it('a store file from before event_counts gets its counts from the events it holds', async () => {
    const path = join(dir, 'older.sqlite');
    const old = new Database(path);
    old.exec('CREATE TABLE events (key TEXT NOT NULL, at INTEGER NOT NULL, expires INTEGER NOT NULL)');
    const now = Date.now();
    const add = old.prepare('INSERT INTO events (key, at, expires) VALUES (?, ?, ?)');
    for (let i = 0; i < 2; i++) add.run('o:w', now, now + 60_000);
    old.close();
    const store = new SqliteStore(path);
    try {
      assert.deepEqual(await store.hit('o:w', 60_000, 3), { count: 3, allowed: true });
      assert.deepEqual(await store.hit('o:w', 60_000, 3), { count: 3, allowed: false });
    } finally {
      await store.close();
    }
  });

  it('a file that cannot be created is a StoreError naming it', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const path = join(file, 'sub', 'state.sqlite');
    assert.throws(() => new SqliteStore(path), (err: unknown) => err instanceof StoreError && err.message.startsWith(`cannot open the store ${path}: `));
  });
});

describe('redis store outage', { skip: redisMissing }, () => {
  it('calls fail at once while the server is down and work again when it is back on its port', async () => {
    const server = await RedisServer.start();
    const status: string[] = [];
    const store = await waitReady(new RedisStore({ url: server.url, onStatus: (m) => status.push(m) }));
    try {
      assert.equal(await store.incr('o:n', 1, 60_000), 1);
      await server.stop();
      const started = Date.now();
      await assert.rejects(store.incr('o:n', 1, 60_000), StoreError);
      await assert.rejects(store.hit('o:w', 1000, 5), StoreError);
      assert.ok(Date.now() - started < 1500, 'a call while Redis is down fails within the timeout');
      assert.ok(status.some((m) => /unavailable/.test(m)), status.join('\n'));
      await server.start();
      await waitReady(store);
      // The server kept nothing (no persistence): counting starts over.
      assert.equal(await store.incr('o:n', 1, 60_000), 1);
      assert.ok(status.some((m) => /available again/.test(m)), status.join('\n'));
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('a store opened while Redis is down starts working when it comes up', async () => {
    const server = await RedisServer.start();
    await server.stop();
    const store = new RedisStore({ url: server.url });
    try {
      await assert.rejects(store.get('x'), /not connected/);
      await server.start();
      await waitReady(store);
      await store.set('x', 'y', 10_000);
      assert.equal(await store.get('x'), 'y');
    } finally {
      await store.close();
      await server.close();
    }
  });
});

describe('config/store', () => {
  const entry = (value: string, line = 1) => ({ value, file: '/q/config/store', line });

  it('missing: sqlite in the spool folder; relative paths start from the folder above config/', () => {
    assert.deepEqual(parseStoreConfig([], '/q/config', 'var/spool'), { kind: 'sqlite', path: '/q/var/spool/qpsmtpd-state.sqlite' });
    assert.deepEqual(parseStoreConfig([entry('sqlite')], '/q/config', '/abs/spool'), { kind: 'sqlite', path: '/abs/spool/qpsmtpd-state.sqlite' });
    assert.deepEqual(parseStoreConfig([entry('sqlite var/db/s.sqlite')], '/q/config', undefined), { kind: 'sqlite', path: '/q/var/db/s.sqlite' });
  });

  it('redis with its options', () => {
    assert.deepEqual(parseStoreConfig([entry('redis redis://10.0.0.5:6380/2 timeout 250 prefix mx1:')], '/q/config', undefined), {
      kind: 'redis',
      url: 'redis://10.0.0.5:6380/2',
      timeoutMs: 250,
      prefix: 'mx1:',
    });
  });

  it('mistakes name the file and line', () => {
    assert.throws(() => parseStoreConfig([entry('memcached 1.2.3.4')], '/q/config', undefined), /^Error: \/q\/config\/store:1: store: unknown back end "memcached"/);
    assert.throws(() => parseStoreConfig([entry('redis 127.0.0.1')], '/q/config', undefined), /\/q\/config\/store:1: store: expected "redis redis:\/\/host/);
    assert.throws(() => parseStoreConfig([entry('redis redis://h timeout x')], '/q/config', undefined), /store:1: store: unknown or incomplete option "timeout x"/);
    assert.throws(() => parseStoreConfig([entry('sqlite'), entry('redis redis://h', 2)], '/q/config', undefined), /\/q\/config\/store:2: store: one back end only/);
  });
});
