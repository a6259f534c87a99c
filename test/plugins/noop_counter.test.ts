import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FakeConn } from '../helpers/fake-conn.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';

const STOP = '5.5.1 Stop wasting my time, too many consecutive NOOPs';

async function withApp(plugins: string[], fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ config: { plugins, loglevel: '6' }, plugins: TEST_PLUGINS });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

async function noops(client: FakeConn, n: number): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < n; i++) codes.push((await client.command('NOOP')).code);
  return codes;
}

describe('noop_counter', () => {
  it('answers 250 to two NOOPs and disconnects at the 3rd (the default)', async () => {
    await withApp(['noop_counter'], async (t) => {
      const { client, done } = await t.greeted();
      assert.deepEqual(await noops(client, 2), [250, 250]);
      const last = await client.command('NOOP');
      assert.equal(last.code, 500);
      assert.equal(last.text, STOP);
      await done;
      assert.ok(client.closed);
      assert.ok(t.logs.some((l) => l.includes('fail, 3 consecutive NOOPs')), t.logs.join('\n'));
    });
  });

  it('takes N as its argument', async () => {
    await withApp(['noop_counter 5'], async (t) => {
      const { client, done } = await t.greeted();
      assert.deepEqual(await noops(client, 5), [250, 250, 250, 250, 500]);
      await done;
      assert.ok(client.closed);
    });
  });

  it('ignores an argument that is no positive number (qpsmtpd: default 3)', async () => {
    await withApp(['noop_counter lots'], async (t) => {
      const { client, done } = await t.greeted();
      assert.deepEqual(await noops(client, 3), [250, 250, 500]);
      await done;
    });
  });

  it('any other command resets the count', async () => {
    await withApp(['noop_counter 2', 'accept_all', 'answer queue OK queued'], async (t) => {
      const { client, done } = await t.greeted();
      const steps: [string, number][] = [
        ['HELO client.example', 250],
        ['EHLO client.example', 250],
        ['MAIL FROM:<a@sender.example>', 250],
        ['RCPT TO:<b@example.test>', 250],
        ['DATA', 354],
        ['Subject: hi\r\n\r\nbody\r\n.', 250],
        ['RSET', 250],
        ['VRFY postmaster', 252],
        ['HELP', 214],
        ['XYZZY', 500],
      ];
      for (const [command, code] of steps) {
        if (!command.startsWith('Subject:')) assert.equal((await client.command('NOOP')).code, 250, `NOOP before ${command}`);
        assert.equal((await client.command(command)).code, code, command);
      }
      assert.deepEqual(await noops(client, 2), [250, 500]);
      await done;
    });
  });

  it('counts each connection on its own', async () => {
    await withApp(['noop_counter'], async (t) => {
      const a = await t.greeted();
      const b = await t.greeted({ remotePort: 40001 });
      for (const session of [a, b, a, b]) assert.equal((await session.client.command('NOOP')).code, 250);
      for (const session of [a, b]) {
        assert.equal((await session.client.command('QUIT')).code, 221);
        await session.done;
      }
    });
  });
});
