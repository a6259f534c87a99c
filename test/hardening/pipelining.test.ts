/**
 * Pipelining (RFC 2920) over real TCP: commands pipelined after the final dot are served in order on
 * the same connection; content that arrives before the 354 is refused (554 5.5.0) and the
 * connection closed, so a second message cannot ride in; a pipelined group of 10k commands is
 * answered completely with the daemon's memory bounded.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { cleanupAll, makeRoot, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { RawSession, bodyOf, closeAllRaw, maildirFiles, maildirState, memoryOf } from './support.ts';

after(async () => {
  closeAllRaw();
  await cleanupAll();
});

let daemon: Daemon;
let maildir: string;
/** Files already in new/ when the current test started. */
let seen = 0;

before(async () => {
  const root = makeRoot({
    config: { plugins: ['relay', 'rcpt_ok', 'queue/maildir var/maildir'], rcpthosts: 'example.test', loglevel: '5' },
  });
  daemon = await startDaemon(root);
  maildir = join(root, 'var', 'maildir');
});

beforeEach(() => {
  seen = maildirState(maildir).new.length;
});

/** The files this test delivered. */
const delivered = (): string[] => maildirFiles(maildir).slice(seen);

async function greeted(): Promise<RawSession> {
  const s = await RawSession.open(daemon.port);
  assert.equal((await s.reply()).code, 220);
  const ehlo = await s.expect('EHLO client.example', 250);
  assert.match(ehlo.raw, /^250-PIPELINING\r$/m);
  return s;
}

describe('after the final dot', () => {
  test('pipelined commands are answered in order on the same connection, a second message included', async () => {
    const s = await greeted();
    await s.expect('MAIL FROM:<first@sender.example>', 250);
    await s.expect('RCPT TO:<one@example.test>', 250);
    await s.expect('DATA', 354);
    await s.write(
      'Subject: first\r\n\r\nfirst body\r\n.\r\n' +
        'RSET\r\nMAIL FROM:<second@sender.example>\r\nRCPT TO:<two@example.test>\r\nRCPT TO:<x@other.example>\r\nNOOP\r\nDATA\r\n',
    );
    const replies = [];
    for (let i = 0; i < 7; i++) replies.push(await s.reply());
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 250, 250, 550, 250, 354],
      JSON.stringify(replies.map((r) => r.raw)),
    );
    assert.match(replies[0]!.text, /^2\.0\.0 Queued! /);
    assert.match(replies[2]!.text, /second@sender\.example/);
    assert.match(replies[3]!.text, /two@example\.test/);
    assert.match(replies[4]!.text, /^5\.7\.1 /);
    await s.write('Subject: second\r\n\r\nsecond body\r\n.\r\nQUIT\r\n');
    assert.equal((await s.reply()).code, 250);
    assert.equal((await s.reply()).code, 221);
    await s.waitClosed();
    assert.equal(s.replies.length, 5 + 7 + 2, 'no reply more than the commands asked for');

    const files = delivered();
    assert.equal(files.length, 2);
    assert.match(files[0]!, /^Return-Path: <first@sender\.example>\nDelivered-To: one@example\.test\n/);
    assert.equal(bodyOf(files[0]!), 'first body\n');
    assert.match(files[1]!, /^Return-Path: <second@sender\.example>\nDelivered-To: two@example\.test\n(?!Delivered-To)/);
    assert.equal(bodyOf(files[1]!), 'second body\n');
  });

  test('the same, with the dot and the commands after it cut into TCP segments at every point', async () => {
    const tail = '\r\n.\r\nNOOP\r\nRSET\r\n';
    for (let at = 1; at < tail.length; at++) {
      const s = await greeted();
      await s.expect('MAIL FROM:<cut@sender.example>', 250);
      await s.expect('RCPT TO:<cut@example.test>', 250);
      await s.expect('DATA', 354);
      await s.sendSegments([`Subject: cut ${at}\r\n\r\nbody`, tail.slice(0, at), tail.slice(at)], 3);
      assert.equal((await s.reply()).code, 250, `cut at ${at}`);
      assert.equal((await s.reply()).text, '2.0.0 OK', 'NOOP');
      assert.equal((await s.reply()).code, 250, 'RSET');
      await s.expect('QUIT', 221);
      await s.waitClosed();
      assert.equal(s.replies.length, 9);
    }
    assert.equal(delivered().length, tail.length - 1);
  });
});

describe('content before the 354', () => {
  for (const [name, content] of [
    ['a whole message', 'Subject: early\r\n\r\nearly body\r\n.\r\n'],
    ['a single byte', 'S'],
    ['a smuggled second message behind it', 'Subject: early\r\n\r\nx\r\n.\r\nMAIL FROM:<evil@evil.example>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: second\r\n\r\ny\r\n.\r\nQUIT\r\n'],
  ] as const) {
    test(`DATA and ${name} in one write: 554 5.5.0, the connection closed, nothing stored`, async () => {
      const s = await greeted();
      await s.expect('MAIL FROM:<early@sender.example>', 250);
      await s.expect('RCPT TO:<early@example.test>', 250);
      await s.write('DATA\r\n' + content);
      await s.waitClosed();
      assert.deepEqual(
        s.replies.map((r) => r.code),
        [220, 250, 250, 250, 554],
        JSON.stringify(s.received),
      );
      assert.match(s.replies[4]!.text, /^5\.5\.0 /);
      assert.deepEqual(delivered(), []);
      assert.deepEqual(maildirState(maildir).tmp, []);
    });
  }

  test('a whole transaction pipelined without waiting: MAIL and RCPT served, then 554 at DATA and close', async () => {
    const s = await greeted();
    await s.write(
      'MAIL FROM:<pipe@sender.example>\r\nRCPT TO:<pipe@example.test>\r\nDATA\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\n' +
        'MAIL FROM:<evil@evil.example>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: second\r\n\r\nsecond\r\n.\r\nQUIT\r\n',
    );
    await s.waitClosed();
    assert.deepEqual(
      s.replies.map((r) => r.code),
      [220, 250, 250, 250, 554],
      JSON.stringify(s.received),
    );
    assert.deepEqual(delivered(), []);
  });
});

describe('a pipelined group of 10k commands', () => {
  test('10000 NOOPs in one write are all answered, then 10000 mixed commands, with memory bounded', async () => {
    const s = await greeted();
    // Warm up (the first transaction loads code paths), then measure.
    await s.expect('NOOP', 250);
    const before = memoryOf(daemon.pid);

    const count = 10_000;
    const base = s.replies.length;
    await s.write('NOOP\r\n'.repeat(count));
    await s.until(() => s.replies.length >= base + count, `${count} NOOP replies`, 20_000);
    const noops = s.replies.slice(base);
    assert.equal(noops.length, count);
    assert.ok(
      noops.every((r) => r.raw === '250 2.0.0 OK\r\n'),
      'every reply is the NOOP reply',
    );

    // MAIL, RCPT, RSET: each transaction step, answered in order.
    const group = 'MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@example.test>\r\nRSET\r\n';
    const base2 = s.replies.length;
    await s.write(group.repeat(count / 2));
    await s.until(() => s.replies.length >= base2 + (count / 2) * 3, 'the mixed replies', 20_000);
    const mixed = s.replies.slice(base2);
    assert.equal(mixed.length, (count / 2) * 3);
    mixed.forEach((r, i) => {
      const expected = [/^250 2\.1\.0 <a@sender\.example>/, /^250 2\.1\.5 <b@example\.test>/, /^250 2\.0\.0 /][i % 3]!;
      if (!expected.test(r.raw)) assert.fail(`reply ${i}: ${JSON.stringify(r.raw)}`);
    });

    const afterwards = memoryOf(daemon.pid);
    const grownMb = (afterwards.rss - before.rss) / 1024;
    console.log(`daemon RSS ${(before.rss / 1024).toFixed(1)} MB before, ${(afterwards.rss / 1024).toFixed(1)} MB after 20000 pipelined commands (peak ${(afterwards.hwm / 1024).toFixed(1)} MB)`);
    assert.ok(grownMb < 50, `RSS grew by ${grownMb.toFixed(1)} MB`);

    s.consumeAll();
    await s.expect('QUIT', 221);
    await s.waitClosed();
    assert.equal(s.replies.length, base2 + mixed.length + 1);
  });
});
