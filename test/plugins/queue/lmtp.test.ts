/**
 * queue/lmtp against Dovecot's LMTP server (dovecot-lmtpd), started by the test with its own
 * config, users and Maildirs in a temp folder: delivery over TCP and a unix socket, byte-exact;
 * per-recipient refusals at RCPT time and after the final dot (a full mailbox: permanent, a broken
 * one: temporary), and the retry that reaches only the recipients still missing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { Dovecot, afterLine, freePort, hasMessage, lf, maildirMessages, send, sleep, tricky, waitForMessage } from './support.ts';

async function withLmtp(args: string, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/lmtp ${args}`], rcpthosts: ['example.com'] } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('queue/lmtp against Dovecot', { timeout: 60_000 }, () => {
  let dovecot: Dovecot;

  before(async () => {
    dovecot = await Dovecot.start([
      { name: 'user' },
      { name: 'other' },
      { name: 'full', extra: 'userdb_quota_rule=*:storage=10B' },
      { name: 'flaky' },
    ]);
  });
  after(async () => {
    await dovecot?.stop();
  });

  it('delivers to every recipient over TCP, byte-exact; 250 only after every per-recipient 250', async () => {
    const message = tricky('lmtp test', 'lmtp-1@origin.example');
    await withLmtp(`127.0.0.1 ${dovecot.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], mailParams: ' BODY=8BITMIME', message });
      assert.equal(reply.code, 250, reply.raw);
      assert.equal(reply.text, '2.0.0 Delivered to 2 recipient(s)');
      for (const user of ['user', 'other']) {
        const content = await waitForMessage(dovecot.maildir(user), 'lmtp-1@origin.example', 2000);
        assert.match(content.toString('utf8'), /^Return-Path: <sender@origin\.example>\n/);
        assert.match(content.toString('utf8'), /by lmtp\.test with LMTP\s+id /);
        const ours = afterLine(content, 'Received: from client.example ([192.0.2.10])');
        assert.ok(ours.subarray(ours.length - lf(message).length).equals(lf(message)), ours.toString('utf8'));
      }
    });
  });

  it('delivers over the unix socket', async () => {
    await withLmtp(`unix:${dovecot.socketPath}`, async (t) => {
      const reply = await send(t, { from: '<>', to: ['<user@example.com>'], message: tricky('unix', 'lmtp-unix@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      const content = await waitForMessage(dovecot.maildir('user'), 'lmtp-unix@origin.example', 2000);
      assert.match(content.toString('utf8'), /^Return-Path: <>\n/);
    });
  });

  it('a recipient refused at RCPT time: 5xx for the message, nobody gets it', async () => {
    await withLmtp(`127.0.0.1 ${dovecot.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<nobody@example.com>'], message: tricky('unknown', 'lmtp-unknown@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.match(reply.text, /^5\.1\.1 <nobody@example\.com> User doesn't exist/);
      await sleep(200);
      assert.ok(!hasMessage(dovecot.maildir('user'), 'lmtp-unknown@origin.example'));
    });
  });

  it('a permanent refusal after the dot (mailbox full) with others delivered: 5xx that says who got it', async () => {
    await withLmtp(`127.0.0.1 ${dovecot.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<full@example.com>'], message: tricky('quota', 'lmtp-quota@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.match(reply.text, /^5\.2\.2 delivered to <user@example\.com>; not to: <full@example\.com> Quota exceeded/);
      await waitForMessage(dovecot.maildir('user'), 'lmtp-quota@origin.example', 2000);
      assert.ok(!hasMessage(dovecot.maildir('full'), 'lmtp-quota@origin.example'));
    });
  });

  it('a temporary refusal after the dot: 4xx; the retry reaches only the missing recipient', async () => {
    dovecot.breakMailbox('flaky');
    const message = tricky('retry', 'lmtp-retry@origin.example');
    await withLmtp(`127.0.0.1 ${dovecot.port}`, async (t) => {
      const first = await send(t, { to: ['<user@example.com>', '<flaky@example.com>'], message });
      assert.equal(first.code, 452, first.raw);
      assert.match(first.text, /^4\.\d\.\d delivered to 1 of 2; will take the rest on retry: <flaky@example\.com> /);
      await waitForMessage(dovecot.maildir('user'), 'lmtp-retry@origin.example', 2000);

      dovecot.repairMailbox('flaky');
      const retry = await send(t, { to: ['<user@example.com>', '<flaky@example.com>'], message });
      assert.equal(retry.code, 250, retry.raw);
      assert.equal(retry.text, '2.0.0 Delivered to 2 recipient(s)');
      await waitForMessage(dovecot.maildir('flaky'), 'lmtp-retry@origin.example', 2000);
      const copies = maildirMessages(dovecot.maildir('user')).filter((m) => m.includes(Buffer.from('<lmtp-retry@origin.example>')));
      assert.equal(copies.length, 1, 'user got the message once');
      const saved = dovecot.log().split('\n').filter((l) => l.includes('lmtp(user@example.com)') && l.includes('msgid=<lmtp-retry@origin.example>: saved'));
      assert.equal(saved.length, 1, 'Dovecot saved it for user once');
    });
  });

  it('every recipient refused after the dot, temporarily: 4xx', async () => {
    dovecot.breakMailbox('flaky');
    try {
      await withLmtp(`127.0.0.1 ${dovecot.port}`, async (t) => {
        const reply = await send(t, { to: ['<flaky@example.com>'], message: tricky('all temp', 'lmtp-alltemp@origin.example') });
        assert.equal(reply.code, 452, reply.raw);
        assert.match(reply.text, /^4\.\d\.\d <flaky@example\.com> /);
      });
    } finally {
      dovecot.repairMailbox('flaky');
    }
  });

  it('the LMTP server down: 4xx (TCP and unix socket)', async () => {
    const port = await freePort();
    await withLmtp(`127.0.0.1 ${port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('down', 'lmtp-down@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.4.1 Mail store unavailable, try again later');
    });
    await withLmtp('unix:/nonexistent/lmtp', async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('down', 'lmtp-down2@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
    });
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testApp({ config: { plugins: ['queue/lmtp'] } }), /no LMTP server/);
    await assert.rejects(testApp({ config: { plugins: ['queue/lmtp 127.0.0.1'] } }), /needs a PORT/);
    await assert.rejects(testApp({ config: { plugins: ['queue/lmtp unix:/x bogus 1'] } }), /unknown argument "bogus"/);
  });
});
