import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp, type TestApp } from '../helpers/test-app.ts';

async function withApp(plugins: string[], fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ config: { plugins, loglevel: '6' } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('count_unrecognized_commands', () => {
  it('answers 500 three times, then 521 and closes on the 4th (the default)', async () => {
    await withApp(['count_unrecognized_commands'], async (t) => {
      const { client, done } = await t.greeted();
      for (const verb of ['GET / HTTP/1.0', 'Host: mx.example.test', 'User-Agent: x']) {
        const reply = await client.command(verb);
        assert.equal(reply.code, 500, reply.raw);
        assert.equal(reply.text, '5.5.1 Unrecognized command');
      }
      const last = await client.command('Accept: */*');
      assert.equal(last.code, 521);
      assert.equal(last.text, '5.5.1 Closing connection, 4 unrecognized commands. Perhaps you should read RFC 2821?');
      await done;
      assert.ok(client.closed);
      assert.ok(t.logs.some((l) => l.includes("count_unrecognized_commands: 'get', (1)")), t.logs.join('\n'));
      assert.ok(t.logs.some((l) => l.includes("fail, 'accept:' (4)")), t.logs.join('\n'));
    });
  });

  it('takes N as its argument', async () => {
    await withApp(['count_unrecognized_commands 2'], async (t) => {
      const { client, done } = await t.greeted();
      assert.equal((await client.command('XYZZY')).code, 500);
      assert.equal((await client.command('PLUGH')).code, 521);
      await done;
      assert.ok(client.closed);
    });
  });

  it('N 1 disconnects at the first unknown command; 0 means the default 4', async () => {
    await withApp(['count_unrecognized_commands 1'], async (t) => {
      const { client, done } = await t.greeted();
      assert.equal((await client.command('XYZZY')).code, 521);
      await done;
    });
    await withApp(['count_unrecognized_commands 0'], async (t) => {
      const { client, done } = await t.greeted();
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await client.command('XYZZY')).code);
      assert.deepEqual(codes, [500, 500, 500, 521]);
      await done;
    });
  });

  it('counts for the whole connection: known commands, RSET and transactions do not reset it; EXPN counts (502)', async () => {
    await withApp(['count_unrecognized_commands 3'], async (t) => {
      const { client, done } = await t.greeted();
      assert.equal((await client.command('EXPN staff')).code, 502);
      assert.equal((await client.command('EHLO client.example')).code, 250);
      assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await client.command('FOO')).code, 500);
      assert.equal((await client.command('RSET')).code, 250);
      assert.equal((await client.command('NOOP')).code, 250);
      assert.equal((await client.command('BAR')).code, 521);
      await done;
    });
  });

  it('counts each connection on its own', async () => {
    await withApp(['count_unrecognized_commands 3'], async (t) => {
      const a = await t.greeted();
      const b = await t.greeted({ remotePort: 40001 });
      for (const session of [a, b, a, b]) assert.equal((await session.client.command('FOO')).code, 500);
      for (const session of [a, b]) {
        assert.equal((await session.client.command('QUIT')).code, 221);
        await session.done;
      }
    });
  });

  it('refuses to load with an N that is no number', async () => {
    await assert.rejects(testApp({ config: { plugins: ['count_unrecognized_commands lots'] } }), /count_unrecognized_commands: "lots" is no number/);
  });

  it('ignores further arguments with a warning, but not loglevel', async () => {
    await withApp(['count_unrecognized_commands 2 extra', 'count_unrecognized_commands:1 loglevel -1'], async (t) => {
      assert.ok(t.logs.some((l) => l.includes('Ignoring additional arguments: extra')), t.logs.join('\n'));
      assert.equal(t.logs.filter((l) => l.includes('Ignoring additional arguments')).length, 1, t.logs.join('\n'));
    });
  });
});
