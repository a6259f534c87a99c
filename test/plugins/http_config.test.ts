import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoadFailure } from '../../src/app.ts';
import type { FakeConn } from '../helpers/fake-conn.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { eventually, quit, withApp } from './content-support.ts';

/** A real HTTP server on loopback; `handle` decides each answer and may be swapped. */
class ConfigServer {
  readonly requests: string[] = [];
  /** Requests the server has not answered (the hanging kind). */
  readonly open = new Set<ServerResponse>();
  handle: (path: string, res: ServerResponse, req: IncomingMessage) => void = (_p, res) => res.writeHead(404).end();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<ConfigServer> {
    const server = createServer();
    const me = new ConfigServer(server);
    server.on('request', (req, res) => {
      me.requests.push(req.url ?? '');
      me.open.add(res);
      res.on('close', () => me.open.delete(res));
      me.handle(req.url ?? '', res, req);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return me;
  }

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Serve these files (path to body); anything else is a 404. */
  serve(files: Record<string, string>): void {
    this.handle = (path, res) => {
      const body = files[path];
      if (body === undefined) res.writeHead(404).end('not found');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    };
  }

  count(path: string): number {
    return this.requests.filter((r) => r === path).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What `config(NAME)` gives inside a session: the config hook, then the files. */
async function configOf(client: FakeConn, name: string): Promise<string[]> {
  const reply = await client.command(`XCONFIG ${name}`);
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as string[];
}

/** A new session's value of NAME (one session per look, as a daemon would see it). */
async function sessionConfig(t: TestApp, name: string): Promise<string[]> {
  const session = await t.greeted();
  const values = await configOf(session.client, name);
  await quit(session);
  return values;
}

const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

async function withServer(fn: (server: ConfigServer) => Promise<void>): Promise<void> {
  const server = await ConfigServer.start();
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

describe('http_config', () => {
  it('declines until a value is cached (the files are used), then answers from the cache', async () => {
    await withServer(async (server) => {
      server.serve({ '/cfg/smtpgreeting': '# from the web\n\n  web.example.test ESMTP hello from http  \n', '/cfg/spam_level': '0\n7\n' });
      await withApp([`http_config refresh 60 ${server.base}/cfg/`, 'probe'], async (t) => {
        // The first lookup finds nothing cached: the file, at once.
        const first = await t.greeted();
        assert.match((await first.client.command('EHLO client.example.test')).raw, /^250/);
        assert.deepEqual(await configOf(first.client, 'spam_level'), ['3']);
        await quit(first);
        // Then the web's values, comments and blank lines skipped, a "0" kept.
        await eventually('the cached value', async () => same(await sessionConfig(t, 'spam_level'), ['0', '7']));
        const session = await t.connect();
        const greeting = await session.client.reply();
        assert.equal(greeting.code, 220);
        assert.match(greeting.text, /^web\.example\.test ESMTP hello from http/);
        await quit(session);
        // A name the server does not have (404): the files, and it is not asked again at once.
        assert.deepEqual(await sessionConfig(t, 'me'), ['mx.example.test']);
        await eventually('the server to be asked for me', () => server.count('/cfg/me') >= 1);
        for (let i = 0; i < 3; i++) assert.deepEqual(await sessionConfig(t, 'me'), ['mx.example.test']);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(server.count('/cfg/me'), 1, 'a 404 answer is cached too');
      }, { spam_level: '3' });
    });
  });

  it('refreshes in the background and keeps the last good values while the server fails', async () => {
    await withServer(async (server) => {
      let level = 'one';
      let failing = false;
      server.handle = (path, res) => {
        if (failing) res.writeHead(500).end('oops');
        else if (path === '/c/level') res.writeHead(200).end(level + '\n');
        else res.writeHead(404).end();
      };
      await withApp([`http_config refresh 0.1 timeout 2 ${server.base}/c/`, 'probe'], async (t) => {
        await eventually('the first value', async () => same(await sessionConfig(t, 'level'), ['one']));
        level = 'two';
        await eventually('the refreshed value', async () => same(await sessionConfig(t, 'level'), ['two']));
        failing = true;
        const before = server.count('/c/level');
        // Several refresh periods with the server failing: the requests go out, the value stays.
        await eventually('failed refreshes', async () => {
          assert.deepEqual(await sessionConfig(t, 'level'), ['two']);
          return server.count('/c/level') >= before + 3;
        });
        assert.ok(t.logs.some((l) => l.includes('http_config: cannot fetch level') && l.includes('HTTP 500') && l.includes('keeping the last good answer')), t.logs.join('\n'));
        // Logged once per outage at LOGWARN (the loglevel here is 6: LOGDEBUG lines are not shown).
        assert.equal(t.logs.filter((l) => l.includes('cannot fetch level')).length, 1);
        failing = false;
        level = 'three';
        await eventually('recovery', async () => same(await sessionConfig(t, 'level'), ['three']));
      }, { level: 'from the file' });
    });
  });

  it('a server that only fails: the files are used, and sessions go on', async () => {
    await withServer(async (server) => {
      server.handle = (_path, res) => res.writeHead(503).end('down');
      await withApp([`http_config refresh 0.1 ${server.base}/`, 'probe'], async (t) => {
        await eventually('a failed fetch', async () => {
          assert.deepEqual(await sessionConfig(t, 'level'), ['file']);
          return server.count('/level') >= 1 && t.logs.some((l) => l.includes('cannot fetch level'));
        });
        for (let i = 0; i < 3; i++) assert.deepEqual(await sessionConfig(t, 'level'), ['file']);
        assert.ok(t.logs.some((l) => l.includes('HTTP 503') && l.includes('the config files are used')), t.logs.join('\n'));
      }, { level: 'file' });
    });
  });

  it('a server that never answers cannot stall a session; each request has a time limit', async () => {
    await withServer(async (server) => {
      server.handle = () => undefined; // accept, read the request, never answer
      await withApp([`http_config timeout 0.3 refresh 0.2 ${server.base}/cfg/`, 'probe'], async (t) => {
        // Whole sessions (every config lookup of greeting, EHLO, MAIL ... runs the hook) while the
        // server holds every request: each reply comes at once from the files.
        for (let i = 0; i < 3; i++) {
          const session = await t.greeted();
          assert.equal((await session.client.command('EHLO client.example.test')).code, 250);
          assert.deepEqual(await configOf(session.client, 'level'), ['file']);
          await quit(session);
        }
        await eventually('the plugin to ask', () => server.requests.length > 0);
        await eventually('the time limit', async () => {
          assert.deepEqual(await sessionConfig(t, 'level'), ['file']);
          return t.logs.some((l) => l.includes('cannot fetch level') && l.includes('no answer within 0.3 s'));
        });
        // Timed-out requests are closed, not left hanging: never more open than run at once (4).
        await eventually('more requests than run at once', () => server.requests.length > 4);
        await eventually('the hung requests to be closed', () => server.open.size <= 4);
      }, { level: 'file' });
    });
  });

  it('several base URLs: the first with values wins; trouble at the first does not hide the second', async () => {
    await withServer(async (server) => {
      server.handle = (path, res) => {
        if (path === '/a/only_b') res.writeHead(404).end();
        else if (path === '/b/only_b') res.writeHead(200).end('from b\n');
        else if (path === '/a/both') res.writeHead(200).end('from a\n');
        else if (path === '/b/both') res.writeHead(200).end('from b\n');
        else if (path === '/a/broken_a') res.writeHead(500).end();
        else if (path === '/b/broken_a') res.writeHead(200).end('b saves the day\n');
        else if (path === '/a/moved') res.writeHead(302, { location: '/b/both' }).end();
        else res.writeHead(404).end();
      };
      await withApp([`http_config ${server.base}/a/ ${server.base}/b/ refresh 30`, 'probe'], async (t) => {
        for (const [name, expected] of [['only_b', 'from b'], ['both', 'from a'], ['broken_a', 'b saves the day'], ['moved', 'from b']] as const) {
          await eventually(name, async () => same(await sessionConfig(t, name), [expected]));
        }
      });
    });
  });

  it('shutdown aborts the requests in flight', async () => {
    await withServer(async (server) => {
      server.handle = () => undefined;
      await withApp([`http_config timeout 30 ${server.base}/`, 'probe'], async (t) => {
        await sessionConfig(t, 'level');
        await eventually('a request in flight', () => server.open.size > 0);
        await t.app.close(0);
        await eventually('the requests to be aborted', () => server.open.size === 0);
      });
    });
  });

  it('bad arguments are load errors', async () => {
    for (const line of ['http_config', 'http_config refresh 10', 'http_config ftp://example.test/', 'http_config http://x.test/ timeout soon', 'http_config http://x.test/ refresh']) {
      await assert.rejects(withApp([line], async () => undefined), LoadFailure, line);
    }
  });
});
