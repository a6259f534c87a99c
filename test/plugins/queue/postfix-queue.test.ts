/**
 * queue/postfix-queue against a real Postfix (master, cleanup, qmgr, virtual) started with its own
 * config and queue directory in a temp folder: the message goes in through the cleanup socket and
 * must come out of Postfix's virtual delivery agent unchanged; cleanup's refusals (content, size,
 * a milter's tempfail) become 5xx and 4xx; the flags reach cleanup (FLAG_HOLD).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { Postfix, afterLine, hasMessage, lf, send, sleep, tricky, waitFor, waitForMessage } from './support.ts';

async function withQueue(args: string, fn: (t: TestApp) => Promise<void>, config: Record<string, string | string[]> = {}, env: Record<string, string> = {}): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/postfix-queue ${args}`], rcpthosts: ['example.com'], ...config }, env });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('queue/postfix-queue against Postfix cleanup', { timeout: 60_000 }, () => {
  let postfix: Postfix;

  before(async () => {
    postfix = await Postfix.start({
      services: [
        'cleanup-small unix n - n - 0 cleanup -o message_size_limit=2000',
        'cleanup-milter unix n - n - 0 cleanup -o non_smtpd_milters=inet:127.0.0.1:9 -o milter_default_action=tempfail',
      ],
    });
  });
  after(async () => {
    await postfix?.stop();
  });

  it('queues into Postfix, which delivers it byte-exact: dot lines, 8-bit text, a 5000-byte line', async () => {
    const message = tricky('cleanup test', 'cleanup-1@origin.example').replace('Last line.', 'L'.repeat(5000) + '\r\nLast line.');
    await withQueue(`${postfix.cleanupSocket} FLAG_MASK_EXTERNAL`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], mailParams: ' BODY=8BITMIME', message });
      assert.equal(reply.code, 250, reply.raw);
      const m = /^2\.0\.0 Queued! <cleanup-1@origin\.example> \(Queue-Id: ([0-9A-F]+)\)$/.exec(reply.text);
      assert.ok(m, reply.text);
      for (const user of ['user', 'other']) {
        const content = await waitForMessage(postfix.maildir(user), 'cleanup-1@origin.example');
        assert.match(content.toString('utf8'), /^Return-Path: <sender@origin\.example>\n/);
        const ours = afterLine(content, 'Received: from client.example ([192.0.2.10])');
        assert.ok(ours.subarray(ours.length - lf(message).length).equals(lf(message)), ours.toString('utf8').slice(0, 3000));
        assert.ok(ours.includes(Buffer.from(`\n${'L'.repeat(5000)}\n`)));
        // Cleanup wrote no header of its own: ours is the first after Postfix's delivery trace.
        assert.equal(content.toString('utf8').split('\nReceived: ').length, 2);
      }
      assert.match(postfix.log(), new RegExp(`${m[1]}: from=<sender@origin\\.example>, size=\\d+, nrcpt=2 \\(queue active\\)`));
    });
  });

  it('the null sender and an internationalized sender', async () => {
    const message = (id: string): string => `Subject: s\r\nMessage-ID: <${id}>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n`;
    await withQueue(postfix.cleanupSocket, async (t) => {
      assert.equal((await send(t, { from: '<>', to: ['<user@example.com>'], message: message('pq-null@origin.example') })).code, 250);
      assert.equal((await send(t, { from: '<jörg@origin.example>', mailParams: ' SMTPUTF8', to: ['<user@example.com>'], message: message('pq-utf8@origin.example') })).code, 250);
      assert.match((await waitForMessage(postfix.maildir('user'), 'pq-null@origin.example')).toString('utf8'), /^Return-Path: <>\n/);
      assert.match((await waitForMessage(postfix.maildir('user'), 'pq-utf8@origin.example')).toString('utf8'), /^Return-Path: <jörg@origin\.example>\n/);
    });
  });

  it('FLAG_FILTER: a header_checks REJECT is a 5xx with cleanup\'s text; without the flag it passes', async () => {
    const message = tricky('reject me now', 'pq-reject@origin.example');
    await withQueue(`${postfix.cleanupSocket} FLAG_FILTER`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.7.1 content refused by the test');
    });
    await withQueue(postfix.cleanupSocket, async (t) => {
      assert.equal((await send(t, { to: ['<other@example.com>'], message })).code, 250);
      await waitForMessage(postfix.maildir('other'), 'pq-reject@origin.example');
    });
    assert.ok(!hasMessage(postfix.maildir('user'), 'pq-reject@origin.example'));
  });

  it('a message over message_size_limit: 5xx 5.3.4', async () => {
    await withQueue(postfix.publicSocket('cleanup-small'), async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('big', 'pq-big@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.match(reply.text, /^5\.3\.4 /);
    });
  });

  it('a milter that cannot be reached with milter_default_action=tempfail: 4xx', async () => {
    await withQueue(`${postfix.publicSocket('cleanup-milter')} FLAG_MASK_EXTERNAL`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('milter', 'pq-milter@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.match(reply.text, /^4\.\d\.\d /);
    });
  });

  it('FLAG_HOLD puts the message on hold instead of delivering it', async () => {
    await withQueue(`${postfix.cleanupSocket} FLAG_HOLD`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('hold', 'pq-hold@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      const qid = /Queue-Id: ([0-9A-F]+)/.exec(reply.text)![1]!;
      const hold = join(postfix.dir, 'queue', 'hold');
      await waitFor('the queue file in hold/', () => (existsSync(hold) && readdirSync(hold).includes(qid) ? true : undefined));
      await sleep(300);
      assert.ok(!hasMessage(postfix.maildir('user'), 'pq-hold@origin.example'));
    });
  });

  it('tries the sockets of config/cleanup_sockets in order; POSTFIXQUEUE overrides them', async () => {
    await withQueue('/nonexistent/cleanup', async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('fallback', 'pq-fallback@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      await waitForMessage(postfix.maildir('user'), 'pq-fallback@origin.example');
    }, { cleanup_sockets: ['/nonexistent/one', postfix.cleanupSocket] });
    await withQueue('/nonexistent/cleanup', async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('env', 'pq-env@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
    }, {}, { POSTFIXQUEUE: postfix.cleanupSocket });
  });

  it('no cleanup socket answers: 4xx', async () => {
    await withQueue('/nonexistent/cleanup', async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('none', 'pq-none@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.3.0 Queue unavailable, try again later');
    });
  });

  it('an unknown flag is logged and ignored (as qpsmtpd does)', async () => {
    await withQueue(`${postfix.cleanupSocket} FLAG_BOGUS`, async (t) => {
      assert.ok(t.logs.some((l) => /ignoring unknown cleanup flag FLAG_BOGUS/.test(l)), t.logs.join('\n'));
    });
  });
});
