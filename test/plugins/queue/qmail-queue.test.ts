/**
 * queue/qmail-queue. qmail itself is not in Debian (bookworm, bullseye; buster, the last with it,
 * is no longer served), so the program on the other side is qmail-queue-standin.py: the
 * qmail-queue(8) interface done as qmail-queue.c does it (message on fd 0 read to its end, then the
 * envelope on fd 1 parsed strictly, exit codes 11/54/91 for bad input, fd 6 for exit 82), writing
 * a queue file pair. What is tested here is the plugin's side of that interface: bytes, envelope
 * format, and the mapping of every class of exit code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { HERE, lf, openTempDir, send, tricky } from './support.ts';

const STANDIN = join(HERE, 'qmail-queue-standin.py');

async function withQueue(args: string, env: Record<string, string>, fn: (t: TestApp) => Promise<void>, config: Record<string, string> = {}): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/qmail-queue ${args}`], rcpthosts: ['example.com'], ...config }, env });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('queue/qmail-queue', { timeout: 60_000 }, () => {
  let queue: string;
  before(() => {
    chmodSync(STANDIN, 0o755);
    queue = openTempDir('qpsmtpd-qmailq-');
  });
  after(() => rmSync(queue, { recursive: true, force: true }));

  const queued = (): string[] => readdirSync(queue).filter((n) => n.endsWith('.todo')).sort();

  it('message on fd 0 with LF line ends, envelope on fd 1; 250 Queued! with the Message-ID', async () => {
    const message = tricky('qmail test', 'qq-1@origin.example');
    await withQueue(STANDIN, { QQ_STANDIN_QUEUE: queue }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], message });
      assert.equal(reply.code, 250, reply.raw);
      assert.match(reply.text, /^2\.0\.0 Queued! \d+ qp \d+ <qq-1@origin\.example>$/);
      const [todo] = queued();
      assert.ok(todo);
      assert.equal(readFileSync(join(queue, todo)).toString('latin1'), 'Fsender@origin.example\0Tuser@example.com\0Tother@example.com\0\0');
      const mess = readFileSync(join(queue, todo.replace('.todo', '.mess')));
      assert.match(mess.toString('utf8'), /^Received: \(qmail \d+ invoked by uid 0\); .+\nReceived: from client\.example \(\[192\.0\.2\.10\]\)\n/);
      assert.ok(!mess.includes(0x0d), 'no CR');
      assert.ok(mess.subarray(mess.length - lf(message).length).equals(lf(message)));
    });
  });

  it('the null sender is an empty F entry', async () => {
    await withQueue(STANDIN, { QQ_STANDIN_QUEUE: queue }, async (t) => {
      const before = queued().length;
      assert.equal((await send(t, { from: '<>', to: ['<user@example.com>'], message: tricky('null', 'qq-2@origin.example') })).code, 250);
      const todo = queued().find((n) => readFileSync(join(queue, n.replace('.todo', '.mess'))).includes(Buffer.from('<qq-2@origin.example>')));
      assert.equal(queued().length, before + 1);
      assert.equal(readFileSync(join(queue, todo!)).toString('latin1'), 'F\0Tuser@example.com\0\0');
    });
  });

  it('exit codes 11-40 are permanent (5xx) with qmail\'s texts', async () => {
    await withQueue(STANDIN, { QQ_STANDIN_EXIT: '31' }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('31', 'qq-31@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.3.0 mail server permanently rejected message (#5.3.0)');
    });
    await withQueue(STANDIN, { QQ_STANDIN_EXIT: '22' }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('22', 'qq-22@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.3.0 qq permanent problem (#5.3.0)');
    });
  });

  it('an address too long for qq: exit 11, 5.1.3', async () => {
    await withQueue(STANDIN, { QQ_STANDIN_QUEUE: queue }, async (t) => {
      const long = `<${'a'.repeat(1000)}@example.com>`;
      const reply = await send(t, { to: [long], message: tricky('long', 'qq-11@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.1.3 envelope address too long for qq (#5.1.3)');
    });
  });

  it('other exit codes are temporary (4xx)', async () => {
    for (const [code, text] of [
      ['53', '4.3.0 qq write error or disk full (#4.3.0)'],
      ['73', '4.4.1 connection to mail server rejected (#4.4.1)'],
      ['100', '4.3.0 qq temporary problem (#4.3.0)'],
    ] as const) {
      await withQueue(STANDIN, { QQ_STANDIN_EXIT: code }, async (t) => {
        const reply = await send(t, { to: ['<user@example.com>'], message: tricky(code, `qq-${code}@origin.example`) });
        assert.equal(reply.code, 452, `${code}: ${reply.raw}`);
        assert.equal(reply.text, text);
      });
    }
  });

  it('exit 82 with a custom text on fd 6: D is permanent, Z temporary', async () => {
    await withQueue(STANDIN, { QQ_STANDIN_ERROR: 'DVirus found, message refused (#5.7.1)' }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('82D', 'qq-82d@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.7.1 Virus found, message refused (#5.7.1)');
    });
    await withQueue(STANDIN, { QQ_STANDIN_ERROR: 'Zscanner busy, try later' }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('82Z', 'qq-82z@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.3.0 scanner busy, try later');
    });
  });

  it('QMAILQUEUE overrides the argument; a program that cannot run is a 4xx', async () => {
    await withQueue('/nonexistent/qmail-queue', { QMAILQUEUE: STANDIN, QQ_STANDIN_QUEUE: queue }, async (t) => {
      assert.equal((await send(t, { to: ['<user@example.com>'], message: tricky('env', 'qq-env@origin.example') })).code, 250);
    });
    await withQueue('/nonexistent/qmail-queue', {}, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('missing', 'qq-missing@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.3.0 unable to exec qq (#4.3.0)');
    });
  });

  it('a program that hangs is killed when the hook times out, and the client gets a 4xx', async () => {
    await withQueue(STANDIN, { QQ_STANDIN_QUEUE: queue, QQ_STANDIN_SLEEP: '30' }, async (t) => {
      const started = Date.now();
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('slow', 'qq-slow@origin.example') });
      assert.ok(reply.code >= 400 && reply.code < 500, reply.raw);
      assert.ok(Date.now() - started < 10_000);
    }, { plugin_timeout: '1' });
    assert.ok(!queued().some((n) => readFileSync(join(queue, n.replace('.todo', '.mess'))).includes(Buffer.from('<qq-slow@origin.example>'))));
  });

  it('refuses a PROGRAM that is not a plain absolute path', async () => {
    await assert.rejects(testApp({ config: { plugins: ['queue/qmail-queue bin/qmail-queue'] } }), /not an absolute path/);
    await assert.rejects(testApp({ config: { plugins: ['queue/qmail-queue /bin/sh;reboot'] } }), /not an absolute path/);
  });
});
